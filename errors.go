package teamgate

import (
	"errors"
	"fmt"

	"github.com/teamgate/teamgate/internal/quote"
)

// Sentinel errors. Every error teamgate's packages return about their input or the directory's
// state matches exactly one of these with errors.Is, and most also carry the offending value in a
// typed error matchable with errors.As. Errors that are not about the input — the context ending
// (context.Canceled, context.DeadlineExceeded), I/O and Badger failures — are returned as they
// are or wrapped with %w, so errors.Is still finds them.
var (
	// ErrInvalid: malformed input (bad slug, bad reference, unknown action, role or run kind).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: a named entity does not exist where the operation needs it to.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the operation would break the model (duplicate, entity still referenced).
	ErrConflict = errors.New("conflict")
	// ErrStale: the store did not reach the requested revision before the context ended, or a
	// watcher needs change events the store no longer keeps.
	ErrStale = errors.New("stale")
	// ErrClosed: the store or engine is closed.
	ErrClosed = errors.New("closed")
)

// InvalidError reports a malformed value. It matches ErrInvalid.
type InvalidError struct {
	What   string // what kind of value: "slug", "owner", "project reference", "role", ...
	Value  string // the offending input, verbatim
	Reason string // why it is rejected
}

// Error quotes a bounded prefix of Value: the input may be huge.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s %s: %s", e.What, quote.Q(e.Value), e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// NotFoundError reports a missing entity. It matches ErrNotFound.
type NotFoundError struct {
	What   string // "org", "team", "project", "policy", "user", "member", ...
	Name   string // the full name looked up, e.g. "acme/vision" (Error quotes a bounded prefix)
	Reason string // optional: which part is missing, e.g. "project vision is not in team space acme/research"
}

func (e *NotFoundError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("%s %s not found", e.What, quote.Cut(e.Name))
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// ConflictError reports a write that would break the model. It matches ErrConflict.
type ConflictError struct {
	What   string // the entity written
	Name   string
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("conflict on %s %s: %s", e.What, quote.Cut(e.Name), e.Reason)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Invalid returns an *InvalidError.
func Invalid(what, value, reason string) error {
	return &InvalidError{What: what, Value: value, Reason: reason}
}
