package authz_test

import (
	"errors"
	"testing"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
)

// FuzzAuthorize asks arbitrary questions: no panic; the answer is a decision or an ErrInvalid,
// and a non-member (or an unknown resource) is never allowed.
func FuzzAuthorize(f *testing.F) {
	f.Add("bob", "runs.get", "acme/vision", "", "")
	f.Add("nobody", "org.get", "acme", "", "")
	f.Add("beth", "runs.transfer", "acme/vision", "", "acme/open")
	f.Add("bob", "runs.get", "vision", "acme/engineering", "")
	f.Add("alice", "members.manage", "acme", "", "owner")
	eng, _ := newAcme(f)
	f.Fuzz(func(t *testing.T, subject, action, resource, owner, attr string) {
		attrs := map[string]any{"destination": attr, "target_role": attr, "run": map[string]any{"created_by": attr}}
		d, err := eng.Authorize(t.Context(), authz.Request{Subject: subject, Action: action, Resource: resource, Owner: owner, Attributes: attrs})
		if err != nil {
			if !errors.Is(err, teamgate.ErrInvalid) {
				t.Fatalf("untyped error: %v", err)
			}
			if d.Allowed {
				t.Fatal("an error with an allow")
			}
			return
		}
		if d.Allowed && (subject == "nobody" || d.Has("not_found")) {
			t.Fatalf("allowed %+v", d)
		}
		if len(d.Reasons) == 0 {
			t.Fatalf("a decision without reasons: %+v", d)
		}
	})
}
