package teamgate.authz_test

import rego.v1

import data.teamgate.authz

subject(org_role, grant, team_roles) := {"id": "u", "org_role": org_role, "grant": grant, "team_roles": team_roles}

project(teams, restricted) := {
	"kind": "project", "org": "acme", "team": "", "project": "p",
	"teams": teams, "restricted": restricted, "exists": true, "missing": "",
}

req(action, s, r) := {"subject": s, "action": action, "resource": r, "attributes": {}}

test_owner_overrides_restriction if {
	d := authz.decision with input as req("runs.approve", subject("owner", "", {}), project(["eng"], true))
	d.allow
	d.role == "admin"
	d.reasons[0].code == "org_override"
}

test_non_member_denied if {
	d := authz.decision with input as req("runs.get", subject("none", "", {}), project([], false))
	not d.allow
	d.role == "none"
	d.reasons[0].code == "not_org_member"
}

test_restricted_without_team_or_grant if {
	d := authz.decision with input as req("runs.get", subject("admin", "", {"other": "admin"}), project(["eng"], true))
	not d.allow
	d.reasons[0].code == "restricted"
	d.role == "none"
}

test_restricted_and_empty_is_closed if {
	d := authz.decision with input as req("runs.get", subject("member", "", {"eng": "admin"}), project([], true))
	not d.allow
	d.reasons[0].code == "restricted"
}

test_team_role_raises_base if {
	d := authz.decision with input as req("runs.stop", subject("viewer", "", {"eng": "contributor"}), project(["eng", "research"], true))
	d.allow
	d.role == "contributor"
	d.reasons[0].code == "team_role"
}

test_highest_team_role_wins if {
	d := authz.decision with input as req("runs.get", subject("viewer", "", {"eng": "member", "research": "admin"}), project(["eng", "research"], true))
	d.role == "admin"
}

test_team_role_not_above_base_keeps_base_reason if {
	d := authz.decision with input as req("runs.get", subject("member", "", {"eng": "viewer"}), project(["eng"], true))
	d.role == "contributor"
	d.reasons[0].code == "org_role"
}

test_grant_lowers_org_role if {
	d := authz.decision with input as req("runs.stop", subject("member", "viewer", {}), project([], false))
	not d.allow
	d.role == "viewer"
	d.reasons[0].code == "insufficient_role"
}

test_grant_opens_restricted if {
	d := authz.decision with input as req("runs.get", subject("outsider", "viewer", {}), project(["eng"], true))
	d.allow
	d.reasons[0].code == "grant"
}

test_break_glass_opens_restricted_with_its_own_reason if {
	s := object.union(subject("member", "admin", {}), {"break_glass": true})
	d := authz.decision with input as req("runs.delete", s, project(["eng"], true))
	d.allow
	d.role == "admin"
	d.reasons[0].code == "break_glass"
}

test_break_glass_below_team_role_gives_team_role if {
	s := object.union(subject("member", "viewer", {"eng": "admin"}), {"break_glass": true})
	d := authz.decision with input as req("runs.delete", s, project(["eng"], true))
	d.allow
	d.reasons[0].code == "team_role"
}

test_billing_on_open_project if {
	d := authz.decision with input as req("runs.get", subject("billing", "", {}), project([], false))
	not d.allow
	d.role == "none"
	d.reasons[0].code == "insufficient_role"
}

test_own_run if {
	r := object.union(req("runs.delete", subject("member", "", {}), project([], false)), {"attributes": {"run": {"created_by": "u"}}})
	d := authz.decision with input as r
	d.allow
	d.reasons[0].code == "own_run"
}

test_own_run_ignores_non_object if {
	r := object.union(req("runs.delete", subject("member", "", {}), project([], false)), {"attributes": {"run": "u"}})
	d := authz.decision with input as r
	not d.allow
}

test_transfer_needs_destination if {
	d := authz.decision with input as req("runs.transfer", subject("admin", "", {}), project([], false))
	not d.allow
	d.role == "admin"
	d.reasons[0].code == "destination_denied"
}

