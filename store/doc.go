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
// # Writes
//
// Apply takes a batch of changes (PutOrg, PutMember, PutTeam, PutTeamMember, PutProject,
// PutGrant, PutPolicy, PutUser and their Delete counterparts). Each change is validated against
// the model as it applies — unknown role, team member or grantee that is not an org member,
// project naming an unknown team or policy, team linking an unknown policy, bad slug, CEL rule
// that does not compile to a bool, deleting a team a project is assigned to or a policy still in
// use — and any error undoes the whole batch in memory, writes nothing to Badger and leaves the
// revision unchanged. A successful batch bumps the revision by one, commits the touched records,
// their stamps, an Event and the revision atomically (see Atomicity), and returns the revision.
//
// Deletes cascade where that only removes access: DeleteMember removes the user's team
// memberships and grants in that org, DeleteOrg removes everything in the org. They refuse
// (ErrConflict) where it could widen access: DeleteTeam while a project is assigned to the team,
// DeletePolicy while a project is connected or a team linked.
//
// # Atomicity
//
// An acknowledged batch is all on disk after a crash (kill -9, or power loss unless
// Options.NoSync), and a batch that was not acknowledged is absent, whatever its size. Apply
// holds the write lock until the batch is durable, then publishes it in memory (durability
// before visibility); readers work from memory and never see a batch the disk could lose.
//
// A batch that fits one Badger transaction (about 15% of Badger's memtable: ~10 MB, tens of
// thousands of changes) is written in that one transaction, fsynced: Badger's own atomicity.
// A larger one is committed in steps, each a Badger transaction:
//
//  1. stage: its writes, encoded in chunks, go to v1/pending/{revision}/op/{seq}, in as many
//     transactions as they need;
//  2. commit: one small transaction writes the marker v1/pending/{revision}/commit (the number
//     of chunks). This is the commit point; Apply acknowledges only after it;
//  3. apply: the writes go to their own keys, in as many transactions as they need;
//  4. clean up: the marker is deleted, then the chunks.
//
// Open first recovers whatever a crash left under v1/pending/: a batch with its marker is
// completed (steps 3 and 4 again; replaying them is idempotent, as every write is a whole value
// or a delete), staging without a marker is deleted. Only then does it read the records, so it
// never sees half a batch, and the stamps it loads match the records (a decision cached on disk
// before a lost batch stays valid; one cached before a kept batch does not). If Badger fails
// before the commit point, the batch fails and its staging is removed; if it fails after, the
// batch stands (it is durable) and the next write, or the next Open, completes it first.
//
// Badger refuses to open a directory in which a kill left an empty log file
// (dgraph-io/badger#2207); its failed attempt initialises the file, so Open tries again.
//
// # Key layout (version 1)
//
//	v1/meta/revision                 uint64, big endian: revision of the last write
//	v1/org/{org}                     Org as JSON
//	v1/member/{org}/{user}           org role
//	v1/team/{org}/{team}             Team as JSON (members are separate records)
//	v1/tmember/{org}/{team}/{user}   team role
//	v1/project/{org}/{project}       Project as JSON, grants included
//	v1/policy/{org}/{policy}         Policy as JSON
//	v1/user/{id}                     User as JSON
//	v1/event/{revision:020d}         Event as JSON (the last 100,000 are kept)
//	v1/stamp/{o|m|t|p}/...           uint64: revision of the last write that touched it (caches)
//	v1/pending/{revision:020d}/op/{seq:010d}
//	                                 a chunk of a large batch's writes, staged (see Atomicity):
//	                                 per write uvarint key length, key, 0 (delete) or 1 (set),
//	                                 and for a set uvarint value length and value
//	v1/pending/{revision:020d}/commit
//	                                 uvarint number of chunks: the batch is committed
//	v1/cache/...                     caches owned by other packages; never loaded as records
//
// Names follow the slug rule (no '/'), so '/' separates key parts unambiguously. Indexes are not
// stored: Open rebuilds them from the records.
//
// Check verifies that every index agrees with the records; the tests run it after every batch
// of a fuzzed write sequence and at the end of the store suite.
//
// # Events and replicas
//
// Every Apply produces one Event {revision, kind, keys, projects, changes}: the record keys it
// wrote, the projects whose record, policy or org defaults changed, and the changes themselves
// (JSON-encodable as Changes). Watch streams events from any kept revision on. A replica follows
// a primary by passing each event to ApplyEvent, which applies the same changes at the same
// revision (or fails with ErrConflict on a gap), so both hold the same state and a
// Request.MinRevision read on the replica sees the primary's writes. A batch too large to
// describe (more than MaxEventEntries keys, projects or changes, or 512 KiB of changes) gives a
// Truncated event without changes: the replica must then resync from an Export.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads share a read lock; Apply takes the write lock for
// validation and the Badger commit. Close waits for the value-log GC and every Watch goroutine.
package store
