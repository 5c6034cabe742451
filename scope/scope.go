// Package scope parses and prints the names teamgate works with: slugs, owner strings
// (`org`, `org/team`) and project references (`project`, `org/project`, `org/team/project`,
// with `.` accepted as a separator in project references only).
//
// It uses only the standard library. Every malformed input yields a *teamgate.InvalidError that
// names the input and matches teamgate.ErrInvalid.
package scope

import (
	"strconv"
	"strings"

	"github.com/teamgate/teamgate"
)

// MaxSlugLen is the longest name the slug rule accepts.
const MaxSlugLen = 128

// slugBytes classifies bytes by value: '1' for the letters, digits and '_' a slug may hold, '-'
// for '-' (allowed, but not twice in a row), '0' for the rest.
const slugBytes = "000000000000000000000000000000000000000000000-0011111111110000000111111111111111111111111110000101111111111111111111111111100000" +
	"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

// CheckSlug reports whether s is a valid name: 1 to 128 of [A-Za-z0-9_-] with no "--".
// what names the kind of value ("org", "team", "user", ...) in the error.
func CheckSlug(what, s string) error {
	if s == "" {
		return teamgate.Invalid(what, s, "empty name")
	}
	if len(s) > MaxSlugLen {
		return teamgate.Invalid(what, s, "longer than 128 characters")
	}
	double := false // "--", found in the same pass: every request checks several slugs
	for i := 0; i < len(s); i++ {
		switch slugBytes[s[i]] {
		case '0':
			return teamgate.Invalid(what, s, "only letters, digits, '_' and '-' are allowed")
		case '-':
			double = double || i > 0 && s[i-1] == '-'
		}
	}
	if double {
		return teamgate.Invalid(what, s, `"--" is not allowed`)
	}
	return nil
}

// ValidSlug reports whether s follows the slug rule.
func ValidSlug(s string) bool { return CheckSlug("name", s) == nil }

// Owner is an organization (Team empty) or a team space inside one.
type Owner struct {
	Org  string
	Team string
}

// IsZero reports whether o names nothing.
func (o Owner) IsZero() bool { return o.Org == "" }

// IsTeam reports whether o is a team space (`org/team`).
func (o Owner) IsTeam() bool { return o.Team != "" }

// String returns `org` or `org/team`.
func (o Owner) String() string {
	if o.Team == "" {
		return o.Org
	}
	return o.Org + "/" + o.Team
}

// ParseOwner parses `org` or `org/team`. Only `/` separates; the empty string is an error (use
// the caller's default team before calling it).
func ParseOwner(s string) (Owner, error) {
	if s == "" {
		return Owner{}, teamgate.Invalid("owner", s, "empty owner")
	}
	org, team, isTeam := strings.Cut(s, "/") // not Split: no allocation on every request
	if strings.Contains(team, "/") {
		return Owner{}, teamgate.Invalid("owner", s, "an owner is `org` or `org/team`")
	}
	for i, p := range [2]string{org, team} {
		if i == 1 && !isTeam {
			break
		}
		if err := CheckSlug("owner", p); err != nil {
			return Owner{}, teamgate.Invalid("owner", s, BadPart(i, err))
		}
	}
	return Owner{Org: org, Team: team}, nil
}

// Ref is a resolved-by-shape project reference. Team is set only when the reference named a team
// space; it scopes resolution, it does not change the role computation.
type Ref struct {
	Org     string
	Team    string
	Project string
}

// String returns `org/project` or `org/team/project`.
func (r Ref) String() string {
	if r.Team == "" {
		return r.Org + "/" + r.Project
	}
	return r.Org + "/" + r.Team + "/" + r.Project
}

// Owner returns the org or team space the reference was written in.
func (r Ref) Owner() Owner { return Owner{Org: r.Org, Team: r.Team} }

// ParseProject parses a project reference. A one-part reference takes its org and team from ctx;
// with a zero ctx it is an error. Two parts are always `org/project`.
func ParseProject(s string, ctx Owner) (Ref, error) {
	if s == "" {
		return Ref{}, teamgate.Invalid("project reference", s, "empty reference")
	}
	var buf [3]string
	if n, ok := splitWellFormed(s, &buf); ok {
		return refOf(s, buf[:n], ctx)
	}
	parts := splitRef(s, buf[:0])
	if len(parts) > 3 {
		return Ref{}, teamgate.Invalid("project reference", s, "more than three parts")
	}
	for i, p := range parts {
		if err := CheckSlug("project reference", p); err != nil {
			return Ref{}, teamgate.Invalid("project reference", s, BadPart(i, err))
		}
	}
	return refOf(s, parts, ctx)
}

