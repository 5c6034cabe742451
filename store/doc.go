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
// use): it is watched through one of 256 shared cells, by key hash, which the first write of any
// key of that shard bumps. A closed store has no current Deps. The contract —
// every accessor records, every write bumps — lives here only: TestEveryReaderAccessorRecordsItsStamps
// reads through every exported Reader accessor, writes a change to the answer and checks the
// recorded Deps are no longer current. Callers never name stamps.
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
// an Event and the revision in one Badger transaction (fsynced on disk unless Options.NoSync),
// and returns the revision.
//
// Deletes cascade where that only removes access: DeleteMember removes the user's team
// memberships and grants in that org, DeleteOrg removes everything in the org. They refuse
// (ErrConflict) where it could widen access: DeleteTeam while a project is assigned to the team,
// DeletePolicy while a project is connected or a team linked.
//
// A batch larger than Badger's transaction limit is committed in several Badger transactions;
// in memory it is still atomic, but a crash in the middle of such a commit can leave part of it
// on disk. Batches of a few thousand changes are far below that limit.
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
//	v1/stamp/{key}                   uint64: revision of the last write that touched it (Deps)
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
