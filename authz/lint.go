package authz

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/rego"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// LintCode is the stable code of a hygiene finding (see Lint).
type LintCode string

// The finding kinds of Lint.
const (
	// LintProjectUnreachable: only subjects allowed through an overriding org role (org_override:
	// owners and managers under the default data) may project.get the project.
	LintProjectUnreachable LintCode = "project_unreachable"
	// LintTeamWithoutAdmin: no member of the team may team.members.manage it (only subjects
	// whose org role reaches every team, owners and managers under the default data).
	LintTeamWithoutAdmin LintCode = "team_without_admin"
	// LintTeamAdminExpiring: the members who may team.members.manage the team may do so only
	// through team memberships that expire; the finding names when the last one ends.
	LintTeamAdminExpiring LintCode = "team_admin_expiring"
	// LintGrantRedundant: removing the grant changes no project decision of its holder (the
	// role it gives is what its teams and org role give anyway) for as long as it lasts, and it
	// carries no per-user settings. A break-glass grant is never reported.
	LintGrantRedundant LintCode = "grant_redundant"
	// LintDefaultTeamEmpty: a user's default team space shows them no project and they may not
	// create one there, so every call that takes the default team finds nothing.
	LintDefaultTeamEmpty LintCode = "default_team_empty"
	// LintOutsiderWithoutAccess: an org outsider allowed no action on the org, its teams or
	// its projects.
	LintOutsiderWithoutAccess LintCode = "outsider_without_access"
	// LintPolicyUnconnected: a policy no project is connected to and no team links.
	LintPolicyUnconnected LintCode = "policy_unconnected"
	// LintSettingsConflict: an effective-settings conflict (policy.Conflict) other than a skipped
	// default queue: an allow-list with nothing in common, a dropped default preset, an ignored
	// per-user namespace or presets.
	LintSettingsConflict LintCode = "settings_conflict"
	// LintDefaultQueueSkipped: a default queue (project, policy, org or a grant's) that the
	// effective queues or agents do not allow, so it is skipped.
	LintDefaultQueueSkipped LintCode = "default_queue_skipped"
	// LintPolicyUnknownValue: an author's module compares an input fact with a value outside
	// its vocabulary — an action not in the catalog, an unknown kind or role — so the comparison
	// never holds (rego.WarnUnknownValue; Policy.Warnings).
	LintPolicyUnknownValue LintCode = "policy_" + LintCode(rego.WarnUnknownValue)
	// LintPolicyUnknownField: an author's module reads an input field the document does not
	// have (rego.WarnUnknownField).
	LintPolicyUnknownField LintCode = "policy_" + LintCode(rego.WarnUnknownField)
	// LintPolicyPrint: an author's deciding module calls print, which only `teamgate test` runs
	// (rego.WarnPrint).
	LintPolicyPrint LintCode = "policy_" + LintCode(rego.WarnPrint)
)

// Finding is one hygiene problem: its code, the object it is about, a message for people and a
// fix. Object is a path: ORG/projects/P, ORG/projects/P/settings/FIELD,
// ORG/projects/P/grants/USER[/settings/FIELD], ORG/teams/T, ORG/members/USER,
// ORG/policies/NAME, users/ID; for a finding in an author's module (LintPolicy*), the place
// FILE:LINE:COL.
type Finding struct {
	Code    LintCode `json:"code"`
	Object  string   `json:"object"`
	Message string   `json:"message"`
	Fix     Fix      `json:"fix"`
}

// Fix is the change that removes a finding. Changes is the batch (store.Apply, or its JSON form
// for `teamgate apply --changes`); it is empty when no change can be chosen for the operator
// (Summary then says what to decide), never nil.
type Fix struct {
	Summary string        `json:"summary"`
	Changes store.Changes `json:"changes"`
}

// LintReport is the result of Lint: the policy's findings by file, line and column, then the
// directory's sorted by object, code and message, and the revision they were read at.
type LintReport struct {
	Findings []Finding `json:"findings"`
	Revision uint64    `json:"revision"`
}

// lintAttempts bounds how often Lint starts again because a write landed while it read.
const lintAttempts = 3