test_not_found_for_owner if {
	r := req("runs.get", subject("owner", "", {}), object.union(project([], false), {"exists": false, "missing": "project p does not exist"}))
	d := authz.decision with input as r
	not d.allow
	d.role == "none"
	d.reasons[0].code == "not_found"
}

test_members_manage_limits if {
	r := {"subject": subject("manager", "", {}), "action": "members.manage", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {"target_role": "owner"}}
	d := authz.decision with input as r
	not d.allow
	d.reasons[0].code == "insufficient_role"
}

# ---------------------------------------------------------------------------------------------
# Nobody assigns a role above their own: project.access (grants) and team.members.manage (team
# roles) with target_role / target_current_role, by data rank (manages_members in the catalog).
# Under the default data both actions need admin, the top rank; data that opens them to lower
# roles, or ranks a role above admin, makes the limit bite.

with_attrs(r, attrs) := object.union(r, {"attributes": attrs})

team_res := {"kind": "team", "org": "acme", "team": "eng", "exists": true}

# Contributors may manage grants and team members (data), within their own role.
contributor_manages := object.union(data.teamgate.actions, {
	"project.access": {"kind": "project", "role": "contributor", "manages_members": true},
	"team.members.manage": {"kind": "team", "role": "contributor", "manages_members": true},
})

test_project_access_limit_default_data if {
	# An admin by grant gives and changes admin; attributes do not open the action to others.
	a := req("project.access", subject("member", "admin", {}), project([], false))
	authz.decision.allow with input as with_attrs(a, {"target_role": "admin", "target_current_role": "admin"})
	c := req("project.access", subject("member", "", {}), project([], false))
	d := authz.decision with input as with_attrs(c, {"target_role": "viewer"})
	not d.allow
	d.role == "contributor"
	d.reasons[0].code == "insufficient_role"
}

