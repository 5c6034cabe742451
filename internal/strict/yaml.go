package strict

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"go.yaml.in/yaml/v3"

	"github.com/teamgate/teamgate/internal/quote"
)

// maxDepth bounds nesting, aliases expanded (the JSON decoder refuses deeper input anyway; the
// converter stops before recursing that far).
const maxDepth = 10_000

// aliasBudget is how many bytes of JSON aliases may expand to for an input of n bytes: room for
// sharing blocks of settings, not for an alias bomb.
func aliasBudget(n int) int { return 4*n + 1<<20 }

// YAML decodes one YAML document (or one JSON document: a file that is JSON is decoded as JSON)
// into v under the package rules. An empty document leaves v as it is.
func YAML(data []byte, v any) error {
	if IsJSON(data) {
		return JSON(data, v)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return yamlSyntax(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return yamlSyntax(err)
	default:
		return &Error{Line: next.Line, Problem: "a second YAML document (a data file holds one)"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	c := &converter{budget: aliasBudget(len(data)), limit: aliasBudget(len(data)), active: map[*yaml.Node]bool{}}
	c.enc = jsontext.NewEncoder(&c.out, jsontext.AllowDuplicateNames(true)) // duplicates are found with their lines
	if err := c.node(root); err != nil {
		return err
	}
	if e, ptr := decode(c.out.Bytes(), v); e != nil {
		e.Path, e.Line, e.Column = locate(root, ptr) // positions in the YAML, not in the JSON
		return e
	}
	return nil
}

// yamlSyntax reports a YAML parse error ("yaml: line 3: did not find expected key").
func yamlSyntax(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg, _, _ = strings.Cut(msg, "\n")
	e := &Error{}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				e.Line, msg = line, after
			}
		}
	}
	e.Problem = "not YAML: " + quote.Cut(msg)
	return e
}

// converter re-encodes a YAML node tree as JSON, checking what JSON cannot express.
type converter struct {
	out    bytes.Buffer
	enc    *jsontext.Encoder
	path   []string            // the keys and indexes down to the current node, for errors
	active map[*yaml.Node]bool // anchored nodes being written
	// budget is what is left of the bytes aliases may expand to; inAlias counts the aliases
	// being expanded and start is the output offset where the outermost began.
	budget  int
	limit   int // the whole budget, for the message
	inAlias int
	start   int64
	depth   int
}

func (c *converter) fail(n *yaml.Node, problem string) error {
	return &Error{Path: joinPath(c.path), Line: n.Line, Column: n.Column, Problem: problem}
}