// Lint reports hygiene problems of the directory in orgs (every org when none is given): the
// LintCode kinds, each finding with a fix; and, whatever orgs, those of the policy in force:
// its authors' modules' warnings (rego.Policy.Warnings: a comparison that never holds, an
// input field the document lacks, a print call), whose fix says what to write and whose Changes are empty. What a subject may do is asked of the policy in
// force, never of a second copy of the role rule: reachability is ListSubjects, a team space's
// contents ListProjects, a redundant grant is one whose removal changes no project decision
// (the decision table's cells, or full evaluation for a policy without a table), an outsider's access
// is Authorize. Settings conflicts are policy.Merge's own.
//
// A fix's Changes, applied to the directory the report was read at, remove that finding (tests
// apply every fix); they may surface another one (clearing a skipped project queue lets the
// policy's queue be checked). Fixes are local: a project's own settings, a grant, a team role,
// a user record; they never change a policy or an org's defaults, which other projects share.
//
// The report is consistent at Revision: Lint reads in several snapshots (one per listing), and
// when a write lands meanwhile it starts again, up to lintAttempts times, then fails with an
// error matching teamgate.ErrStale. Cost: a ListSubjects per project and per team, a
// ListProjects per outsider and per default team, two decisions per grant and project action,
// a settings merge per project and per grant with per-user settings.
//
// An org name that is not a slug is an error matching teamgate.ErrInvalid; an unknown one
// matches teamgate.ErrNotFound.
func (e *Engine) Lint(ctx context.Context, orgs ...string) (LintReport, error) {
	if err := checkOrgNames(orgs); err != nil {
		return LintReport{}, err
	}
	for attempt := 1; ; attempt++ {
		before := e.dir.Revision()
		rep, err := e.lint(ctx, orgs)
		if err != nil {
			return LintReport{}, err
		}
		if rep.Revision == before && e.dir.Revision() == before {
			return rep, nil
		}
		if attempt == lintAttempts {
			return LintReport{}, fmt.Errorf("lint: the directory changed while it was read, %d times: %w", attempt, teamgate.ErrStale)
		}
	}
}

// linter collects one lint run's findings.
type linter struct {
	e        *Engine
	p        *rego.Policy
	rev      uint64
	findings []Finding
}

func (l *linter) add(code LintCode, object, msg string, fix Fix) {
	if fix.Changes == nil {
		fix.Changes = store.Changes{}
	}
	l.findings = append(l.findings, Finding{Code: code, Object: object, Message: msg, Fix: fix})
}

// lintOrg is what one org's checks read from the snapshot.
type lintOrg struct {
	name     string
	members  map[string]string
	teams    []string
	projects []lintProject
	users    []store.User // users whose default team is in this org
	grants   []lintGrant
}

type lintProject struct {
	name    string
	creator string
	teams   string // how its effective teams came about (origin.describe)
	// When the project's teams and its policy's have nothing in common: the policy's teams and
	// the fix that lets them apply (the teams conflict's).
	policyTeams []string
	teamsFix    Fix
}

// lintGrant is a grant without per-user settings: its holder's facts on the project for every
// project action of the catalog, when the grant ends (zero: never) and when the holder's
// expiring team memberships in the org end (team → expires_at).
type lintGrant struct {
	org, project, user, role string
	queries                  []*query
	ends                     time.Time
	memberEnds               map[string]time.Time
}

// checkOrgNames checks the org names given to an operator's report over orgs (Lint,
// Elevations): each a slug (teamgate.ErrInvalid).
func checkOrgNames(orgs []string) error {
	for _, o := range orgs {
		if err := scope.CheckSlug("org", o); err != nil {
			return err
		}
	}
	return nil
}

