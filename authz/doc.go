// Package authz is the engine host services call in-process: Authorize (and AuthorizeBatch,
// Explain) decides who may do what on orgs, team spaces and projects through the Rego policy of
// package rego; EffectiveSettings, Admit and AdmitVersion apply organization policies (package
// policy); ListProjects, ProjectFilter, BulkRuns and CreateProject work inside a team space.
//
// # Deciding
//
// A Request names a subject (user id), an action of the catalog (rego/data.json), a resource
// and optional attributes. The resource's shape must fit the action's kind: `org` for org
// actions, `org/team` for team actions, `project`, `org/project` or `org/team/project` for
// project actions ('.' separates too; a one-part reference takes Request.Owner). Malformed input is
// an error matching teamgate.ErrInvalid and naming the value. A reference to something that does
// not exist — or a project outside the named team space — is a deny with reason not_found, for
// everyone. Every other outcome is a Decision whose Reasons carry stable codes (org_override,
// org_role, grant, team_role, own_run, extension_allow; not_org_member, restricted,
// insufficient_role, destination_denied, not_found, not_in_scope, extension_deny, error;
// feature_excluded on a bulk version listing, ReasonFeatureExcluded) and messages for people. A failed evaluation denies with reason "error" and is counted in Stats.
//
// Facts come from the store's in-memory indexes inside one consistent snapshot; the input is
// built as an OPA ast.Value (no JSON round trip) and evaluated by a query prepared once.
// SetPolicy swaps the policy atomically; decisions in flight finish with the policy they started
// with. Decision.Revision is the store revision the facts were read at (for a cached decision,
// the current revision: nothing it depends on has changed since); Request.MinRevision waits for
// a revision (read-your-writes across replicas) or fails with teamgate.ErrStale.
//
// # Compiled path
//
// While the default policy is in force (no authors' modules or data), a request without
// attributes is answered from a decision table (WithCompiledPath, default on). The default
// policy's decision depends only on the action, whether the resource exists, the subject's org
// role and grant, whether the project is restricted, and the subject's highest team role among
// the project's effective teams (or in the team, for team actions). The table is keyed on exactly
// those facts; each cell is computed once by evaluating the Rego policy on a canonical input with
// those facts, and messages are rendered from the request's own facts. So the table is the
// policy's own answer, not a re-implementation; a differential test compares it with full
// evaluation on random directories and writes. Requests with attributes (own runs, transfers,
// member management), Explain and customized policies always evaluate the Rego.
//
// # Decision cache
//
// Decisions on requests without attributes are cached — unless an author's module calls a
// built-in OPA marks non-deterministic (time.now_ns, http.send, …), whose answers no stamp can
// track — in two tiers: a bounded in-memory LRU (WithDecisionCache, default 100,000 entries; 0
// turns caching off) and, for an on-disk store, Badger (entries survive a restart and expire
// after a day). Each entry records the policy it was
// made with (its fingerprint, in Badger) and the store's revision stamps of what it read: the
// org, the subject's membership and team roles in it, the team of a team-space reference, and
// the project (its record, grants, policy and effective teams). An entry is served only while all
// of them are unchanged; Apply bumps and stores the stamps it touches before it returns. So no
// decision made before a write is served after the write returns if the write could change it,
// and an unrelated write evicts nothing. A differential test interleaves random writes and
// checks against an uncached engine; another restarts the store between a write and a read.
// An in-memory hit costs about 100 ns and no allocation, a Badger hit about 5 µs.
//
// # Listing
//
// A listing (ListProjects, ProjectFilter) is the project.get decisions, never a second copy of
// the role rule. While the policy in force has a decision table — whether or not Authorize uses
// it (WithCompiledPath) — the listing asks the table, through one function, for verdicts on role
// facts read from the store's indexes: each project the subject holds a grant on or reaches
// through one of its teams is decided from its own facts; every other project of the org is, for
// this subject, either open with no grant or restricted with no grant and no team role, so each of
// those two classes is decided once and, when allowed, merged in from the sorted project indexes;
// a team space is decided project by project. Without a table (authors' modules, which may open or
// close any project), every project of the org or team space past the cursor is decided with
// Authorize until the page is full (ListProjects documents the cost). Property tests compare
// listings with project.get on random directories, with random ext modules and with data-only
// policies.
//
// The bulk version listings (list_component_versions, list_model_versions,
// list_artifact_versions) need versions.list on each run's project, and the version kind must not
// be in the project's effective excluded_features: the check is policy.Admit's, the one
// AdmitVersion runs, and a hit denies that run with reason feature_excluded.
//
// # Decisions written down
//
//   - ext.allow never applies to not_found: a resource that does not exist stays denied.
//   - `teamgate check` answers an invalid single request on its JSON line and exits 0, like a
//     batch line (SPEC §11); usage and data-file errors exit non-zero.
//   - Deny-list sources that combine a policy and the project read "policy:NAME∪project".
//   - Effective settings are cached in Badger under a key holding the project's revision (any
//     write to the project, its policy or its org's defaults changes it), so no stale entry is
//     ever read; entries expire after a day.
//
// An Engine is safe for concurrent use.
package authz
