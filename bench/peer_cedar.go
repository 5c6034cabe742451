package bench

import (
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/teamgate/teamgate/store"
)

// The SPEC §4 project role in Cedar, for the four benchmarked actions. Role ranks become entity
// chains (a user in TeamRole "t#admin" is also in "t#contributor", "t#member", "t#viewer"; the
// same for the org base role and for grants), and a project lists, per rank, the team-role
// entities of its effective teams.
var cedarLevels = []string{"viewer", "member", "contributor", "admin"}

const cedarPolicyTemplate = `permit (principal, action == Action::"%s", resource)
when {
  principal in Override::"admin" ||
  principal in resource.%sGrant ||
  (resource.restricted && principal in resource.%sTeams) ||
  (!(resource.grantees.contains(principal)) && principal in Base::"%s" &&
   (!resource.restricted || principal in resource.viewerTeams))
};
`

// peerCedar decides with cedar-go over entities built from the directory.
type peerCedar struct {
	policies *cedar.PolicySet
	entities types.EntityMap
}

func chain(kind, prefix string, em types.EntityMap) {
	for i, l := range cedarLevels {
		uid := types.NewEntityUID(types.EntityType(kind), types.String(prefix+l))
		var parents types.EntityUIDSet
		if i > 0 {
			parents = types.NewEntityUIDSet(types.NewEntityUID(types.EntityType(kind), types.String(prefix+cedarLevels[i-1])))
		}
		em[uid] = types.Entity{UID: uid, Parents: parents}
	}
}

func newPeerCedar(st *store.Store) (*peerCedar, error) {
	var src strings.Builder
	for action, need := range map[string]string{"runs.get": "viewer", "runs.bookmark": "member", "runs.stop": "contributor", "runs.approve": "admin"} {
		fmt.Fprintf(&src, cedarPolicyTemplate, action, need, need, need)
	}
	list, err := cedar.NewPolicyListFromBytes("peer.cedar", []byte(src.String()))
	if err != nil {
		return nil, err
	}
	ps := cedar.NewPolicySet()
	for i, p := range list {
		ps.Add(cedar.PolicyID(fmt.Sprint("p", i)), p)
	}
	em := types.EntityMap{}
	chain("Base", "", em)
	em[types.NewEntityUID("Override", "admin")] = types.Entity{UID: types.NewEntityUID("Override", "admin")}
	orgBase := map[string]string{"admin": "admin", "member": "contributor", "viewer": "viewer"}
	err = st.View(func(r store.Reader) error {
		parents := map[string][]types.EntityUID{}
		for _, t := range r.Teams("org") {
			chain("TeamRole", t+"#", em)
			for u, role := range r.TeamMembers("org", t) {
				parents[u] = append(parents[u], types.NewEntityUID("TeamRole", types.String(t+"#"+role)))
			}
		}
		for _, p := range r.Projects("org") {
			pv, _ := r.Project("org", p)
			var grantees []types.Value
			if len(pv.Project.Grants) > 0 {
				chain("Grant", p+"#", em)
			}
			for u, g := range pv.Project.Grants {
				grantees = append(grantees, types.NewEntityUID("User", types.String(u)))
				parents[u] = append(parents[u], types.NewEntityUID("Grant", types.String(p+"#"+g.Role)))
			}
			attrs := types.RecordMap{
				"restricted": types.Boolean(pv.Teams.Restricted),
				"grantees":   types.NewSet(grantees...),
			}
			for _, l := range cedarLevels {
				var teams []types.Value
				for _, t := range pv.Teams.Values {
					teams = append(teams, types.NewEntityUID("TeamRole", types.String(t+"#"+l)))
				}
				attrs[types.String(l+"Teams")] = types.NewSet(teams...)
				attrs[types.String(l+"Grant")] = types.NewEntityUID("Grant", types.String(p+"#"+l))
			}
			uid := types.NewEntityUID("Project", types.String(p))
			em[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
		}
		for u, role := range r.Members("org") {
			ps := parents[u]
			if b, ok := orgBase[role]; ok {
				ps = append(ps, types.NewEntityUID("Base", types.String(b)))
			}
			if role == "owner" || role == "manager" {
				ps = append(ps, types.NewEntityUID("Override", "admin"))
			}
			uid := types.NewEntityUID("User", types.String(u))
			em[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(ps...)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &peerCedar{policies: ps, entities: em}, nil
}

func (p *peerCedar) allow(subject, action, project string) bool {
	d, _ := cedar.Authorize(p.policies, p.entities, cedar.Request{
		Principal: types.NewEntityUID("User", types.String(subject)),
		Action:    types.NewEntityUID("Action", types.String(action)),
		Resource:  types.NewEntityUID("Project", types.String(project)),
	})
	return d == cedar.Allow
}