// listedOrgs are the orgs such a report covers in r: those named, each once (an org named twice
// is reported once, not twice), every org when none is; a named org that does not exist is a
// teamgate.NotFoundError.
func listedOrgs(r store.Reader, orgs []string) ([]string, error) {
	if len(orgs) == 0 {
		return r.Orgs(), nil
	}
	out := make([]string, 0, len(orgs))
	for _, o := range orgs {
		if _, ok := r.Org(o); !ok {
			return nil, &teamgate.NotFoundError{What: "org", Name: o}
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (e *Engine) lint(ctx context.Context, orgs []string) (LintReport, error) {
	l := &linter{e: e, p: e.policy.Load()}
	var data []lintOrg
	err := e.dir.View(func(r store.Reader) error {
		l.rev = r.Revision()
		names, err := listedOrgs(r, orgs)
		if err != nil {
			return err
		}
		for _, o := range names {
			od, err := l.read(r, o)
			if err != nil {
				return err
			}
			data = append(data, od)
		}
		return nil
	})
	if err != nil {
		return LintReport{}, err
	}
	for _, od := range data {
		for _, check := range []func(context.Context, lintOrg) error{l.projects, l.teamAdmins, l.grants, l.outsiders, l.defaultTeams} {
			if err := check(ctx, od); err != nil {
				return LintReport{}, err
			}
		}
	}
	slices.SortFunc(l.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Message, b.Message))
	})
	findings := []Finding{}
	for _, w := range l.p.Warnings() { // already by file, line and column
		findings = append(findings, Finding{Code: "policy_" + LintCode(w.Code), Object: fmt.Sprintf("%s:%d:%d", w.File, w.Line, w.Col),
			Message: w.Message, Fix: Fix{Summary: w.Fix, Changes: store.Changes{}}})
	}
	return LintReport{Findings: append(findings, l.findings...), Revision: l.rev}, nil
}

// read collects org o's facts and reports what the snapshot alone decides: settings conflicts
// and unconnected policies.
func (l *linter) read(r store.Reader, o string) (lintOrg, error) {
	od := lintOrg{name: o, members: r.Members(o), teams: r.Teams(o)}
	linked := map[string]bool{}
	for _, t := range od.teams {
		if tm, ok := r.Team(o, t); ok && tm.Policy != "" {
			linked[tm.Policy] = true
		}
	}
	for _, name := range r.Policies(o) {
		if len(r.ConnectedProjects(o, name)) == 0 && !linked[name] {
			l.add(LintPolicyUnconnected, o+"/policies/"+name,
				fmt.Sprintf("policy %s/%s is connected to no project and linked to no team: it governs nothing", o, name),
				Fix{Summary: "delete policy " + o + "/" + name, Changes: store.Changes{store.DeletePolicy{Org: o, Name: name}}})
		}
	}
	for _, id := range r.Users() {
		if u, ok := r.User(id); ok && strings.HasPrefix(u.DefaultTeam, o+"/") {
			od.users = append(od.users, u)
		}
	}
	for _, name := range r.Projects(o) {
		pv, _ := r.Project(o, name)
		ref := scope.Ref{Org: o, Project: name}
		q := &query{}
		if err := l.e.prepare(l.p, &Request{Subject: listingSubject, Action: "project.get", Resource: o + "/" + name}, q); err != nil {
			return lintOrg{}, err
		}
		q.readAll(r)
		lp := lintProject{name: name, creator: pv.Project.CreatedBy, teams: teamsOrigin(r, ref, q.in.Resource).describe(q.in.Resource)}
		if f, ok := l.settings(r, o, pv.Project, "teams"); ok {
			lp.teamsFix = f
			pol, _ := r.Policy(o, pv.Project.Policy)
			lp.policyTeams = slices.Clone(pol.Settings.Teams)
		}
		od.projects = append(od.projects, lp)
		for _, user := range slices.Sorted(maps.Keys(pv.Project.Grants)) {
			g := pv.Project.Grants[user]
			if g.Queue != "" || g.Namespace != "" || len(g.DefaultPresets) > 0 || g.BreakGlass != nil {
				continue // a grant with per-user settings does more than give a role; an elevation is meant to be there
			}
			lg := lintGrant{org: o, project: name, user: user, role: g.Role, ends: g.ExpiresAt, memberEnds: map[string]time.Time{}}
			for team := range r.TeamRoles(o, user).Map() {
				if at, ok := r.TeamMemberExpiry(o, team, user); ok && !at.IsZero() {
					lg.memberEnds[team] = at
				}
			}
			for _, a := range l.p.Actions() {
				if spec, _ := l.p.Action(a); spec.Kind != scope.KindProject {
					continue
				}
				q := &query{}
				if err := l.e.prepare(l.p, &Request{Subject: user, Action: a, Resource: o + "/" + name}, q); err != nil {
					return lintOrg{}, err
				}
				q.readAll(r)
				lg.queries = append(lg.queries, q)
			}
			od.grants = append(od.grants, lg)
		}
	}
	return od, nil
}

