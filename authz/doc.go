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
// feature_excluded on a bulk version listing: the rego.Code constants) and messages for people.
// A failed evaluation denies with reason "error" and is counted in Stats.
//
// Facts come from the store's in-memory indexes inside one consistent snapshot, become a typed
// rego.Input (see Policy input below) and are evaluated by a query prepared once.
// SetPolicy swaps the policy atomically; decisions in flight finish with the policy they started
// with. Decision.Revision is the store revision the facts were read at (for a cached decision,
// the current revision: nothing it depends on has changed since); Request.MinRevision waits for
// a revision (read-your-writes across replicas) or fails with teamgate.ErrStale.
//
// # Time budget
//
// Each full Rego evaluation of a policy with authors' modules has a time budget (WithEvalBudget,
// default DefaultEvalBudget, 1 s: thousands of times a decision; the default rules, with any
// authors' data, are bounded by construction and get none), so one slow author's module cannot
// stall a host: past it the evaluation is stopped through OPA's cancellation, the decision denies with
// reason "error" saying the budget was exceeded, and Stats.OverBudget counts it. The request's
// context stops an evaluation the same way (reason "error", not counted as over budget); OPA
// evaluates with no deadline of its own, so the budget is teamgate's choice, written down here.
// The budget costs no timer or goroutine per evaluation: the clock is read every few dozen of
// OPA's cancellation checks. Admission's permission check is such an evaluation; its CEL rules
// are bounded by their cost limit (policy.RuleCostLimit) and the context.
//
// # Compiled path
//
// While the policy's rules are the default ones (authors' data of any kind, no modules), a
// request without attributes is answered from the policy's decision table, rego.Table
// (WithCompiledPath, default on). The default rules' decision depends only on the action, whether
// the resource exists, the subject's org role and grant, whether the project is restricted, and
// the subject's highest team role by data rank among the project's effective teams (or its role
// in the team, for team actions); that is the table's key (rego.Key). Each cell is computed once
// by evaluating the Rego policy, with its data, on a canonical input with those facts (cells are
// a flat array per action indexed by the packed key, found from the action's catalog entry
// without hashing its name), and messages are rendered from the request's own facts, all of a
// decision's into one string: a decision on the compiled path allocates its reasons and their
// text, nothing else. Its facts come from one store call (store.Reader.Access: one lookup each
// of the org, the project and the member, the subject's team roles in the project's teams as a
// set), and the policy input is built only when the Rego is evaluated. Facts about the subject on
// a resource that does not exist are not read, for any kind of resource: resolution comes
// first, and the decision is not_found for everyone (Explain shows org role none there). So the table is the policy's own answer,
// not a re-implementation; an exhaustive test in package rego compares every cell with full
// evaluation, and a differential test here compares both paths on random directories and writes.
// Requests with attributes (own runs, transfers, member management), Explain and policies with
// authors' modules always evaluate the Rego.
//
// # Policy input
//
// The facts of a request reach the policy as a typed rego.Input (subject, action, resource,
// attributes, and for runs.transfer the destination's subject and resource facts, so the one
// role rule applies to them). Package authz imports no OPA package. Attributes are converted once
// by rego.NewAttributes: too deep (a self-referencing map included), too big or not JSON-like is
// an error matching teamgate.ErrInvalid. Reason codes are rego.Code constants.
//
// # Explain
//
// Explain always evaluates the full policy and narrates the facts, including how a project's
// effective teams came about: "project teams [engineering] ∩ policy research-only teams
// [research] = [] → restricted", or "no restriction" for an open project, for the resource and
// a runs.transfer destination.
//
// # Decision cache
//
// Decisions on requests without attributes are cached — unless the policy is not
// rego.Policy.Deterministic (a module names a built-in OPA marks non-deterministic, such as
// time.now_ns or uuid.rfc4122, anywhere, `with` modifiers included), whose answers no stamp can
// track — in two tiers: a bounded in-memory cache (WithDecisionCache, default 100,000 entries; 0
// turns caching off; sharded by key hash, CLOCK eviction, a hit takes no lock: it reads an
// immutable entry through atomic pointers) and, when the Directory is a PersistentCache that
// persists (an on-disk store), Badger (entries survive a restart and expire after a day).
//
// What an entry depends on is not listed here: it is a by-product of reading. The snapshot that
// reads a decision's facts is a tracking store.Reader (Reader.Track), which records the stamp of
// every fact it serves; the resulting store.Deps is stored with the decision and the policy it
// was made with (in Badger: the policy's fingerprint and the encoded Deps, decoded against the
// reopened store's stamps). An entry is served only while the policy is in force and its Deps are
// current — Apply bumps the stamps of everything it touches before it returns, and a closed
// store has no current Deps. The contract "every fact a Reader serves has a stamp that every write
// changing it bumps" is the store's, enforced by a test over every Reader accessor. So no
// decision made before a write is served after the write returns if the write could change it,
// an unrelated write evicts nothing, and after Close nothing is served: every Engine call fails
// with teamgate.ErrClosed. A differential test interleaves random writes and checks against an
// uncached engine; another restarts the store between a write and a read. An in-memory hit
// allocates nothing (bench/RESULTS.md has its cost over 100k distinct keys beside a plain Go map),
// a Badger hit costs about 5 µs.
//
// Memory is bounded by the cache size, whatever the requests: a request naming things that do
// not exist records the store's shared cells for absent facts (reading never creates a stamp),
// and an evicted decision takes its Deps with it (TestDistinctRequestsLeaveNoMemory).
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
//   - Effective settings are cached the same way (memory, then Badger; entries expire after a
//     day), with the Deps of the read that merged them: any write to the project, its policy or
//     its org's defaults makes an entry stale. An entry is checked inside the snapshot that uses
//     it, so admission reads its decision, settings, rules and subject facts in one snapshot.
//
// An Engine is safe for concurrent use.
package authz