func joinPath(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		if !strings.HasPrefix(p, "[") && b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// node writes n. Each call writes at least one byte, so the work is bounded by the output, and
// the output inside aliases by the budget.
func (c *converter) node(n *yaml.Node) error {
	if c.depth++; c.depth > maxDepth {
		return c.fail(n, "nested deeper than "+strconv.Itoa(maxDepth)+" levels")
	}
	defer func() { c.depth-- }()
	if c.inAlias > 0 && int(c.enc.OutputOffset()-c.start) > c.budget {
		return c.fail(n, "aliases expand to more than "+strconv.Itoa(c.limit)+" bytes")
	}
	if n.Anchor != "" { // an alias inside it to it would never end
		c.active[n] = true
		defer delete(c.active, n)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.alias(n)
	case yaml.ScalarNode:
		return c.scalar(n)
	case yaml.SequenceNode:
		if t := n.ShortTag(); t != "!!seq" {
			return c.fail(n, "unsupported YAML tag "+quote.Q(t))
		}
		if err := c.enc.WriteToken(jsontext.BeginArray); err != nil {
			return c.fail(n, err.Error())
		}
		for i, item := range n.Content {
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			if err := c.node(item); err != nil {
				return err
			}
			c.path = c.path[:len(c.path)-1]
		}
		return c.enc.WriteToken(jsontext.EndArray)
	case yaml.MappingNode:
		return c.mapping(n)
	}
	return c.fail(n, "unexpected YAML node")
}

func (c *converter) alias(n *yaml.Node) error {
	target := n.Alias
	if target == nil {
		return c.fail(n, "alias to nothing")
	}
	if c.active[target] {
		return c.fail(n, "alias *"+quote.Cut(n.Value)+" refers to a node that contains it")
	}
	if c.inAlias == 0 {
		c.start = c.enc.OutputOffset()
	}
	c.inAlias++
	err := c.node(target)
	c.inAlias--
	if c.inAlias == 0 {
		c.budget -= int(c.enc.OutputOffset() - c.start)
	}
	return err
}

func (c *converter) mapping(n *yaml.Node) error {
	if t := n.ShortTag(); t != "!!map" {
		return c.fail(n, "unsupported YAML tag "+quote.Q(t))
	}
	if err := c.enc.WriteToken(jsontext.BeginObject); err != nil {
		return c.fail(n, err.Error())
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		switch {
		case k.Kind != yaml.ScalarNode:
			return c.fail(n.Content[i], "a key must be a string")
		case k.ShortTag() == "!!merge":
			return c.fail(n.Content[i], "merge keys (<<) are not supported")
		case k.ShortTag() == "!!null":
			return c.fail(n.Content[i], "null key")
		case k.ShortTag() == "!!binary": // its text would be taken for the name it encodes
			return c.fail(n.Content[i], "unsupported YAML tag "+quote.Q(k.ShortTag()))
		}
		c.path = append(c.path, k.Value)
		if first, dup := seen[k.Value]; dup {
			return c.fail(n.Content[i], "duplicate key (first at line "+strconv.Itoa(first)+")")
		}
		seen[k.Value] = n.Content[i].Line
		if err := c.enc.WriteToken(jsontext.String(k.Value)); err != nil {
			return c.fail(n.Content[i], quote.Cut(err.Error()))
		}
		if err := c.node(n.Content[i+1]); err != nil {
			return err
		}
		c.path = c.path[:len(c.path)-1]
	}
	return c.enc.WriteToken(jsontext.EndObject)
}

// scalar writes a scalar by its resolved core-schema tag. A float keeps a decimal point, so an
// integer field refuses it like JSON's 1.0.
func (c *converter) scalar(n *yaml.Node) error {
	var tok jsontext.Token
	switch t := n.ShortTag(); t {
	case "!!str", "!!timestamp": // a plain date is its text
		tok = jsontext.String(n.Value)
	case "!!null":
		tok = jsontext.Null
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return c.fail(n, "not a boolean: "+quote.Q(n.Value))
		}
		tok = jsontext.Bool(b)
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return c.fail(n, "not an integer: "+quote.Q(n.Value))
		}
		tok = jsontext.Int(i)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return c.fail(n, "not a finite number: "+quote.Q(n.Value))
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		if err := c.enc.WriteValue(jsontext.Value(s)); err != nil {
			return c.fail(n, quote.Cut(err.Error()))
		}
		return nil
	default:
		return c.fail(n, "unsupported YAML tag "+quote.Q(t))
	}
	if err := c.enc.WriteToken(tok); err != nil {
		return c.fail(n, quote.Cut(err.Error()))
	}
	return nil
}

// locate finds in the YAML tree the node a JSON decoding error points at, for its path and line.
// The JSON was written from the tree, so every pointer token names a mapping key or a list index.
func locate(root *yaml.Node, ptr jsontext.Pointer) (path string, line, col int) {
	var parts []string
	n := root
	line, col = n.Line, n.Column
	for tok := range ptr.Tokens() {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return joinPath(parts), line, col
			}
			parts = append(parts, "["+tok+"]")
			n = n.Content[i]
			line, col = n.Line, n.Column
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				for k.Kind == yaml.AliasNode && k.Alias != nil {
					k = k.Alias
				}
				if k.Value == tok {
					parts = append(parts, tok)
					line, col = n.Content[i].Line, n.Content[i].Column // the key: where a reader looks
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return joinPath(parts), line, col
			}
		default:
			return joinPath(parts), line, col
		}
	}
	return joinPath(parts), line, col
}

// Locate finds the value at path — mapping keys and list indexes, as tokens ("orgs", "0",
// "labels", "example.com/tier") — in a YAML or JSON document that YAML has accepted, for an error
// found after decoding (a value the decoder took but a later check refuses). It returns the line
// and column of the entry's key or of the list item; where the path leaves the document (a
// missing field), of the deepest part found; 0, 0 for a document that does not parse. The
// document is parsed again: errors are rare, and the position costs nothing until one happens.
func Locate(data []byte, path ...string) (line, col int) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return 0, 0
	}
	var ptr jsontext.Pointer
	for _, tok := range path {
		ptr = ptr.AppendToken(tok)
	}
	_, line, col = locate(doc.Content[0], ptr)
	return line, col
}
