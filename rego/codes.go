package rego

// Code is a decision reason's stable code (SPEC §4 "Decision"). The default policy produces
// the codes below; an author's module may produce others.
type Code string

// Reason codes.
const (
	CodeOrgOverride       Code = "org_override"       // org owner or manager: admin everywhere
	CodeOrgRole           Code = "org_role"           // the org role's base project role, or the org role itself
	CodeGrant             Code = "grant"              // a grant on the project sets the base role
	CodeBreakGlass        Code = "break_glass"        // a break-glass grant (an emergency elevation) sets it
	CodeTeamRole          Code = "team_role"          // a team role decides
	CodeOwnRun            Code = "own_run"            // runs.delete of the subject's own run
	CodeExtensionAllow    Code = "extension_allow"    // data.teamgate.ext.allow
	CodeNotOrgMember      Code = "not_org_member"     // deny: not a member of the org
	CodeRestricted        Code = "restricted"         // deny: in none of a restricted project's teams
	CodeInsufficientRole  Code = "insufficient_role"  // deny: a role too low
	CodeDestinationDenied Code = "destination_denied" // deny: runs.transfer destination closed
	CodeNotFound          Code = "not_found"          // deny: the resource does not exist
	CodeNotInScope        Code = "not_in_scope"       // deny: a run outside the team space (authz)
	CodeFeatureExcluded   Code = "feature_excluded"   // deny: a version kind the project excludes (authz)
	CodeExtensionDeny     Code = "extension_deny"     // deny: data.teamgate.ext.deny
	CodeError             Code = "error"              // deny: evaluation failed
)