// refOf builds the reference s of one to three valid parts.
func refOf(s string, parts []string, ctx Owner) (Ref, error) {
	switch len(parts) {
	case 1:
		if ctx.IsZero() {
			return Ref{}, teamgate.Invalid("project reference", s, "a one-part reference needs a context owner (org or org/team)")
		}
		return Ref{Org: ctx.Org, Team: ctx.Team, Project: parts[0]}, nil
	case 2:
		return Ref{Org: parts[0], Project: parts[1]}, nil
	default:
		return Ref{Org: parts[0], Team: parts[1], Project: parts[2]}, nil
	}
}

// ParseFullProject parses a reference that must name its org (`org/project` or
// `org/team/project`), such as a transfer destination.
func ParseFullProject(s string) (Ref, error) {
	if len(splitRef(s, nil)) < 2 {
		return Ref{}, teamgate.Invalid("project reference", s, "a full reference `org/project` or `org/team/project` is required")
	}
	return ParseProject(s, Owner{})
}

// splitWellFormed splits a reference of one to three valid slugs in one pass, into parts; ok is
// false for anything else, and ParseProject's general path then names the error. Every request
// on a project parses one.
func splitWellFormed(s string, parts *[3]string) (n int, ok bool) {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if slugBytes[c] == '1' {
			continue // most bytes: one lookup
		}
		switch {
		case c == '/' || c == '.':
			if i == start || i-start > MaxSlugLen || n == 2 {
				return 0, false
			}
			parts[n], n, start = s[start:i], n+1, i+1
		case slugBytes[c] == '0', c == '-' && i > start && s[i-1] == '-':
			return 0, false
		}
	}
	if start == len(s) || len(s)-start > MaxSlugLen {
		return 0, false
	}
	parts[n] = s[start:]
	return n + 1, true
}

// splitRef splits a project reference on '/' and '.', keeping empty parts so that "acme//x" is
// caught as malformed rather than read as "acme/x". The parts are appended to parts.
func splitRef(s string, parts []string) []string {
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == '.' {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// BadPart says which part of a name made of parts (counted from 1) CheckSlug refused, and why:
// "part 2: empty name". The error quotes the whole input already; repeating the part would quote
// a huge input twice.
func BadPart(i int, err error) string {
	why := err.Error()
	if ie, ok := err.(*teamgate.InvalidError); ok {
		why = ie.Reason
	}
	return "part " + strconv.Itoa(i+1) + ": " + why
}

// Kind is the kind of resource an action takes.
type Kind string

// Resource kinds.
const (
	KindOrg     Kind = "org"
	KindTeam    Kind = "team"
	KindProject Kind = "project"
)

// Resource is a parsed resource string of a known kind.
type Resource struct {
	Kind  Kind
	Owner Owner // for org and team resources
	Ref   Ref   // for project resources
}

// ParseResource parses s as a resource of the given kind, by shape: an org resource is exactly
// one part, a team resource exactly `org/team`, a project resource a project reference (a
// one-part one resolved against ctx). Any other shape is an error naming the input.
func ParseResource(kind Kind, s string, ctx Owner) (Resource, error) {
	switch kind {
	case KindOrg:
		o, err := ParseOwner(s)
		if err != nil {
			return Resource{}, err
		}
		if o.IsTeam() {
			return Resource{}, teamgate.Invalid("org resource", s, "org actions take an org name, not a team space")
		}
		return Resource{Kind: kind, Owner: o}, nil
	case KindTeam:
		o, err := ParseOwner(s)
		if err != nil {
			return Resource{}, err
		}
		if !o.IsTeam() {
			return Resource{}, teamgate.Invalid("team resource", s, "team actions take `org/team`")
		}
		return Resource{Kind: kind, Owner: o}, nil
	case KindProject:
		r, err := ParseProject(s, ctx)
		if err != nil {
			return Resource{}, err
		}
		return Resource{Kind: kind, Ref: r}, nil
	default:
		return Resource{}, teamgate.Invalid("resource kind", string(kind), "expected org, team or project")
	}
}
