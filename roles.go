package teamgate

// OrgRole is a user's role in an org (SPEC §2, the OrgMember row).
//
// The constants are the vocabulary only: how roles rank against each other, which project
// role an org role gives and which org roles override every restriction are data of the Rego
// policy (rego/data.json `org_ranks`, `org_base` and `org_override`), so an author can change
// them without touching Go.
type OrgRole string

// The org roles.
const (
	OrgOwner    OrgRole = "owner"
	OrgManager  OrgRole = "manager"
	OrgAdmin    OrgRole = "admin"
	OrgMember   OrgRole = "member"
	OrgViewer   OrgRole = "viewer"
	OrgBilling  OrgRole = "billing"
	OrgOutsider OrgRole = "outsider"
)

// ProjectRole is a role on a project; team memberships and project grants take the same
// roles (RoleNone excepted: it is only ever an outcome, never stored).
//
// As for OrgRole, the order of the roles is data of the Rego policy (rego/data.json `ranks`).
type ProjectRole string

// The project (and team) roles.
const (
	RoleNone        ProjectRole = "none"
	RoleViewer      ProjectRole = "viewer"
	RoleMember      ProjectRole = "member"
	RoleContributor ProjectRole = "contributor"
	RoleAdmin       ProjectRole = "admin"
)

// OrgRoles returns every org role, in no particular order: the vocabulary the store accepts and
// the policy's data must map (rego/data.json `org_base`, `org_ranks`).
func OrgRoles() []OrgRole {
	return []OrgRole{OrgOwner, OrgManager, OrgAdmin, OrgMember, OrgViewer, OrgBilling, OrgOutsider}
}

// MemberRoles returns the roles a team membership or a project grant may hold, in no particular
// order (RoleNone is not one of them): the vocabulary the store accepts and the policy's data must
// rank (rego/data.json `ranks`).
func MemberRoles() []ProjectRole {
	return []ProjectRole{RoleViewer, RoleMember, RoleContributor, RoleAdmin}
}
