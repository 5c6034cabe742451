package store

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
)

// The role names a write may store. They are for validation only and in no particular order:
// how roles rank is data of the Rego policy (rego/data.json), never the store's business.
var (
	orgRoles  = teamgate.OrgRoles()
	teamRoles = teamgate.MemberRoles()
)

// OrgRoles returns the names of the org roles, in no particular order.
func OrgRoles() []string { return names(orgRoles) }

// TeamRoles returns the names of the roles a team membership or a project grant may hold, in no
// particular order (teamgate.RoleNone is not one of them).
func TeamRoles() []string { return names(teamRoles) }

// IsOrgRole reports whether role is an org role.
func IsOrgRole(role string) bool { return slices.Contains(orgRoles, teamgate.OrgRole(role)) }

func names[R ~string](roles []R) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// Org is an organization and the defaults every project in it inherits.
type Org struct {
	Name                     string   `json:"name"`
	Queue                    string   `json:"queue,omitempty"`
	DefaultPresets           []string `json:"default_presets,omitempty"`
	ArchivedDeletionInterval int      `json:"archived_deletion_interval,omitempty"`
}

// Defaults returns the org's defaults as the policy package takes them.
func (o Org) Defaults() policy.OrgDefaults {
	return policy.OrgDefaults{Queue: o.Queue, DefaultPresets: o.DefaultPresets, ArchivedDeletionInterval: o.ArchivedDeletionInterval}
}

