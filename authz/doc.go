// Package authz is the engine host services call in-process: Authorize (and AuthorizeBatch,
// Explain) decides who may do what on orgs, team spaces and projects through the Rego policy of
// package rego; EffectiveSettings, Admit and AdmitVersion apply organization policies (package
// policy); ListProjects, ProjectFilter, BulkRuns and CreateProject work inside a team space;
// ListSubjects says who can do what and why, and suggestions say how a denied subject gets in.
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
// org_role, grant, break_glass, team_role, own_run, extension_allow; not_org_member, restricted,
// insufficient_role, destination_denied, not_found, not_in_scope, extension_deny, error;
// feature_excluded on a bulk version listing: the rego.Code constants) and messages for people.
// A message is written from the request's facts and what the policy's reason says: which rule
// denied is the policy's word (a member-management limit is named in the reason, rego.Limit),
// never re-derived in Go. A failed evaluation denies with reason "error" and is counted in Stats.
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
// Each Rego evaluation of a policy that authors extend (a module, or teamgate.ext data), a full
// one or a decision table cell's, has a time budget (WithEvalBudget,
// default DefaultEvalBudget, 1 s: thousands of times a decision; the default rules, with any
// authors' data, are bounded by construction and get none), so one slow author's module cannot
// stall a host: past it the evaluation is stopped through OPA's cancellation, the decision denies with
// reason "error" saying the budget was exceeded, and Stats.OverBudget counts it. The request's
// context stops an evaluation the same way (reason "error", not counted as over budget); OPA
// evaluates with no deadline of its own, so the budget is teamgate's choice, written down here.
// It counts wall time, as a context deadline on OPA's evaluation would (DefaultEvalBudget says
// why, and what a host overloaded for a whole budget sees).
// The budget costs no timer or goroutine per evaluation: the clock is read every few dozen of
// OPA's cancellation checks. Admission's permission check is such an evaluation; its CEL rules
// are bounded by their cost limit (policy.RuleCostLimit) and the context.
//
// # Compiled path
//
// While the policy's rules read nothing but a request's role facts (the default rules with
// authors' data of any kind, and authors' modules that provably read only those facts), a
// request without attributes is answered from the policy's decision table, rego.Table
// (WithCompiledPath, default on). The default rules' decision depends only on the action, whether
// the resource exists, the subject's org role and grant, whether the project is restricted, and
// the subject's highest team role by data rank among the project's effective teams (or its role
// in the team, for team actions); that is the table's key, asked through its one entry,
// rego.Table.VerdictOfCodes, with the roles as the store's codes (rego.Codes from store.Access, so
// no role name is read). Each cell is computed once by evaluating the Rego policy, with its data,
// on a canonical input with those facts (cells are a flat array per action indexed by the packed
// key, found from the action's catalog entry without hashing or comparing its name), and messages are rendered from the request's own facts, all of a
// decision's into one string kept in the same object as the reasons: a decision on the compiled
// path allocates that one object, nothing else. Its facts come from one store call
// (store.Reader.Access: one lookup each of the org, the project and the member, the subject's
// team roles in the project's teams as a set); over a *store.Store that call is
// store.Store.ViewAccess, which takes no callback and fills the caller's Access, so the
// decision's state stays on the stack (any other Directory is read through its View, with pooled
// state), and the policy input is built only when the Rego is evaluated. On that path a project
// request's names (`org/project`, `org/team/project`, no owner, no attributes) are split before
// the read but not checked against the slug rule: the store checks every name it is given
// (store.Change, and Open refuses a membership snapshot holding any other name), so a name it
// finds is a slug; when the resource or the subject (not a member) is not found, or the read
// fails (a closed store), the request is checked as every other request is, before its decision
// or the read's error, with the same error, and TestCompiledPathBadInput (and
// TestCompiledPathBadInputOnAClosedStore) compares both paths on malformed names. Facts about the subject on
// a resource that does not exist are not read, for any kind of resource: resolution comes
// first, and the decision is not_found for everyone (Explain shows org role none there). So the table is the policy's own answer,
// not a re-implementation; an exhaustive test in package rego compares every cell with full
// evaluation, and a differential test here compares both paths on random directories and writes.
// Requests with attributes (own runs, transfers, member management), Explain and policies whose
// authors' modules may read more than the table's key always evaluate the Rego (rego.Policy.NoTable
// says why). An author's module that reads only the key's facts (the action, the resource's kind,
// existence and restriction, the subject's org role, grant, break-glass mark and team role) and
// static data keeps the table (rego/README.md, "The decision table"): its cells are that policy's
// decisions, its own messages (ext.deny, ext.allow, teamgate.ext data's too) kept in the cell,
// and a cell is computed within the evaluation budget like a full evaluation; a cell that fails
// denies as that evaluation would and is not kept.
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
// turns caching off; sharded, CLOCK eviction, a hit takes no lock) and, when the Directory is a
// PersistentCache that persists (an on-disk store), Badger (entries survive a restart and expire
// after a day). An in-memory entry is found by a 128-bit fingerprint of the request's subject,
// action and resource and owner (two hash/maphash values under seeds random per cache, of their
// lengths and bytes): two requests share an answer only if their fingerprints collide, about
// 2^-111 per lookup (the bound is worked out on the cache's type, cache.go).
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
// uncached engine; another restarts the store between a write and a read.
//
// Checking the Deps reads the entry and the stamps' cells, several cache lines. So an in-memory
// hit usually checks nothing: the store keeps write epochs by group (store.Epoch: an org's
// org-wide facts, each of 14 shares of its projects, and its lists have a group each) that move
// after every stamp of the group it bumps (an org-wide stamp moves all of its org's) and at Close,
// and the engine counts its policy swaps; an entry found current is stamped with its group's epoch
// (its project's) as read before the check, and while that epoch still reads the same, the
// decision is served from the 32-byte index word that found it (verdict, role, reasons) without
// reading anything else. A write to the org's org-wide facts (a membership, a team role, a team,
// the org's record) or to a project of the entry's group (related or not), or a policy swap,
// makes its next hit check its Deps again (and stamp it anew), as every hit did before; a write in
// another org, or to a project of another of the org's groups, leaves it served from its word
// (unless the names share a group: one of 255 for orgs, of 14 for an org's projects); an entry
// that read an expiring fact is checked on every hit. An in-memory hit allocates nothing (bench/RESULTS.md has its cost
// over 100k distinct keys beside a plain Go map, with and without writes going on), a Badger hit
// costs about 5 µs.
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
// a team space is decided project by project. Without a table (authors' modules that may read more
// than its key, and so open or close any project), every project of the org or team space past the cursor is decided with
// Authorize until the page is full (ListProjects documents the cost). Property tests compare
// listings with project.get on random directories, with random ext modules and with data-only
// policies.
//
// The bulk version listings (list_component_versions, list_model_versions,
// list_artifact_versions) need versions.list on each run's project, and the version kind must not
// be in the project's effective excluded_features: the check is policy.Admit's, the one
// AdmitVersion runs, and a hit denies that run with reason feature_excluded.
//
// # Who can, and why
//
// ListSubjects lists the subjects allowed a request without attributes, each with its Decision's
// role and reasons and, for team_role, the teams that give the role (Access.Teams). It asks
// the policy, never a second copy of the role rule: while the policy has a decision table, each
// candidate is decided by the table cell of its own facts, read from the store's indexes in one
// snapshot, and messages are rendered as on the compiled path; without one (authors' modules that
// read more than its key),
// each candidate is decided with Authorize. The candidates: the default rules deny every
// non-member (not_org_member), and team members and grantees are org members (SPEC §2), so they
// are the org's members. Whether a non-member can be allowed is asked, not assumed: the table's
// cell for a non-member's facts, or, with modules, rego.Policy.ExtAllows (an ext.allow rule or
// data, which may name any subject id). When it can, the candidates are every subject the
// directory knows (every org's members and every user record) and the page says Unbounded: an id
// stored nowhere cannot be enumerated. Cost: one pass over the org's members per page on the
// table (map lookups; no Rego once the cells are filled), up to one cached evaluation per member
// past the cursor without it; with Unbounded, over every subject the directory knows. Pages are
// sorted by subject id; the cursor is the last subject returned, so it stays valid across writes.
// A property test compares listings, whole and paged, with Authorize for every user on random
// directories: default rules, random data, an ext.allow in data, deny-only, random and
// subject-naming modules.
//
// # How to get access
//
// On a deny, Explain (Explanation.Suggestions) and Authorize with Request.Suggest
// (Decision.Suggestions) return the smallest directory changes that would allow the request. A
// Request without Suggest costs one boolean test; with it the decision is made by full evaluation
// (the facts, team roles included, are needed) and is not cached.
//
// The changes tried are the facts the default rules read: a grant on the project (ChangeGrant),
// a role in one of the resource's effective teams or in the team of a team action
// (ChangeTeamRole), an org role (ChangeOrgRole). For each, the roles are tried from the lowest
// rank up (the policy's data ranks and org_ranks) and the first that allows is kept, so each
// dimension yields at most one suggestion (a team, one per team); the changed facts are decided
// by the decision table's cell when the request is one the table answers, else by full
// evaluation of the changed input (a policy without a table, attributes, a transfer destination, to which
// an org-role or team change in the same org applies too). Changes stay valid in the model: a
// non-member gets grant and team suggestions that first add them to the org as the lowest org
// role (outsider, under the default data; SPEC §2 lets outsiders into one team or project),
// unless that alone allows. Suggestions come narrowest first (grant, team, org role). Nothing is
// suggested for a resource that does not exist or a failed evaluation, and a deny no such
// change lifts (an ext.deny on the project) gets none; under authors' modules without a table the suggestions
// found are sound (each evaluated) but facts only a module reads are not searched.
//
// Each Step names who may make it: the subjects allowed its management request — project.access
// on the project (a grant), team.members.manage on the team (a team role), members.manage on the
// org (an org role) — with attributes target_role and, when the change replaces a role,
// target_current_role, so the policy's own limit applies: nobody assigns a role above their own
// (SPEC §4, §10; rego/authz.rego). The candidates are found with the same listing as
// ListSubjects: with a decision table those the table allows the request at all (the default
// rules' member-management limits only deny), each then evaluated with the attributes; with
// modules, which may allow on attributes alone, every candidate is evaluated with them.
// Suggestion.Changes is the batch (store.Changes: store.Apply, or the JSON `teamgate apply
// --changes` reads); a raised grant keeps its queue, namespace and presets. Tests apply every
// suggestion for random denied requests (conformance directory; random data; random modules) and
// require Authorize to allow with the suggestion's role and reasons, and require each step's
// approvers to be exactly the users Authorize allows the step's request, none of them giving or
// changing a role above their own.
//
// # What-if
//
// Simulate answers "what would this batch change?" without applying it: the store validates
// the batch and applies it to a private copy of the orgs it touches (store.Store.Simulate), and
// two uncached engines with the policy in force, one over the copy before and one after, decide
// every pair the batch can affect: each project whose record, policy or org defaults change
// with every member of its org, each subject whose memberships or grants change with every
// project of its org, for every project action. Anything else has the same policy input before
// and after, so the answer is exact, not sampled (a property test compares it with applying
// the batch to a copy of random directories and deciding every pair).
//
// DiffPolicy answers "what would loading this policy change?": every decision of the
// directory's subjects on their orgs, teams and projects, compared between the policy in force
// and the candidate. While both have a decision table (the default rules with data, authors'
// modules that read only its key) it compares the tables (rego.Table), over the whole fact space
// (PolicyDiff.Cells) and on each pair's key under each policy's ranks; otherwise it evaluates both on every pair's full input (a property
// test compares both ways with deciding every pair under engines of each policy). The diff's
// fingerprint (DiffFingerprint: the changed decisions without their messages) makes SetPolicyIf
// an optimistic-concurrency load: review a diff, then load the candidate only if it still makes
// that diff (teamgate.ErrConflict otherwise).
//
// # Hygiene report
//
// Lint reports unreachable projects, teams without an admin (or whose admins' memberships all
// expire), redundant grants (for as long as they last: expiring memberships are followed, and
// break-glass elevations never count), empty default teams, outsiders and policies with nothing
// to do, and settings conflicts (LintCode), each with
// a Fix in store.Changes. Reachability and access are asked of the policy (ListSubjects,
// ListProjects, Authorize, the decision table for grants), never of a second copy of the role
// rule; Lint documents each kind and its fix.
//
// # Metrics and traces
//
// Nothing is measured or traced unless the host asks, and nothing global is touched.
// WithMetrics(reg) registers, with the host's prometheus.Registerer only:
//
//   - teamgate_decision_duration_seconds{path, outcome}: a histogram of the time Authorize
//     took (buckets from 100 ns to 1 s), by the path that decided — cache_l1 (memory), cache_l2
//     (Badger), compiled (the decision table), rego (full evaluation), none (Authorize returned
//     an error: invalid input, ErrStale, ErrClosed, the context) — and the outcome: allowed,
//     denied, error (a deny with reason error, or an error returned). Every Authorize call
//     counts, including those AuthorizeBatch, BulkRuns, CreateProject and listings under
//     authors' modules make; admission and Explain decide without Authorize and do not.
//   - teamgate_decisions_total{path, outcome}: the same calls as a counter (the histogram's
//     count, read when the registry is gathered; both come from one read of each series, so one
//     gather's counter and histogram count agree under load).
//   - teamgate_decision_cache_hits_total{tier} and teamgate_decision_cache_misses_total{tier}
//     (tier l1, and l2 when the directory persists), teamgate_decision_cache_entries.
//   - teamgate_evaluation_errors_total and teamgate_evaluation_over_budget_total (Stats).
//   - teamgate_store_revision: the directory's revision.
//   - teamgate_decision_log_dropped_total: decision log records dropped because its queue was full
//     or the engine closed (WithDecisionLog; Stats.DecisionLogDropped), also said in a log line.
//
// Only the histogram costs anything per decision: two readings of the monotonic clock and one
// observation, no allocation — about 500 instructions (callgrind on BenchmarkAuthorizeObserved:
// half an in-memory cache hit again, a tenth of the compiled path), plus whatever reading the
// clock costs on the platform (tens of nanoseconds on some virtual machines). Everything else is
// read from the engine's counters when the registry is gathered. Writes are timed by the store
// (store.Options.Registerer: teamgate_store_write_duration_seconds), where every write goes, not
// only the engine's. Engines sharing a registry each need a label of their own
// (prometheus.WrapRegistererWith); registering twice is an error from New. Engine.Close
// unregisters the metrics, once: an engine closed again does not take away the metrics of one
// registered since on the same registry.
//
// WithTracerProvider(tp) makes spans, through the OpenTelemetry API only, from tp's tracer
// (instrumentation scope github.com/teamgate/teamgate/authz): teamgate.Authorize (attributes
// teamgate.action, teamgate.resource, and once decided teamgate.allowed, teamgate.role,
// teamgate.path, teamgate.revision, teamgate.reasons: the reason codes), teamgate.AuthorizeBatch
// (teamgate.count), teamgate.ListProjects and teamgate.ProjectFilter (teamgate.owner, and
// teamgate.count and teamgate.revision of the answer), teamgate.ListSubjects (teamgate.action,
// teamgate.resource, teamgate.count, teamgate.revision), teamgate.BulkRuns (teamgate.owner,
// teamgate.operation, teamgate.count, teamgate.allowed_count), teamgate.Admit and
// teamgate.AdmitVersion (teamgate.project, teamgate.run_kind or teamgate.feature,
// teamgate.allowed, teamgate.violations: the violated fields), and the writes
// teamgate.CreateProject (teamgate.owner, teamgate.project, teamgate.allowed, teamgate.revision),
// teamgate.BreakGlass and teamgate.EndBreakGlass (teamgate.project, teamgate.allowed,
// teamgate.revision). The decisions an
// operation makes are child spans, and so are the store's write spans (store.Options.TracerProvider:
// teamgate.Apply under CreateProject and the break-glass writes). A returned error, and a decision that denied because its
// evaluation failed (reason error), is recorded on the span and sets its status to Error.
// Subjects are left out of spans (traces often go to shared backends; who asked belongs in a
// decision log). Without the option no span is started and no global provider is read; pass
// otel.GetTracerProvider() to use the global one. Attributes are set once a span has started,
// and only on a span that records: a provider that records nothing (the noop one, the global
// one before the host installs an SDK, a sampler's dropped spans) costs a decision the span's
// start and end, one allocation (BenchmarkAuthorizeObserved/cached/spans), and no attribute is
// built; a sampler sees no attributes. A string a span repeats from the caller (an action, a
// resource, an owner, a project name) is cut past 386 bytes, the longest valid org/team/project
// reference, as error messages cut the values they quote.
//
// # Decision log
//
// WithDecisionLog(sink) records every Authorize call (those of AuthorizeBatch, BulkRuns and
// CreateProject included; a BulkRuns run denied before any decision — the scope denied,
// not_in_scope, a malformed project — has none of its own) and every Explain as a DecisionRecord: the request (attributes
// copied), the decision with its reasons and revision, the policy's fingerprint, the path
// (DecisionPath, as in metrics: cache_l1, cache_l2, compiled, rego, or none when the call
// returned an error), the latency and the time. Listings, admissions and the analyses (ListSubjects, suggestions, Simulate, Lint,
// DiffAccess) are not logged. A decision never waits for the log: it is written into a slot of a bounded
// lock-free ring (a full one drops it: Stats.DecisionLogDropped) — any decision but a cache hit
// as the parts its record is made of, in the slot itself (a compiled decision of a request
// without Owner, MinRevision or attributes as one cache line: its subject, resource, reasons and
// revision and the decision table's cell, immutable, which names its action, allowed, role and
// policy; others as two: the revision, the request's strings, the returned decision's reasons
// and role, the policy's fingerprint; with no atomic store but the one that publishes it; a
// failed call or one with attributes or Suggest as a whole record), an in-memory cache hit writes
// only its cache entry, revision and MinRevision
// (the slot's other line), from which the
// log's goroutine makes the same record, or, when the latest hit of its stripe of goroutines on
// the same cached decision is still queued with the same revision and MinRevision, adds one to
// that slot's count (so records of cache hits may reach the sink grouped, out of call order) —
// and one goroutine drains the ring into the sink in batches — every DecisionLogInterval while
// records arrive, sooner when the ring is half full, never while idle. A cache hit stays allocation-free with a log; the log reads no clock on a hit or on
// the compiled path of an in-memory store (see DecisionRecord.Time and Latency for why and what
// that means), and bench/RESULTS.md has its measured cost. Engine.Close flushes the ring and
// stops the goroutine; FlushDecisionLog waits for what was queued before it. Package decisionlog
// is a Badger-backed sink with retention, queries and rechecks.
//
// # Decisions written down
//
//   - ext.allow never applies to not_found: a resource that does not exist stays denied.
//   - `teamgate check` answers an invalid single request on its JSON line and exits 0, like a
//     batch line (SPEC §11); usage and data-file errors exit non-zero.
//   - Deny-list sources that combine a policy and the project read "policy:NAME∪project".
//   - Simulate lists members of the org (before or after) only, compares requests without
//     attributes, and counts a decision as changed when Allowed, Role or its reason codes
//     differ (not its messages); admission defaults are the queue and presets Admit picks for
//     a run naming neither.
//   - DiffPolicy compares requests without attributes on "org", "org/team" and "org/project"
//     (not team-space references or attributes, which a module may read); actions only
//     one catalog has are listed (ActionsAdded, ActionsRemoved), not decided. The fingerprint
//     covers those actions and the changed decisions (Allowed, Role, reason codes), not
//     messages, the revision or the fact-space cells, so it is the same on the table and the
//     evaluation path and an unrelated directory write leaves it unchanged.
//   - The decision log times a decision only where two clock reads (about 76 ns each on the
//     reference machine) cost little beside it: with metrics (every decision is timed), full
//     Rego evaluations and Badger-tier lookups. An in-memory cache hit without metrics is logged
//     with Latency 0 (bench/RESULTS.md, "Stop 16", has what the log costs a hit); timing it
//     would double its cost. So is a compiled decision on an in-memory store: two reads (46–53 ns
//     each on stop 17's machine) would cost it about 25 % ("Stop 17" has what the log costs it).
//     A record's Time is when the log's goroutine took it.
//   - The decision log writes one record per decision, but queues identical in-memory cache
//     hits as a count on the latest one still queued (WithDecisionLog): queuing a record per hit
//     cost a hit 60-110 % by wall clock (stop 15) — cache lines passed between the deciding
//     core and the log's on every decision — and dropped records under a sustained load. The
//     price is order: such records are written grouped, before records queued between them.
//   - Effective settings are cached the same way (memory, then Badger; entries expire after a
//     day), with the Deps of the read that merged them: any write to the project, its policy or
//     its org's defaults makes an entry stale. An entry is checked inside the snapshot that uses
//     it, so admission reads its decision, settings, rules and subject facts in one snapshot.
//
// An Engine is safe for concurrent use.
package authz
