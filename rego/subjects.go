package rego

import "github.com/open-policy-agent/opa/v1/ast"

// ExtAllows reports whether the policy defines data.teamgate.ext.allow — a rule of an author's
// module at or below it, or a non-empty value in the policy's data. Only an ext.allow can allow a
// subject the default rules deny as not_org_member, so while it reports false the subjects a
// policy may allow on an org's resources are among the org's members (authz.Engine.ListSubjects
// relies on it); when true, any subject id may be allowed, whether the directory knows it or not.
func (p *Policy) ExtAllows() bool { return p.extAllows }

// definesExtAllow reads ExtAllows from the compiled modules and the merged data.
func definesExtAllow(c *ast.Compiler, data map[string]any) bool {
	ref := ast.MustParseRef("data.teamgate.ext.allow")
	if c != nil && len(c.GetRules(ref)) > 0 {
		return true
	}
	tg, _ := data["teamgate"].(map[string]any)
	ext, _ := tg["ext"].(map[string]any)
	switch v := ext["allow"].(type) {
	case nil:
		return false
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// OrgRank returns an org role's rank in the policy's data (data.teamgate.org_ranks, the order
// members.manage compares roles by); false for a name that is not an org role.
func (p *Policy) OrgRank(role string) (int, bool) {
	if !isOrgRole(role) {
		return 0, false
	}
	tg, _ := p.data["teamgate"].(map[string]any)
	ranks, _ := tg["org_ranks"].(map[string]any)
	f, ok := number(ranks[role]) // checked when the policy loaded
	return int(f), ok
}