// settings reports a project's effective-settings conflicts, and its grants' per-user ones, each
// with a fix to the project's own settings or to the grant. It returns the fix of the project's
// conflict on field, if it has one.
func (l *linter) settings(r store.Reader, o string, p *store.Project, field string) (Fix, bool) {
	var fieldFix Fix
	found := false
	eff, _ := r.Settings(o, p.Name, "")
	base := o + "/projects/" + p.Name
	for _, c := range eff.Conflicts {
		code := LintSettingsConflict
		if c.Field == "queue" {
			code = LintDefaultQueueSkipped
		}
		fix := projectFix(p, eff, c)
		if c.Field == field {
			fieldFix, found = fix, true
		}
		l.add(code, base+"/settings/"+c.Field, "project "+o+"/"+p.Name+": "+c.Message, fix)
	}
	for _, user := range slices.Sorted(maps.Keys(p.Grants)) {
		g := p.Grants[user]
		if g.Queue == "" && g.Namespace == "" && len(g.DefaultPresets) == 0 {
			continue
		}
		ue, _ := r.Settings(o, p.Name, user)
		for _, c := range ue.Conflicts[len(eff.Conflicts):] { // the per-user ones come last
			code := LintSettingsConflict
			if c.Field == "queue" {
				code = LintDefaultQueueSkipped
			}
			fixed := g
			switch c.Field {
			case "queue":
				fixed.Queue = ""
			case "namespace":
				fixed.Namespace = ""
			case "default_presets":
				fixed.DefaultPresets = nil
			}
			l.add(code, base+"/grants/"+user+"/settings/"+c.Field, "project "+o+"/"+p.Name+": "+c.Message,
				Fix{Summary: "drop the " + c.Field + " of " + user + "'s grant on " + o + "/" + p.Name + ": the project's default applies",
					Changes: store.Changes{store.PutGrant{Org: o, Project: p.Name, User: user, Grant: fixed}}})
		}
	}
	return fieldFix, found
}

// projectFix is the change to a project's own settings that removes conflict c of its
// effective settings eff. The project record is copied: the snapshot's is read-only.
func projectFix(p *store.Project, eff policy.Effective, c policy.Conflict) Fix {
	np := *p
	np.Teams = slices.Clone(p.Teams)
	np.Grants = maps.Clone(p.Grants)
	np.Labels = maps.Clone(p.Labels)
	name := p.Org + "/" + p.Name
	put := func(summary string) Fix {
		return Fix{Summary: summary, Changes: store.Changes{store.PutProject{Project: np}}}
	}
	if list := allowList(&np, c.Field); list != nil {
		// Only a project list and a policy list together can leave nothing (policy.Merge): without
		// the project's own, the policy's applies.
		*list = nil
		return put("clear project " + name + "'s own " + c.Field + " so that its policy's " + c.Field + " apply")
	}
	switch c.Field {
	case "queue":
		if q := allowedQueue(eff); q != "" {
			np.Settings.Queue = q
			return put("set project " + name + "'s default queue to " + q + ", which its queues and agents allow")
		}
		if p.Settings.Queue == c.Value {
			np.Settings.Queue = ""
			return put("clear project " + name + "'s default queue " + c.Value)
		}
		return Fix{Summary: "allow queue " + c.Value + " in project " + name + "'s queues and agents, or set an allowed default queue"}
	case "default_presets":
		keep := eff.DefaultPresets.Values
		if len(keep) == 0 && eff.Presets.Restricted && len(eff.Presets.Values) > 0 {
			keep = eff.Presets.Values[:1]
		}
		if len(keep) > 0 {
			np.Settings.DefaultPresets = slices.Clone(keep)
			return put("set project " + name + "'s default presets to " + teamList(keep) + ", which its presets allow")
		}
		return Fix{Summary: "allow a preset in project " + name + "'s presets, then make it the default"}
	}
	return Fix{Summary: "change project " + name + "'s " + c.Field}
}