test_project_access_limit_follows_data if {
	r := req("project.access", subject("member", "", {}), project([], false)) # base role contributor
	authz.decision.allow with input as r with data.teamgate.actions as contributor_manages
	every attrs in [{"target_role": "contributor"}, {"target_role": "viewer", "target_current_role": "member"}] {
		authz.decision.allow with input as with_attrs(r, attrs) with data.teamgate.actions as contributor_manages
	}
	every attrs in [{"target_role": "admin"}, {"target_role": "viewer", "target_current_role": "admin"}, {"target_current_role": "admin"}] {
		d := authz.decision with input as with_attrs(r, attrs) with data.teamgate.actions as contributor_manages
		not d.allow
		d.role == "contributor"
		d.reasons[0].code == "insufficient_role"
	}
	# Re-ranked: member above contributor, so a contributor may not give member.
	not authz.decision.allow with input as with_attrs(r, {"target_role": "member"})
		with data.teamgate.actions as contributor_manages
		with data.teamgate.ranks as {"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4}
}

test_project_access_limit_through_team_and_override if {
	# A team role raising the base role, and an org override, are the subject's own role.
	t := req("project.access", subject("viewer", "", {"eng": "contributor"}), project(["eng"], true))
	authz.decision.allow with input as with_attrs(t, {"target_role": "contributor"}) with data.teamgate.actions as contributor_manages
	not authz.decision.allow with input as with_attrs(t, {"target_role": "admin"}) with data.teamgate.actions as contributor_manages
	o := req("project.access", subject("manager", "", {}), project(["eng"], true))
	authz.decision.allow with input as with_attrs(o, {"target_role": "admin", "target_current_role": "admin"})
}

test_team_members_manage_limit if {
	r := {"subject": subject("member", "", {"eng": "contributor"}), "action": "team.members.manage", "resource": team_res, "attributes": {}}
	not authz.decision.allow with input as r # the default catalog wants admin
	authz.decision.allow with input as with_attrs(r, {"target_role": "contributor", "target_current_role": "viewer"})
		with data.teamgate.actions as contributor_manages
	every attrs in [{"target_role": "admin"}, {"target_role": "viewer", "target_current_role": "admin"}] {
		d := authz.decision with input as with_attrs(r, attrs) with data.teamgate.actions as contributor_manages
		not d.allow
		d.role == "contributor"
		d.reasons[0].code == "insufficient_role"
	}
	# An org admin in the team is its admin; an org manager is every team's admin.
	for_admin := {"subject": subject("admin", "", {"eng": "viewer"}), "action": "team.members.manage", "resource": team_res, "attributes": {"target_role": "admin"}}
	authz.decision.allow with input as for_admin
	authz.decision.allow with input as object.union(for_admin, {"subject": subject("manager", "", {})})
}

test_limit_above_admin_by_data if {
	# A role ranked above admin in data: an admin may not give it, whoever they are.
	ranks := {"none": 0, "viewer": 1, "member": 2, "contributor": 3, "admin": 4, "lead": 5}
	p := with_attrs(req("project.access", subject("owner", "", {}), project([], false)), {"target_role": "lead"})
	d := authz.decision with input as p with data.teamgate.ranks as ranks
	not d.allow
	d.role == "admin"
	d.reasons[0].code == "insufficient_role"
	t := {"subject": subject("member", "", {"eng": "admin"}), "action": "team.members.manage", "resource": team_res, "attributes": {"target_current_role": "lead"}}
	not authz.decision.allow with input as t with data.teamgate.ranks as ranks
	authz.decision.allow with input as json.patch(t, [{"op": "replace", "path": "/attributes", "value": {"target_role": "admin"}}])
		with data.teamgate.ranks as ranks
}

test_limit_is_named_in_the_reason if {
	# The reason says which limit denied, and the role it names: the engine's message is made of it.
	r := req("project.access", subject("member", "", {}), project([], false))
	d := authz.decision with input as with_attrs(r, {"target_role": "viewer", "target_current_role": "admin"})
		with data.teamgate.actions as contributor_manages
	d.reasons == [{"code": "insufficient_role", "limit": {"attribute": "target_current_role", "role": "admin"}}]
	t := {"subject": subject("member", "", {"eng": "contributor"}), "action": "team.members.manage", "resource": team_res, "attributes": {"target_role": "admin"}}
	e := authz.decision with input as t with data.teamgate.actions as contributor_manages
	e.reasons == [{"code": "insufficient_role", "limit": {"attribute": "target_role", "role": "admin"}}]
	o := {"subject": subject("manager", "", {}), "action": "members.manage", "resource": {"kind": "org", "org": "acme", "exists": true}, "attributes": {"target_role": "owner"}}
	f := authz.decision with input as o
	f.reasons == [{"code": "insufficient_role", "limit": {"attribute": "target_role", "role": "owner"}}]
	g := authz.decision with input as json.patch(o, [{"op": "replace", "path": "/attributes", "value": {"target_current_role": "owner"}}])
	g.reasons == [{"code": "insufficient_role", "limit": {"attribute": "target_current_role", "role": "owner"}}]
}

test_limit_only_where_the_role_suffices if {
	# A team member below the action's role is denied for that role, not for the limit.
	t := {"subject": subject("member", "", {"eng": "member"}), "action": "team.members.manage", "resource": team_res, "attributes": {"target_role": "admin"}}
	d := authz.decision with input as t
	d.reasons == [{"code": "insufficient_role"}]
	p := with_attrs(req("project.access", subject("member", "", {}), project([], false)), {"target_role": "admin"})
	e := authz.decision with input as p
	e.reasons == [{"code": "insufficient_role"}]
}

test_limit_unknown_target_denies if {
	# The engine refuses these as errors first; the rules themselves never let them through.
	a := req("project.access", subject("owner", "", {}), project([], false))
	every v in ["emperor", 3, null, {"role": "viewer"}] {
		not authz.decision.allow with input as with_attrs(a, {"target_role": v})
		not authz.decision.allow with input as with_attrs(a, {"target_current_role": v})
	}
	# members.manage too (an org manager giving an unknown role was allowed: the rank comparison
	# was undefined, so the limit's branch was not taken).
	m := {"subject": subject("manager", "", {}), "action": "members.manage", "resource": {"kind": "org", "org": "acme", "exists": true}}
	every v in ["emperor", "ow\u001b[2Jner", 3, null, ["owner"], {"role": "viewer"}] {
		d := authz.decision with input as object.union(m, {"attributes": {"target_role": v}})
		not d.allow
		d.reasons == [{"code": "insufficient_role", "limit": {"attribute": "target_role", "role": v}}]
	}
}

test_team_admin_by_org_admin_membership if {
	r := {"subject": subject("admin", "", {"eng": "viewer"}), "action": "team.update", "resource": {"kind": "team", "org": "acme", "team": "eng", "exists": true}, "attributes": {}}
	d := authz.decision with input as r
	d.allow
	d.role == "admin"
}

test_team_delete_needs_org_owner_or_manager if {
	r := {"subject": subject("member", "", {"eng": "admin"}), "action": "team.delete", "resource": {"kind": "team", "org": "acme", "team": "eng", "exists": true}, "attributes": {}}
	d := authz.decision with input as r
	not d.allow
	d.role == "admin"
}

test_extension_deny_beats_allow if {
	d := authz.decision with input as req("runs.get", subject("owner", "", {}), project([], false))
		with data.teamgate.ext.deny as {"frozen"}
		with data.teamgate.ext.allow as {"open"}
	not d.allow
	d.reasons[0].code == "extension_deny"
}

test_extension_allow if {
	d := authz.decision with input as req("runs.get", subject("billing", "", {}), project([], false))
		with data.teamgate.ext.allow as {"billing may read"}
	d.allow
	d.reasons[0].code == "extension_allow"
}

# ---------------------------------------------------------------------------------------------
# runs.transfer: the destination role comes from the project role rule applied to the
# destination's facts. The source is always one the subject administers (an admin grant), so
# the destination alone decides.

src := project(["src"], true)

admin_on_src(org_role, team_roles) := subject(org_role, "admin", team_roles)

transfer(s, d) := object.union(req("runs.transfer", s, src), {"destination": d})

dest_project(teams, restricted) := object.union(project(teams, restricted), {"project": "dst"})

# The destination subject: the same person's facts in the destination's org and project.
dest(org_role, grant, team_roles, r) := {"subject": subject(org_role, grant, team_roles), "resource": r}

transfer_denied(d) if {
	not d.allow
	d.role == "admin" # the source's role
	d.reasons[0].code == "destination_denied"
}

test_transfer_destination_not_an_org_member if {
	d := authz.decision with input as transfer(admin_on_src("member", {}), dest("none", "", {}, dest_project([], false)))
	transfer_denied(d)
}

test_transfer_destination_base_none_on_open_project if {
	every org_role in ["billing", "outsider"] {
		d := authz.decision with input as transfer(admin_on_src(org_role, {}), dest(org_role, "", {}, dest_project([], false)))
		transfer_denied(d)
	}
}

test_transfer_destination_restricted_no_team_no_grant if {
	d := authz.decision with input as transfer(
		admin_on_src("admin", {"src": "admin"}),
		dest("admin", "", {"src": "admin", "other": "admin"}, dest_project(["eng"], true)),
	)
	transfer_denied(d)
}

test_transfer_destination_teams_narrowed_to_nothing if {
	# project teams ∩ policy teams = ∅: restricted with no team, whatever teams the subject has.
	d := authz.decision with input as transfer(
		admin_on_src("member", {"eng": "admin"}),
		dest("member", "", {"eng": "admin", "research": "admin"}, dest_project([], true)),
	)
	transfer_denied(d)
}

test_transfer_destination_role_below_contributor if {
	# An org viewer on an open project, and a team member (no grant) on a restricted one.
	d1 := authz.decision with input as transfer(admin_on_src("viewer", {}), dest("viewer", "", {}, dest_project([], false)))
	transfer_denied(d1)
	d2 := authz.decision with input as transfer(admin_on_src("outsider", {}), dest("outsider", "", {"eng": "member"}, dest_project(["eng"], true)))
	transfer_denied(d2)
}

test_transfer_destination_grant_lowers if {
	d := authz.decision with input as transfer(admin_on_src("member", {}), dest("member", "viewer", {}, dest_project([], false)))
	transfer_denied(d)
}

test_transfer_destination_unknown if {
	d := authz.decision with input as transfer(
		admin_on_src("owner", {}),
		dest("owner", "", {}, object.union(dest_project([], false), {"exists": false, "missing": "project acme/dst does not exist"})),
	)
	transfer_denied(d)
}

test_transfer_destination_absent if {
	d := authz.decision with input as req("runs.transfer", admin_on_src("member", {}), src)
	transfer_denied(d)
}

test_transfer_destination_open_to_team_member if {
	d := authz.decision with input as transfer(admin_on_src("outsider", {}), dest("outsider", "", {"eng": "contributor"}, dest_project(["eng"], true)))
	d.allow
	d.reasons[0].code == "grant" # the source's reason
}

test_transfer_destination_org_owner_and_manager_reach_everything if {
	every org_role in ["owner", "manager"] {
		every r in [dest_project([], true), dest_project(["eng"], true), dest_project([], false)] {
			d := authz.decision with input as transfer(admin_on_src(org_role, {}), dest(org_role, "", {}, r))
			d.allow
		}
	}
}

test_transfer_destination_follows_data_ranks if {
	# Re-ranked in data so that member outranks contributor: a team member reaches the
	# contributor the action needs on the destination.
	r := transfer(admin_on_src("outsider", {}), dest("outsider", "", {"eng": "member"}, dest_project(["eng"], true)))
	not authz.decision.allow with input as r
	authz.decision.allow with input as r
		with data.teamgate.ranks as {"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4}
}

test_team_rank_follows_data_ranks if {
	r := req("runs.stop", subject("viewer", "", {"eng": "member", "research": "contributor"}), project(["eng", "research"], true))
	authz.decision.role == "contributor" with input as r
	d := authz.decision with input as r
		with data.teamgate.ranks as {"none": 0, "viewer": 1, "contributor": 2, "member": 3, "admin": 4}
	d.role == "member"
	d.allow
}

test_org_base_is_data if {
	r := req("runs.get", subject("member", "", {}), project([], false))
	not authz.decision.allow with input as r with data.teamgate.org_base.member as "none"
}

# ---------------------------------------------------------------------------------------------
# input.subject.team_role: the engine passes the subject's highest team role among the
# resource's teams; an input written by hand may leave it out and it is found from team_roles.

with_team_role(r, role) := object.union(r, {"subject": object.union(r.subject, {"team_role": role})})

test_team_role_found_when_left_out if {
	r := req("runs.get", subject("viewer", "", {"eng": "member", "research": "admin", "other": "admin"}), project(["eng", "research"], true))
	authz.team_role == "admin" with input as r
	authz.team_role == "none" with input as req("runs.get", subject("viewer", "", {"other": "admin"}), project(["eng"], true))
	t := {"subject": subject("member", "", {"eng": "contributor"}), "action": "team.get", "resource": {"kind": "team", "org": "acme", "team": "eng", "exists": true}, "attributes": {}}
	authz.team_role == "contributor" with input as t
}

test_team_role_given_is_the_one_read if {
	# The same decision as from team_roles, and the given fact wins over them.
	r := req("runs.stop", subject("viewer", "", {"eng": "contributor"}), project(["eng"], true))
	d1 := authz.decision with input as r
	d2 := authz.decision with input as with_team_role(r, "contributor")
	d1 == d2
	d3 := authz.decision with input as with_team_role(r, "none")
	d3.reasons[0].code == "restricted"
}