// Team is a team of an org. Its members are written with PutTeamMember.
type Team struct {
	Org         string `json:"org"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Policy      string `json:"policy,omitempty"` // linked policy: connected to projects created in the team space
}

// Grant is a user's own access to one project.
type Grant struct {
	Role           string   `json:"role"`
	Queue          string   `json:"queue,omitempty"`
	Namespace      string   `json:"namespace,omitempty"`
	DefaultPresets []string `json:"default_presets,omitempty"`
	// ExpiresAt ends the grant (zero: never). See "Expiry" in the package doc.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// BreakGlass marks an emergency elevation (authz.Engine.BreakGlass): who made it, when and
	// why. Policies see it as input.subject.break_glass and give the reason code break_glass.
	BreakGlass *BreakGlass `json:"break_glass,omitempty"`
}

// BreakGlass records an emergency elevation: a grant that must expire, with its actor, the time
// it was made and a justification.
type BreakGlass struct {
	Actor         string    `json:"actor" yaml:"actor"`
	At            time.Time `json:"at" yaml:"at"`
	Justification string    `json:"justification" yaml:"justification"`
}

// MaxJustification bounds a break-glass justification, in bytes.
const MaxJustification = 1024

// Project is a project of an org. Teams restricts access (empty = open to the org).
type Project struct {
	Org       string           `json:"org"`
	Name      string           `json:"name"`
	Teams     []string         `json:"teams,omitempty"`
	Policy    string           `json:"policy,omitempty"`
	Settings  policy.Settings  `json:"settings"`
	Grants    map[string]Grant `json:"grants,omitempty"`
	CreatedBy string           `json:"created_by,omitempty"`
	// Labels are free-form facts about the project that policies read as input.resource.labels
	// (SPEC §2); see ValidateLabels for what a key and a value may be.
	Labels map[string]string `json:"labels,omitempty"`
}

// Policy is an organization policy.
type Policy struct {
	Org      string          `json:"org"`
	Name     string          `json:"name"`
	Settings policy.Settings `json:"settings"`
}

// User is a user's own record.
type User struct {
	ID          string `json:"id"`
	DefaultTeam string `json:"default_team,omitempty"` // owner string `org/team`
}

func checkRole[R ~string](what, role string, allowed []R) error {
	if !slices.Contains(allowed, R(role)) {
		return teamgate.Invalid(what, role, "expected one of "+strings.Join(names(allowed), ", "))
	}
	return nil
}

func (o Org) validate() error {
	if err := scope.CheckSlug("org", o.Name); err != nil {
		return err
	}
	s := policy.Settings{Queue: o.Queue, DefaultPresets: o.DefaultPresets, ArchivedDeletionInterval: o.ArchivedDeletionInterval}
	return s.Validate("org " + o.Name)
}

func (g Grant) equal(h Grant) bool {
	return g.Role == h.Role && g.Queue == h.Queue && g.Namespace == h.Namespace && slices.Equal(g.DefaultPresets, h.DefaultPresets) &&
		g.ExpiresAt.Equal(h.ExpiresAt) && (g.BreakGlass == nil) == (h.BreakGlass == nil) &&
		(g.BreakGlass == nil || *g.BreakGlass == *h.BreakGlass)
}

// isControl reports the characters a justification may not hold: control characters (line
// breaks, terminal escapes) and bidirectional overrides, which would forge or hide text where
// the justification is shown (decision log tables, access-diff, terminals).
func isControl(r rune) bool {
	return unicode.IsControl(r) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

func (g Grant) validate(what string) error {
	if err := checkRole(what+" role", g.Role, teamRoles); err != nil {
		return err
	}
	if err := checkExpiry(what, g.ExpiresAt); err != nil {
		return err
	}
	if b := g.BreakGlass; b != nil {
		switch {
		case g.ExpiresAt.IsZero():
			return teamgate.Invalid(what+" break_glass", b.Actor, "a break-glass grant needs expires_at: it must end by itself")
		case strings.TrimSpace(b.Justification) == "":
			return teamgate.Invalid(what+" break_glass justification", b.Justification, "required: say why")
		case len(b.Justification) > MaxJustification || !utf8.ValidString(b.Justification):
			return teamgate.Invalid(what+" break_glass justification", b.Justification[:min(len(b.Justification), 64)],
				fmt.Sprintf("at most %d bytes of UTF-8 text", MaxJustification))
		case strings.ContainsFunc(b.Justification, isControl):
			i := strings.IndexFunc(b.Justification, isControl)
			return teamgate.Invalid(what+" break_glass justification", fmt.Sprintf("%.64q", b.Justification),
				fmt.Sprintf("control character %U at byte %d: one line of printable text", []rune(b.Justification[i:])[0], i))
		case b.At.IsZero():
			return teamgate.Invalid(what+" break_glass at", "", "required: when the elevation was made")
		}
		if err := scope.CheckSlug(what+" break_glass actor", b.Actor); err != nil {
			return err
		}
	}
	s := policy.Settings{Queue: g.Queue, DefaultPresets: g.DefaultPresets}
	if g.Namespace != "" {
		s.Namespaces = []string{g.Namespace}
	}
	return s.Validate(what)
}

// Limits of a project's labels. Labels are facts a policy compares (input.resource.labels), not
// documents: the bounds keep every project record, decision input and change event small.
const (
	MaxLabels          = 64  // labels per project
	MaxLabelKeyBytes   = 128 // bytes of a key
	MaxLabelValueBytes = 256 // bytes of a value
)

// ValidateLabels checks a project's labels: at most MaxLabels; each key 1 to MaxLabelKeyBytes
// ASCII letters, digits, '_', '-', '.' and '/', starting and ending with a letter or digit (the
// Kubernetes label key alphabet, so "tier" and "example.com/approval" are keys); each value at
// most MaxLabelValueBytes of UTF-8 text without control characters (empty is a value). what
// names the labels in errors ("project acme/vision label"); an error matches teamgate.ErrInvalid
// and names the offending key or value. Keys are checked in order, so the same labels always give
// the same error.
func ValidateLabels(what string, labels map[string]string) error {
	_, err := checkLabels(what, labels)
	return err
}

// checkLabels is ValidateLabels that also returns the offending key ("" for the whole set).
func checkLabels(what string, labels map[string]string) (string, error) {
	if len(labels) > MaxLabels {
		return "", teamgate.Invalid(what+"s", fmt.Sprintf("%d labels", len(labels)), fmt.Sprintf("at most %d labels per project", MaxLabels))
	}
	for _, k := range sortedKeys(labels) {
		if err := checkLabelKey(k); err != nil {
			return k, teamgate.Invalid(what+" key", k, err.Error())
		}
		if err := checkLabelValue(labels[k]); err != nil {
			return k, teamgate.Invalid(what+" value", labels[k], "of key "+k+": "+err.Error())
		}
	}
	return "", nil
}

func checkLabelKey(k string) error {
	if k == "" || len(k) > MaxLabelKeyBytes {
		return fmt.Errorf("must be 1 to %d bytes", MaxLabelKeyBytes)
	}
	alnum := func(c byte) bool { return c < utf8.RuneSelf && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))) }
	for i := range len(k) {
		c := k[i]
		if !alnum(c) && !strings.ContainsRune("_-./", rune(c)) {
			// Name the character, not its first byte (%q of the byte 0xc3 of "é" prints 'Ã').
			what := fmt.Sprintf("%q", rune(c))
			if r, size := utf8.DecodeRuneInString(k[i:]); c >= utf8.RuneSelf && r == utf8.RuneError && size == 1 {
				what = fmt.Sprintf("byte 0x%02x (not UTF-8)", c)
			} else if c >= utf8.RuneSelf {
				what = fmt.Sprintf("%q", r)
			}
			return fmt.Errorf("%s at offset %d: a key holds ASCII letters, digits, '_', '-', '.' and '/'", what, i)
		}
	}
	if !alnum(k[0]) || !alnum(k[len(k)-1]) {
		return fmt.Errorf("must start and end with a letter or digit")
	}
	return nil
}

func checkLabelValue(v string) error {
	if len(v) > MaxLabelValueBytes {
		return fmt.Errorf("longer than %d bytes", MaxLabelValueBytes)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not UTF-8 text")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("holds control character %U", r)
		}
	}
	return nil
}
