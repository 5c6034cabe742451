// Package store is teamgate's directory: orgs, org members, teams, team members, projects (with
// their teams, policy, settings and grants), policies and users, kept in Badger and mirrored in
// memory for the decision path.
//
// # Reads
//
// The whole directory lives in memory with the indexes the decision path needs: a user's org role,
// a user's team roles in an org, a project's record and effective teams, a team's members, the
// projects whose effective teams contain a team, a policy's connected projects. View gives a
// consistent snapshot of all of them.
//
// Memberships are most of a large directory (SPEC §9's large tier: 10M), so they are held as
// integers: each member of an org and each team has an id, roles are one-byte codes, a team's
// members are a map from member id to role and a member's teams a short list of (team id, role)
// pairs, with no pointer for the garbage collector to follow. Reader.TeamRoles serves that list
// as UserTeams (look a team up with Role, iterate with All, take the roles held in a list of
// teams with In) without copying it; Members and TeamMembers, which callers walk rarely, build a
// new map. Reader.Access serves in one call everything a decision reads about one user on one
// resource (does it exist, the org role, the grant, the project's effective teams and the
// user's roles in them as a RoleSet), with one lookup of the org, the project and the member;
// it records the same stamps as the single-fact accessors it stands for. Store.ViewAccess is a
// View that reads only that call (the decision path's read, without a callback to allocate).
// What that read touches is laid out to share cache lines (a missed line costs more than the
// read's instructions on a crowded machine): members and projects are found by name in hash
// tables of the store's own whose 16-byte slots hold the name's hash and the entry, four to a
// line, the name's bytes being the entry's own first bytes (names of up to 35 bytes for a
// member, 15 for a project; longer ones are kept beside), so a lookup reads one line of slots
// and the line the decision reads next; a member's entry is one 64-byte line holding the name's
// bytes, the org role and the team list, and a project's first line holds its name's bytes, its
// effective teams and whether they restrict, its Grants, its Labels and its team-id mask
// (TestDecisionReadsFewLines; bench/RESULTS.md, "Stop 17: compiled path", "Stop 18: compiled
// path", "Stop 20: compiled path" and "Stop 21: compiled path"). Access serves the effective teams' names and Restricted, not their Source (the line
// has no room for it): ProjectView.Teams has all three.
//
// # Opening
//
// Open refuses (ErrInvalid) a Badger directory that holds no store revision and a key outside the
// store's "v1/" prefix: another kind of data, such as a decision log, is not read as an empty
// store nor written into.
// Open reads every record and replays it through the same validation as a write, in dependency
// order (orgs, members, policies, teams, team memberships, projects, users); a record that fails
// it fails Open with its key. Team memberships are read and validated by one worker per CPU,
// each taking runs of whole teams in key order, and the stamps load at the same time. When the
// membership snapshot is usable, the member, team membership and stamp records are not read,
// except those written after it.
//
// # Membership snapshot
//
// Org members and team memberships are most of a large directory (10M memberships at SPEC §9's
// large tier), and reading them record by record — a Badger iteration step and a name lookup per
// membership — is most of Open, and the stamps (one per member, project and team) most of the
// rest. So the store writes them as a snapshot: per org, the member names and org roles (a
// member's id is its place, in the order of the names), and per team its members' ids, team
// roles and expiries; then every stamp's key and revision; with the revision of the records
// they equal, Badger's read timestamp when it was taken, and a CRC-32C of the whole. Open installs it in place of the member, team membership
// and stamp records (every other record is still read and validated), then reads again the
// records changed after it, so it is used after a crash too. It is written:
//
//   - at Close, after every write is answered and nothing else writes, unless the store is in
//     memory, is empty, has a batch not yet applied to its keys, or the newest snapshot is of
//     the current revision already;
//   - in the background, on disk only, once Options.SnapshotRevisions revisions (default
//     10,000) were committed after the last one, every Options.SnapshotInterval (default 10
//     minutes) when anything was committed since, and after a batch whose event is too large
//     to list its keys (a big data file load), which Open cannot bring a snapshot past; at most
//     half the time (after a snapshot that took d, none for d), so a bulk load does not
//     snapshot continuously.
//
// A background snapshot is begun while leading the commit pipeline (so no write is in flight
// and it is of one revision), which takes only its revision, Badger's read timestamp, the orgs
// and their teams' names, and how many member ids and stamps there are; the member tables and
// the stamps are then copied 4,096 entries at a time, each step under the read lock, while
// writes go on between the steps. Readers go on (except one arriving while a writer waits for a
// step: Go's RWMutex queues it behind that writer); a writer waits for one step at most. A write
// that changes a member's entry (name, org role, team list, expiries) the copy has not reached
// yet keeps it first, as it was at the snapshot's revision, and a write that bumps a stamp keeps
// the stamp's value, once each (txn.keep, stamps.before), so the copy is the state of its
// revision exactly (TestSnapshotCaptureUnderWrites races writes against it). Member lists are
// never changed in place, so keeping one is keeping its slice header; the stamp cells are also
// listed in the order they were made (stamps.list, 48 bytes a stamp, about 5 bytes a membership
// at the large tier), a list the copy walks while writes append. One snapshot is copied at a
// time. It is then encoded and written while writes go on, and logged at Info with how long it
// took and the longest a step held the writers (stop 15's copy of the whole state in one step
// held them 2.25 s at the large tier; bench/RESULTS.md, "Stop 16"). Members are numbered in the
// order of their names, so Open finds the member list already sorted.
//
// Open uses the snapshot only when all of these hold, and otherwise reads the records, which
// stay the source of truth:
//
//   - its revision is not past the records';
//   - the event of every revision after it is kept (the last 100,000 are) and lists every key
//     it wrote (a Truncated event does not): the member and team membership records those
//     events name are read again (a missing one was deleted), and so are the stamps their keys
//     and projects bump (stampsOf) that were written since;
//   - no member, team membership or stamp record was written or deleted after it (a Badger
//     version past its read timestamp, tombstones included) that no event names, and no stamp
//     was deleted: nothing wrote Badger behind the store's back. One scan of the versions after
//     it checks this and reads what the events name; a stamp it does not meet was not written
//     since (stamps are only ever set) and is as the snapshot has it. A deletion whose
//     tombstone compaction dropped before the next Open is not seen: Badger keeps no trace;
//   - its format version, and the role tables its role codes index, are this version's;
//   - its chunks add up to the length the head gives, with the head's checksum, and decode to a
//     well-formed table (role codes in range, member ids in range, no member listed twice);
//   - the orgs and teams it names are the records' except those whose records were written
//     after it (and an org or team gone since had every membership deleted since), and the
//     records changed after it apply to it through the same validation as a load (a member
//     deleted since is in no team any more).
//
// A snapshot that fails any of these is logged (out of date at Info, anything else at Warn) and
// ignored; one that fails the last is noticed after the other records were read, and they are
// read again without it. A store opened from its snapshot is the store opened from its records:
// the same export, roles, team members, stamps (so the same cached decisions stay current) and
// decisions (member ids may differ; no reader sees them); TestSnapshotAndChangesEqualRecords and
// TestBackgroundSnapshotKilled check it on random write sequences, the latter killing a writer
// process at every step.
//
// A snapshot's chunks are keyed by its generation (its read timestamp). It writes its chunks,
// then its head, then deletes the chunks of every other generation: a crash (kill -9) anywhere
// in between leaves the old head with its chunks whole, or the new one with its chunks whole.
// One snapshot is written at a time, each of a later revision than the last. A failure to
// write it is logged and the store goes on: only the next Open is slower. Cluster nodes
// (package cluster) are stores like any other: each writes and checks its own snapshot against
// its own records and events, and a follower's replayed events are writes.
//
// # Dependencies
//
// Every fact a Reader serves has a stamp: a cell holding the revision of the last write that
// touched it (the key set is listed in stamps.go; e.g. a user's membership in an org, a project
// with everything its settings and effective teams derive from, an org's lists). Apply bumps the
// stamp of everything it touched before it returns and stores the stamps with the batch, so they
// survive a restart. A tracking Reader (Reader.Track) records the stamp of every fact it serves,
// with its value, into a Deps: a value derived from those facts — a decision, effective
// settings — stays valid exactly while Deps.Current reports true (no allocation, no lock), and
// an unrelated write keeps it current. Deps encode (MarshalBinary) and decode against this or a
// reopened store (DecodeDeps), so caches kept on disk are checked after a restart. Reading
// something that was never written creates no stamp (bounded memory whatever names requests
// use): it is watched through one of a few shared cells of its epoch group, by key hash, which
// the first write of any key of that shard bumps. A closed store has no current Deps. Each cell
// belongs to an epoch group: an org (255 org groups by name hash) has one for its org-wide facts
// (its record, memberships, teams), 14 that share its projects by name hash, and one for its
// lists and policies (where users' records go too), and Epoch keeps a counter per group that
// moves after every change of a cell of the group — an org-wide cell's moves every group of its
// org. A cache checks Deps.Current once and then, while the epoch of the Deps' group
// (Deps.EpochGroup: for a decision, its project's) reads the same, knows them current without
// reading them: a write in another org, or to a project of another group of the same org, moves
// other groups. The contract —
// every accessor records, every write bumps — lives here only: TestEveryReaderAccessorRecordsItsStamps
// reads through every exported Reader accessor, writes a change to the answer and checks the
// recorded Deps are no longer current. Callers never name stamps.
//
// # Writes
//
// Apply takes a batch of changes (PutOrg, PutMember, PutTeam, PutTeamMember, PutProject,
// PutGrant, PutPolicy, PutUser and their Delete counterparts, CreateProject, RenameTeam, and PutFile: a whole data file). Each
// change is validated against the model as it applies — unknown role, team member or grantee
// that is not an org member, project naming an unknown team or policy, team linking an unknown
// policy, default team the user cannot enter, bad slug, CEL rule that does not compile to a
// bool, deleting a team a project is assigned to or a policy still in use, creating a project
// that exists — and any error undoes the whole batch in memory, writes nothing to Badger and
// leaves the revision unchanged. A successful batch bumps the revision by one, commits the touched
// records, their stamps, an Event and the revision atomically (see Atomicity), and returns the
// revision.
//
// Readers never wait for the disk. Writes go through a commit pipeline: writers queue, and one
// leads at a time. The leader takes every write queued, itself included, as a group and, under
// the readers' write lock, applies each batch in turn to the in-memory state — validating it
// against the state the group's earlier batches leave; an invalid batch fails alone, each valid
// one takes the next revision and its own Event — then serializes the records they wrote, rolls
// the whole group back out of memory (every in-memory mutation is logged with how to undo and
// redo it) and releases the lock. It commits the group's records, stamps, events and last
// revision to Badger as one (one transaction, one fsync; see Atomicity) with no lock held, while
// readers keep seeing the state before the group. Once that is durable it takes the write lock
// again, redoes the group's mutations (no validation: nothing else writes, so the state is the
// one they were made on), bumps their stamps and the revision and wakes watchers; then it
// answers the group's writers and hands the lead to the first writer that queued meanwhile. So
// Apply returns once its batch is durable and visible, never earlier; a reader waits at most
// for in-memory work, never for an fsync; and writers arriving while a commit is in flight share
// the next one (group commit), each with its own revision, event and stamps, in queue order. A
// Badger failure fails every batch of its group, none of which was visible. A writer's context
// is checked when the leader takes its batch: one that ended meanwhile fails alone.
//
// Deletes cascade where that only removes access: DeleteMember removes the user's team
// memberships and grants in that org, DeleteOrg removes everything in the org. They refuse
// (ErrConflict) where it could widen access: DeleteTeam while a project is assigned to the team,
// DeletePolicy while a project is connected or a team linked.
//
// Put* creates or replaces. CreateProject only creates: the store checks under its write lock
// that the name is free (ErrConflict otherwise) and, for a project created in a team space,
// reads the team's linked policy there too, so concurrent creators of one name never overwrite
// each other and a link changed meanwhile is never missed. RenameTeam renames a team with
// everything that names it (memberships, project assignments, policies' teams allow-lists, users'
// default teams) in one change; it is ErrNotFound when the team does not exist and ErrConflict
// when the new name does.
//
// # Simulating
//
// Simulate runs a batch through the same validation as Apply (same errors) against a private
// copy instead of the state: under the read lock, each org a change looks up is copied on first
// use (twice: as it was, and to apply the batch to; a data file's orgs, or every org for a
// PutDirectory, are copied first) with every user record, and the batch applies to the copy.
// The Simulation serves both copies through ordinary Readers (ViewBefore, ViewAfter) that take
// no lock, with the event Apply would have produced and the projects and subjects the batch
// touches. Nothing is written, no revision taken, no stamp bumped, and no reader of the store
// can see the copy. The cost is linear in the size of the touched orgs.
//
// # Team policy links
//
// A team's linked policy is the policy a project created in the team space is connected to
// (SPEC §5). The seed's "settings are automatically synchronized across team projects" is kept
// in these terms: when PutTeam changes a team's link from OLD to NEW, every project assigned to
// the team (its teams field names it) whose connected policy is OLD — OLD may be none — is
// connected to NEW in the same batch (NEW none disconnects it); a project connected to any other
// policy is left alone, so a policy chosen for one project is never replaced behind its back.
// The projects' records, effective teams, indexes and stamps follow, and the event names each of
// them. A link does not govern decisions by itself: a project's settings and team narrowing
// always come from its own connected policy.
//
// # Default teams
//
// A user's default team (`org/team`, what an empty owner resolves to) must be a team the user
// can enter, which the store decides from memberships alone: the user is a member of the team
// (which org roles reach every team is the policy's rule, rego/data.json, and the store does not
// restate it; an owner who wants a default team joins it). PutUser refuses any other
// (ErrNotFound). A write that takes that away — the team membership or the org membership
// removed, the team or the org deleted — clears the default team in the same batch (an empty owner then fails
// with "no default team" until one is set again); RenameTeam rewrites it to the new name.
//
// # Atomicity
//
// An acknowledged batch is all on disk after a crash (kill -9, or power loss unless
// Options.NoSync), and a batch that was not acknowledged is absent, whatever its size. A batch
// is published in memory only once it is durable (durability before visibility, see Writes);
// readers work from memory and never see a batch the disk could lose.
//
// What is committed atomically is a group of batches (see Writes): all of it or none of it is
// on disk after a crash. A record written by several batches of a group is written once, with
// its last value; each batch's event and stamps are written as if the batches had been
// committed one by one. A group that fits one Badger transaction (about 15% of Badger's
// memtable: ~10 MB, tens of thousands of changes) is written in that one transaction, fsynced:
// Badger's own atomicity. A larger one is committed in steps, each a Badger transaction (the
// revision in the keys below is the group's last):
//
//  1. stage: its writes, encoded in chunks, go to v1/pending/{revision}/op/{seq}, in as many
//     transactions as they need;
//  2. commit: one small transaction writes the marker v1/pending/{revision}/commit (the number
//     of chunks) and the batch's event. This is the commit point; Apply acknowledges only after
//     it, and Watch finds the event from then on;
//  3. apply: the writes go to their own keys, in as many transactions as they need;
//  4. clean up: the marker is deleted, then the chunks.
//
// Open first recovers whatever a crash left under v1/pending/: a batch with its marker is
// completed (steps 3 and 4 again; replaying them is idempotent, as every write is a whole value
// or a delete), staging without a marker is deleted. Only then does it read the records, so it
// never sees half a batch, and the stamps it loads match the records (a decision cached on disk
// before a lost batch stays valid; one cached before a kept batch does not). If Badger fails
// before the commit point, the batch fails and its staging is removed (if removing it fails too,
// the next write removes it before anything else, as the next batch is staged under the same
// revision); if it fails after, the batch stands (it is durable, its event is kept) and the next
// write, or the next Open, completes it first.
//
// Badger refuses to open a directory in which a kill left an empty log file
// (dgraph-io/badger#2207); its failed attempt initialises the file, so Open tries again.
//
// Damage that no crash leaves, Badger would make worse, so Open refuses it before Badger opens
// the directory, changing nothing in it, with a *teamgate.InvalidError (ErrInvalid) naming the
// directory and the damage: table or value-log files without a MANIFEST (lost, or a copy that
// left it out: Badger would start a new store and delete every table it does not know), and a
// table the MANIFEST names that is cut short, its footer pointing past its end (Badger panics
// reading it on a goroutine of its own, ending the host's process). Restore such a directory
// from a copy. The decision log refuses the same damage (one check, internal/badgerdir).
//
// # Expiry
//
// A team membership (PutTeamMember.ExpiresAt) or a grant (Grant.ExpiresAt) may expire; in a data
// file both are written as a map, `bob: {role: admin, expires_at: 2030-01-01T00:00:00Z}` (RFC
// 3339; a bad time is an ErrInvalid naming the path and the line). Time is Options.Clock (the
// system clock by default). Two mechanisms, each sufficient for correctness of its part:
//
//   - Readers: an entry whose expires_at is at or before the clock is absent for every Reader
//     accessor, whether or not its revocation has been written, and a tracking Reader that served
//     a live expiring entry records the earliest such expires_at in its Deps, which stop being
//     current then (also when encoded to disk and decoded after a restart: Deps carry it). So no
//     decision or settings cached from a read outlives an expiry, timer or no timer.
//   - Writes: at expires_at the store revokes the entry as an ordinary write — ExpireTeamMember
//     or ExpireGrant, a new revision, stamps bumped, an event of kind expire_team_member or
//     expire_grant ("batch" when several fall due together) naming the subject and the affected
//     projects — so the revocation is durable, replicated and visible to watchers. Open applies
//     the revocations that fell due while the store was closed before it returns. An Expire*
//     change applies only while the entry still expires exactly then (ErrConflict otherwise), so
//     a renewal made meanwhile wins and a duplicate changes nothing.
//
// Expiry is measured in unix nanoseconds: an expires_at after MaxExpiry (2262-04-11) is an
// ErrInvalid naming it; one before 1970 is simply past. An expires_at already past when written is accepted and revoked at once (absent for readers
// at once, its revocation the next write): a write's validity never depends on the clock, so
// a replica, a reload of an exported file, or a snapshot restored later all apply the same
// batches the primary did. Putting an entry again replaces its expiry (zero: never expires).
// Snapshot and Export write expiring entries with their expires_at, including expired ones whose
// revocation is not written yet. A replicated store never writes its own revocations (its reads
// still treat expired entries as absent): its cluster node runs ExpireWith with the node's
// Apply, so each revocation goes through the log once — the first node's write lands, the
// others' fail validation against the state it left.
//
// The expiry loop keeps no schedule on disk: the expiring entries are indexed in memory
// (per org: memberships by team and member id, grants by project and user), and a queue ordered
// by expires_at holds them for the loop: each committed write adds the expiries it set, Open
// fills it from the index. The loop wakes at the earliest expires_at or after any write, and
// then reads only the queue's head — the entries due and the next one — dropping entries a
// renewal, delete or rename made stale (the index no longer holds that expires_at for them): a
// write does not rescan every expiring entry. Reader.Expiries gives the same answer by scanning
// the index (a test compares them after random renewals, deletes and renames). Store.Check
// verifies that index against the records (ExpiryIndexError).
//
// A break-glass grant (Grant.BreakGlass, made by authz.Engine.BreakGlass) always expires; it
// can also be ended early by EndBreakGlass (an end_break_glass event whose change names who
// ended it), which applies only to the elevation its caller read.
//
// # Data files
//
// ParseFile reads the data file of SPEC §2, YAML or JSON, strictly (internal/strict): an unknown,
// duplicate, null or non-scalar key, a case variant of a field name, a merge key, a value of the
// wrong kind, a fraction or exponent where an integer is expected, a second YAML document, an
// alias containing itself and aliases expanding past 4 × the file + 1 MiB are each an ErrInvalid
// naming the path ("orgs[0].members.bob") and the line, found in time and memory bounded by the
// file's size, quoting at most a short prefix of the offending value. So is what the file can be
// checked for on its own before anything applies — an unknown org, team or grant role, a project
// label ValidateLabels refuses, an entry without a name — and a name given twice (ErrConflict):
// the same rules the changes check as they apply, found here where the line is known
// (strict.Locate re-reads the file only when there is an error).
//
// Projects carry labels (SPEC §2; Project.Labels, `labels` in the file): part of the project's
// record and its stamp, so a decision that read them goes stale when they change.
//
// Load and LoadFile apply a file as one change, PutFile, so one batch and one revision: every org
// the file names becomes equal to the file. PutFile works out the difference when it applies,
// under the write lock, against the state at that point: members the file dropped are deleted
// first (with their team memberships and grants), then the file's members, policies, teams, team
// members and projects are put where they differ (a project is also put where a team's changed
// link re-connects it, so it ends connected as the file says), and last the projects, teams and policies the
// file dropped are deleted, once nothing the file keeps refers to them. So a reload revokes
// whatever the file no longer grants, and a file that breaks the model (a team member who is no
// longer an org member, a project assigned to a dropped team) fails like any batch and changes
// nothing. Orgs the file does not name are untouched. User records are not per org: the file's
// users are put, others stay. A file equal to the directory (File.Changes is empty) is not
// written at all. The event of a load carries the file itself; a replica applying it works out
// the same difference against the same state.
//
// # Key layout (version 1)
//
//	v1/meta/revision                 uint64, big endian: revision of the last write
//	v1/meta/replicated               empty: the store is a replica (Store.Replicate, Store.Detach)
//	v1/org/{org}                     Org as JSON
//	v1/member/{org}/{user}           org role
//	v1/team/{org}/{team}             Team as JSON (members are separate records)
//	v1/tmember/{org}/{team}/{user}   team role, then a space and its expires_at (RFC 3339) if any
//	v1/project/{org}/{project}       Project as JSON, grants included
//	v1/policy/{org}/{policy}         Policy as JSON
//	v1/user/{id}                     User as JSON
//	v1/event/{revision:020d}         Event as JSON (the last 100,000 are kept)
//	v1/stamp/{key}                   uint64: revision of the last write that touched it (Deps)
//	v1/pending/{revision:020d}/op/{seq:010d}
//	                                 a chunk of a large batch's writes, staged (see Atomicity):
//	                                 per write uvarint key length, key, 0 (delete) or 1 (set),
//	                                 and for a set uvarint value length and value
//	v1/pending/{revision:020d}/commit
//	                                 uvarint number of chunks: the batch is committed
//	v1/snapshot/head                 the membership snapshot's head: magic, format version (2),
//	                                 revision, Badger read timestamp, chunk count, length,
//	                                 CRC-32C (see Membership snapshot)
//	v1/snapshot/data/{generation:020d}/{seq:010d}
//	                                 a chunk of the membership snapshot whose read timestamp is
//	                                 generation
//	v1/cache/...                     caches owned by other packages; never loaded as records
//
// Names follow the slug rule (no '/'), so '/' separates key parts unambiguously. Indexes are not
// stored: Open rebuilds them from the records (the membership snapshot stands in for the member
// team membership and stamp records only).
//
// Check verifies that every index agrees with the records; the tests run it after every batch
// of a fuzzed write sequence and at the end of the store suite.
//
// # Events and replicas
//
// Every Apply produces one Event {revision, kind, keys, projects, subjects, changes}: the record
// keys it wrote; the projects whose record, policy or org defaults changed, and those whose
// access a team membership change affects (the team's projects); the subjects ("org/user") whose
// org membership, team membership or grant changed, the members of a renamed or deleted team and
// of a deleted org; and the changes themselves (JSON-encodable as Changes). Watch streams events
// from any kept revision on. Events of the last 100,000 revisions are kept: Watch from an older
// revision fails with a *TrimmedError (ErrStale), and a watcher that falls that far behind gets
// a last event carrying the error in Err before its channel closes; a stream never skips. A replica follows
// a primary by passing each event to ApplyEvent, which applies the same changes at the same
// revision (or fails with ErrConflict on a gap), so both hold the same state and a
// Request.MinRevision read on the replica sees the primary's writes. A batch that touches more
// than MaxEventEntries keys, projects or subjects, or whose event would pass 512 KiB, gives a
// Truncated event whose lists are cut (or left empty); it still carries its changes while they
// are at most MaxEventEntries and fit in 512 KiB (a data file load is one change, the file),
// else it has none and the replica must resync from an Export.
//
// # Traces
//
// Options.TracerProvider makes a span, through the OpenTelemetry API only, from its tracer
// (instrumentation scope github.com/teamgate/teamgate/store) around every call of Apply
// (teamgate.Apply), ApplyEvent, the Store's and the Replica's (teamgate.ApplyEvent), Load and
// LoadFile (teamgate.Load), and the Replica's Restore (teamgate.Restore), a child of the span in
// the caller's context. Its attributes: teamgate.count, the number of changes (for Load, the
// changes the file makes to the directory: 0 when it equals it and nothing is written; for
// Restore, 1: the snapshot is written whole, as one PutDirectory), and teamgate.revision, the
// revision written (the current one when nothing was; for Restore, the snapshot's). A refused write records its error on the span, sets its status
// to Error, and puts teamgate.error, the error's kind, in place of the revision: invalid,
// not_found, conflict, stale or closed (the teamgate error it matches), canceled or
// deadline_exceeded (the context), or other (I/O, Badger). Attributes are built only for a span
// that records, as the engine's (authz's package doc); spans carry no user or record name.
// Without the option no span is started and no global provider is read: a write pays a few nil
// checks and no allocation.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads share a read lock; a writer takes the write lock
// only to validate and to publish in memory, never across the Badger commit (see Writes). Close
// refuses new writes, waits for every accepted one to be committed and answered, then for the
// value-log GC, every Watch goroutine and the background snapshot writer (a snapshot it is
// writing stops before its head; Close writes its own).
package store