// allowList returns the project's own allow-list named field; nil for other fields.
func allowList(p *store.Project, field string) *[]string {
	s := &p.Settings
	switch field {
	case "connections":
		return &s.Connections
	case "agents":
		return &s.Agents
	case "queues":
		return &s.Queues
	case "namespaces":
		return &s.Namespaces
	case "presets":
		return &s.Presets
	case "teams":
		return &p.Teams
	case "projects":
		return &s.Projects
	}
	return nil
}

// allowedQueue is the queue a project's default can be set to: the resolved default, else the
// first queue the effective queues and agents allow; "" when there is none.
func allowedQueue(eff policy.Effective) string {
	if eff.Queue.Source != policy.SourceUnset && eff.Queue.Source != policy.SourceUser {
		return eff.Queue.Value
	}
	if !eff.Queues.Restricted {
		return ""
	}
	for _, q := range eff.Queues.Values {
		if a := policy.QueueAgent(q); a == "" || eff.Agents.Allows(a) {
			return q
		}
	}
	return ""
}

// overrideOnly reports whether every listed subject is allowed only through an overriding org
// role, and names them.
func overrideOnly(page SubjectPage) (bool, []string) {
	var who []string
	for _, a := range page.Subjects {
		if !slices.ContainsFunc(a.Reasons, func(r Reason) bool { return r.Code == rego.CodeOrgOverride }) {
			return false, nil
		}
		who = append(who, a.Subject)
	}
	return true, who
}

// projects reports the projects only overriding org roles reach. The fix is the narrowest
// suggestion (Suggest) that lets the project's creator, when it is an org member, manage it.
func (l *linter) projects(ctx context.Context, od lintOrg) error {
	if _, ok := l.p.Action("project.get"); !ok {
		return nil
	}
	for _, pr := range od.projects {
		res := od.name + "/" + pr.name
		page, err := l.e.ListSubjects(ctx, "project.get", res, Page{})
		if err != nil {
			return err
		}
		only, who := overrideOnly(page)
		if !only {
			continue
		}
		fix := Fix{Summary: "grant someone access to project " + res + " or assign it a team with members"}
		if _, member := od.members[pr.creator]; member && !slices.Contains(who, pr.creator) {
			if f, ok, err := l.suggested(ctx, Request{Subject: pr.creator, Action: "project.access", Resource: res}, ""); err != nil {
				return err
			} else if ok {
				fix = f
				fix.Summary += " (its creator)"
			}
		}
		if len(fix.Changes) == 0 && pr.policyTeams != nil {
			ok, err := l.reachableWith(ctx, od, pr.name, pr.policyTeams)
			if err != nil {
				return err
			}
			if ok {
				fix = pr.teamsFix
			}
		}
		l.add(LintProjectUnreachable, od.name+"/projects/"+pr.name,
			fmt.Sprintf("project %s is reachable only through an overriding org role (%s): %s", res, strings.Join(nonNil(who), ", "), pr.teams), fix)
	}
	return nil
}

