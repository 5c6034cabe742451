// Package teamgate holds the error sentinels, typed errors and role vocabulary (OrgRole,
// ProjectRole) shared by every teamgate package.
//
// teamgate is an embeddable authorizer for multi-tenant ML platforms organised as
// organizations → teams → projects → runs. The packages are:
//
//   - scope: owner and project reference strings and the slug rule
//   - store: the Badger-backed directory (orgs, members, teams, projects, policies, users)
//   - policy: organization policy settings, their inheritance, run admission and CEL rules
//   - rego: the embedded default Rego policy and the loading of authors' modules
//   - authz: the engine host services call (Authorize, Explain, ListProjects, Admit, ...)
//
// Every error those packages return about their input or the directory's state matches one of
// ErrInvalid, ErrNotFound, ErrConflict, ErrStale or ErrClosed with errors.Is (see errors.go for
// the rest: the context's errors, I/O failures).
package teamgate
