package authz

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
)

// TestInvalidRequestNeverHits: a hit validates nothing (its key's fingerprint stands for four
// parts that were valid when their decision was stored), so an invalid request must never share a
// cached request's fingerprint. With every request in one probe run (only fingerprints tell
// entries apart), invalid requests that agree with a cached valid one on every part but one —
// down to the words a part fills in the key's encoding, which a trailing NUL leaves the same —
// or that hold its bytes with the parts' boundaries moved get their typed error, before and
// after the valid one's word is stamped, and count no hit.
func TestInvalidRequestNeverHits(t *testing.T) {
	t.Parallel()
	e := newAcmeInternal(t)
	weakHashes(e)
	for _, valid := range []Request{
		{Subject: "bob", Action: "runs.get", Resource: "acme/vision"},
		{Subject: "bob", Action: "runs.stop", Resource: "acme/engineering/vision"},
		{Subject: "bob", Action: "runs.get", Resource: "vision", Owner: "acme"},
		{Subject: "vera", Action: "runs.get", Resource: "acme/nlp"},
	} {
		s, a, r, o := valid.Subject, valid.Action, valid.Resource, valid.Owner
		invalid := []Request{
			{Subject: s + "\x00", Action: a, Resource: r, Owner: o},
			{Subject: s, Action: a + "\x00", Resource: r, Owner: o},
			{Subject: s, Action: a, Resource: r + "\x00", Owner: o},
			{Subject: s, Action: a, Resource: r + "/", Owner: o},
			{Subject: s + " ", Action: a, Resource: r, Owner: o},
			{Subject: s + "\x00" + a, Action: "", Resource: r, Owner: o},
			{Subject: s, Action: a + "\x00" + r, Resource: "", Owner: o},
			{Subject: s[:1], Action: s[1:] + "\x00" + a, Resource: r, Owner: o},
		}
		if o == "" {
			invalid = append(invalid, Request{Subject: s, Action: a, Resource: r, Owner: "\x00"})
		} else {
			invalid = append(invalid, Request{Subject: s, Action: a, Resource: r, Owner: o + "\x00"},
				Request{Subject: s, Action: a, Resource: r + "\x00" + o})
		}
		for round := range 3 { // a miss, a slow hit that stamps the word, a fast hit
			_, err := e.Authorize(t.Context(), valid)
			require.NoError(t, err, "%+v", valid)
			if round > 0 {
				require.True(t, stampedNow(e.decisions, fastKey(e, valid)), "%+v", valid)
			}
			for _, bad := range invalid {
				hits := e.Stats().CacheHits
				d, err := e.Authorize(t.Context(), bad)
				require.ErrorIs(t, err, teamgate.ErrInvalid, "%q after %q", bad, valid)
				require.Equal(t, Decision{}, d, "%q", bad)
				require.Equal(t, hits, e.Stats().CacheHits, "%q hit the cache", bad)
				kv, kb := fastKey(e, valid), fastKey(e, bad)
				require.False(t, kv.fp1 == kb.fp1 && kv.fp2 == kb.fp2, "%q shares %q's fingerprint", bad, valid)
			}
		}
	}
}