// reachableWith reports whether, were project's effective teams teams, a subject would be
// allowed project.get other than through an overriding org role: each org member's facts with
// those teams, decided as Authorize would (decideFacts).
func (l *linter) reachableWith(ctx context.Context, od lintOrg, project string, teams []string) (bool, error) {
	var qs []*query
	err := l.e.dir.View(func(r store.Reader) error {
		for m := range od.members {
			q := &query{}
			if err := l.e.prepare(l.p, &Request{Subject: m, Action: "project.get", Resource: od.name + "/" + project}, q); err != nil {
				return err
			}
			q.readAll(r)
			q.in.Resource.Teams, q.in.Resource.Restricted = teams, true
			qs = append(qs, q)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, q := range qs {
		if d := l.e.decideFacts(ctx, l.p, q, *q.in, l.rev); d.Allowed && !d.Has(rego.CodeOrgOverride) {
			return true, nil
		}
	}
	return false, ctx.Err()
}

// teamAdmins reports the teams none of whose members may manage them. The fix makes the member
// with the highest team role (by the policy's ranks; the first by id among equals) the least
// role that may, as a suggestion computes it.
func (l *linter) teamAdmins(ctx context.Context, od lintOrg) error {
	const action = "team.members.manage"
	if _, ok := l.p.Action(action); !ok {
		return nil
	}
	for _, t := range od.teams {
		res := od.name + "/" + t
		page, err := l.e.ListSubjects(ctx, action, res, Page{})
		if err != nil {
			return err
		}
		if slices.ContainsFunc(page.Subjects, func(a Access) bool { return len(a.Teams) > 0 }) {
			if err := l.expiringAdmins(ctx, od, t, page); err != nil {
				return err
			}
			continue // a member of the team may manage it
		}
		who := make([]string, len(page.Subjects))
		for i, a := range page.Subjects {
			who[i] = a.Subject
		}
		var members map[string]string
		if err := l.e.dir.View(func(r store.Reader) error { members = r.TeamMembers(od.name, t); return nil }); err != nil {
			return err
		}
		fix := Fix{Summary: "add a member to team " + res + " who may manage it, or delete the team"}
		best, bestRank := "", -1
		for _, m := range slices.Sorted(maps.Keys(members)) {
			if rank, _ := l.p.Rank(members[m]); rank > bestRank && !slices.Contains(who, m) {
				best, bestRank = m, rank
			}
		}
		if best != "" {
			f, ok, err := l.suggested(ctx, Request{Subject: best, Action: action, Resource: res}, ChangeTeamRole)
			if err != nil {
				return err
			}
			if ok {
				fix = f
			}
		}
		l.add(LintTeamWithoutAdmin, od.name+"/teams/"+t,
			fmt.Sprintf("team %s has no member who may manage it: only %s may, through their org role", res, strings.Join(nonNil(who), ", ")), fix)
	}
	return nil
}

// expiringAdmins reports team t when every subject the listing page allows to manage it through
// a team holds each such membership only until an expires_at: the finding names when the last
// of them ends, and who may manage it then (through an org role, asked of the policy with the
// admins' team roles left out). The fix makes that member's membership permanent (same role).
func (l *linter) expiringAdmins(ctx context.Context, od lintOrg, t string, page SubjectPage) error {
	type admin struct {
		user, team, role string
		until            time.Time
	}
	var admins []admin
	var orgOnly []string
	var stay []*query // the admins' facts without their team roles, to ask who keeps the right
	permanent := false
	err := l.e.dir.View(func(r store.Reader) error {
		for _, a := range page.Subjects {
			if len(a.Teams) == 0 {
				orgOnly = append(orgOnly, a.Subject)
				continue
			}
			q := &query{}
			if err := l.e.prepare(l.p, &Request{Subject: a.Subject, Action: "team.members.manage", Resource: od.name + "/" + t}, q); err != nil {
				return err
			}
			q.readAll(r)
			q.in.Subject.TeamRoles = nil
			stay = append(stay, q)
			last := admin{user: a.Subject}
			for _, team := range a.Teams {
				at, ok := r.TeamMemberExpiry(od.name, team, a.Subject)
				if ok && at.IsZero() {
					permanent = true
					return nil
				}
				if ok && at.After(last.until) {
					last.team, last.until = team, at
					last.role, _ = r.TeamRoles(od.name, a.Subject).Role(team)
				}
			}
			if last.team != "" {
				admins = append(admins, last)
			}
		}
		return nil
	})
	if err != nil || permanent || len(admins) == 0 {
		return err
	}
	for _, q := range stay { // an admin whose org role lets them manage it keeps the right
		if d := l.e.decideFacts(ctx, l.p, q, *q.in, l.rev); d.Allowed {
			orgOnly = append(orgOnly, q.req.Subject)
		}
	}
	slices.Sort(orgOnly)
	slices.SortFunc(admins, func(a, b admin) int { return cmp.Or(a.until.Compare(b.until), cmp.Compare(a.user, b.user)) })
	last := admins[len(admins)-1]
	who := make([]string, len(admins))
	for i, a := range admins {
		who[i] = a.user + " until " + a.until.UTC().Format(time.RFC3339)
	}
	after := "nobody may"
	if len(orgOnly) > 0 {
		after = "only " + strings.Join(orgOnly, ", ") + " may, through their org role"
	}
	res := od.name + "/" + t
	l.add(LintTeamAdminExpiring, od.name+"/teams/"+t,
		fmt.Sprintf("team %s's members who may manage it hold those memberships only until they expire (%s): from %s %s",
			res, strings.Join(who, ", "), last.until.UTC().Format(time.RFC3339), after),
		Fix{Summary: "keep " + last.user + " in team " + last.team + " as " + last.role + " without an expiry, or add a member who may manage it for good",
			Changes: store.Changes{store.PutTeamMember{Org: od.name, Team: last.team, User: last.user, Role: last.role}}})
	return nil
}

// suggested is the first suggestion for a denied req (only of kind when kind is set) as a Fix.
func (l *linter) suggested(ctx context.Context, req Request, kind ChangeKind) (Fix, bool, error) {
	if _, ok := l.p.Action(req.Action); !ok {
		return Fix{}, false, nil
	}
	req.Suggest, req.MinRevision, req.unlogged = true, l.rev, true
	d, err := l.e.Authorize(ctx, req)
	if err != nil || d.Allowed {
		return Fix{}, false, err
	}
	for _, s := range d.Suggestions {
		if kind != "" && slices.ContainsFunc(s.Steps, func(st Step) bool { return st.Kind != kind }) {
			continue
		}
		steps := make([]string, len(s.Steps))
		for i, st := range s.Steps {
			steps[i] = st.Summary
		}
		return Fix{Summary: strings.Join(steps, ", then "), Changes: s.Changes}, true, nil
	}
	return Fix{}, false, nil
}

// grants reports the grants whose removal changes no project decision of their holder for as
// long as they last. The holder's facts change while the grant lasts only when one of their
// team memberships expires, so the decisions are compared now and from each such expiry before
// the grant's own end, without the memberships ended by then: a grant made redundant only by a
// membership that expires first is not reported (deleting it would take access away then).
func (l *linter) grants(ctx context.Context, od lintOrg) error {
	for _, g := range od.grants {
		epochs := []time.Time{{}} // now, then each membership expiry while the grant lasts
		for _, at := range g.memberEnds {
			if (g.ends.IsZero() || at.Before(g.ends)) && !slices.ContainsFunc(epochs, at.Equal) {
				epochs = append(epochs, at)
			}
		}
		redundant := len(g.queries) > 0
		var without Decision
	epochs:
		for i, at := range epochs {
			for _, q := range g.queries {
				in := *q.in
				if i > 0 {
					in.Subject.TeamRoles = maps.Clone(in.Subject.TeamRoles)
					maps.DeleteFunc(in.Subject.TeamRoles, func(team, _ string) bool {
						end, ok := g.memberEnds[team]
						return ok && !end.After(at)
					})
				}
				with := l.e.decideFacts(ctx, l.p, q, in, l.rev)
				in.Subject.Grant, in.Subject.BreakGlass = "", false
				wo := l.e.decideFacts(ctx, l.p, q, in, l.rev)
				if with.Has(rego.CodeError) || wo.Has(rego.CodeError) || with.Allowed != wo.Allowed || with.Role != wo.Role {
					redundant = false
					break epochs
				}
				if i == 0 && q.req.Action == "project.get" {
					without = wo
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !redundant {
			continue
		}
		codes := make([]string, len(without.Reasons))
		for i, r := range without.Reasons {
			codes[i] = string(r.Code)
		}
		res := g.org + "/" + g.project
		l.add(LintGrantRedundant, g.org+"/projects/"+g.project+"/grants/"+g.user,
			fmt.Sprintf("%s's %s grant on project %s changes no decision: without it %s is %s there (%s)",
				g.user, g.role, res, g.user, without.Role, strings.Join(codes, ", ")),
			Fix{Summary: "delete " + g.user + "'s grant on project " + res,
				Changes: store.Changes{store.DeleteGrant{Org: g.org, Project: g.project, User: g.user}}})
	}
	return nil
}

// allows reports whether subject is allowed any action of kind (without attributes) on res.
func (l *linter) allows(ctx context.Context, subject string, kind scope.Kind, res string) (bool, error) {
	for _, a := range l.p.Actions() {
		if spec, _ := l.p.Action(a); spec.Kind != kind {
			continue
		}
		d, err := l.e.Authorize(ctx, Request{Subject: subject, Action: a, Resource: res, MinRevision: l.rev, unlogged: true})
		if err != nil {
			return false, err
		}
		if d.Allowed {
			return true, nil
		}
	}
	return false, nil
}

// outsiders reports the org's outsiders allowed nothing: no org or team action, no project.
func (l *linter) outsiders(ctx context.Context, od lintOrg) error {
	for _, m := range slices.Sorted(maps.Keys(od.members)) {
		if od.members[m] != string(teamgate.OrgOutsider) {
			continue
		}
		reached, err := l.reaches(ctx, m, od)
		if err != nil {
			return err
		}
		if reached {
			continue
		}
		l.add(LintOutsiderWithoutAccess, od.name+"/members/"+m,
			fmt.Sprintf("outsider %s of org %s is allowed nothing: no org or team action, no project", m, od.name),
			Fix{Summary: "remove " + m + " from org " + od.name,
				Changes: store.Changes{store.DeleteMember{Org: od.name, User: m}}})
	}
	return nil
}

// reaches reports whether user is allowed anything in the org.
func (l *linter) reaches(ctx context.Context, user string, od lintOrg) (bool, error) {
	if ok, err := l.allows(ctx, user, scope.KindOrg, od.name); ok || err != nil {
		return ok, err
	}
	for _, t := range od.teams {
		if ok, err := l.allows(ctx, user, scope.KindTeam, od.name+"/"+t); ok || err != nil {
			return ok, err
		}
	}
	page, err := l.e.ListProjects(ctx, user, od.name, Page{Limit: 1})
	return len(page.Projects) > 0, err
}

// defaultTeams reports the users whose default team space shows them no project and lets them
// create none. The fix moves the default to another team of theirs that shows a project, or
// clears it.
func (l *linter) defaultTeams(ctx context.Context, od lintOrg) error {
	for _, u := range od.users {
		empty, err := l.emptySpace(ctx, u.ID, u.DefaultTeam)
		if err != nil {
			return err
		}
		if !empty {
			continue
		}
		var mine []string
		if err := l.e.dir.View(func(r store.Reader) error {
			mine = slices.Sorted(maps.Keys(r.TeamRoles(od.name, u.ID).Map()))
			return nil
		}); err != nil {
			return err
		}
		fixed := u
		fixed.DefaultTeam = ""
		summary := "clear " + u.ID + "'s default team"
		for _, t := range mine {
			if od.name+"/"+t == u.DefaultTeam {
				continue
			}
			page, err := l.e.ListProjects(ctx, u.ID, od.name+"/"+t, Page{Limit: 1})
			if err != nil {
				return err
			}
			if len(page.Projects) > 0 {
				fixed.DefaultTeam = od.name + "/" + t
				summary = "make " + fixed.DefaultTeam + " " + u.ID + "'s default team: it shows them project " + page.Projects[0]
				break
			}
		}
		l.add(LintDefaultTeamEmpty, "users/"+u.ID,
			fmt.Sprintf("%s's default team %s shows them no project and they may not create one there", u.ID, u.DefaultTeam),
			Fix{Summary: summary, Changes: store.Changes{store.PutUser{User: fixed}}})
	}
	return nil
}

// emptySpace reports whether team space owner lists no project for user and denies it
// team.projects.create.
func (l *linter) emptySpace(ctx context.Context, user, owner string) (bool, error) {
	page, err := l.e.ListProjects(ctx, user, owner, Page{Limit: 1})
	if err != nil || len(page.Projects) > 0 {
		return false, err
	}
	if _, ok := l.p.Action("team.projects.create"); !ok {
		return true, nil
	}
	d, err := l.e.Authorize(ctx, Request{Subject: user, Action: "team.projects.create", Resource: owner, MinRevision: l.rev, unlogged: true})
	return !d.Allowed, err
}
