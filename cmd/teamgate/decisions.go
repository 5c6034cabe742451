package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/authz"
	"github.com/teamgate/teamgate/decisionlog"
	"github.com/teamgate/teamgate/rego"
)

// openDecisionLog opens the decision log in dir. A command that only reads the log refuses a
// directory that does not exist (a typo would answer from an empty log); --decision-log, which
// writes, creates it.
func openDecisionLog(ctx context.Context, flag, dir string, create bool) (*decisionlog.Log, error) {
	if !create {
		if _, err := os.Stat(dir); err != nil {
			return nil, &teamgate.NotFoundError{What: "decision log", Name: dir,
				Reason: fmt.Sprintf("%s %s: no such directory (checks write a log with --decision-log DIR)", flag, dir)}
		}
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, flagError(flag, dir, syscall.ENOTDIR)
	}
	// No retention: the bounds are the host's (its decisionlog.Options); the defaults here would
	// delete what it keeps longer.
	dl, err := decisionlog.Open(ctx, decisionlog.Options{Dir: dir, NoRetention: true})
	if err != nil {
		return nil, flagError(flag, dir, err)
	}
	return dl, nil
}

// parseWhen reads --since/--until: an RFC 3339 time, a date (its first instant, UTC), or a
// duration meaning that long before now — Go's units, or whole days (7d).
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseUint(days, 10, 16); err == nil {
			return now.AddDate(0, 0, -int(n)), nil
		}
	}
	return time.Time{}, usageError{fmt.Errorf("%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02, UTC) or a duration before now (90m, 24h, 7d)", flag, s)}
}

func (e *env) decisionsCmd() *cobra.Command {
	var logDir, outcome, reason, path, since, until, format string
	var q decisionlog.Query
	var recheck bool
	c := &cobra.Command{
		Use:   "decisions --log DIR [filters] [--recheck]",
		Short: "Query a decision log (JSON lines or a table); --recheck lists logged decisions the directory and policy now decide differently",
		Args: withFormat(&format, func(cmd *cobra.Command, a []string) error {
			if err := cobra.NoArgs(cmd, a); err != nil {
				return err
			}
			if logDir == "" {
				return errors.New("--log DIR is required")
			}
			if e.decisionLog != "" {
				return errors.New("--decision-log does not apply to decisions (query the log with --log)")
			}
			if !recheck && (e.data != "" || e.storeDir != "" || e.nats != "" || e.policyDir != "") {
				return errors.New("--data, --store, --nats and --policy are for --recheck")
			}
			var err error
			if q.Outcome, err = decisionlog.ParseOutcome(outcome); err != nil {
				return fmt.Errorf("--outcome: %w", err)
			}
			if path != "" {
				p, err := authz.ParseDecisionPath(path)
				if err != nil {
					return fmt.Errorf("--path: %w", err)
				}
				q.Path = &p
			}
			if err := checkLimit(q.Limit); err != nil {
				return err
			}
			now := time.Now()
			if q.Since, err = parseWhen("--since", since, now); err != nil {
				return err
			}
			if q.Until, err = parseWhen("--until", until, now); err != nil {
				return err
			}
			if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
				return fmt.Errorf("--since %s is not before --until %s", since, until)
			}
			q.Reason = rego.Code(reason)
			return nil
		}),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			dl, err := openDecisionLog(ctx, "--log", logDir, false)
			if err != nil {
				return err
			}
			defer dl.Close()
			if !recheck {
				tw := newRecordTable(e.stdout)
				err := dl.Query(ctx, q, func(r authz.DecisionRecord) error {
					if format == formatPretty {
						tw.row(r)
						return nil
					}
					return writeJSON(e.stdout, r)
				})
				if format == formatPretty && err == nil {
					tw.flush("no decision in the log matches")
				}
				return err
			}
			eng, done, err := e.engine(ctx)
			if err != nil {
				return err
			}
			defer done()
			// The writes since each decision come from the directory's change log: the store's or
			// the cluster's, whose revisions are those the records carry when the log was written
			// against it (a data file is loaded afresh: its revisions are not the records').
			var opts []decisionlog.RecheckOption
			if events, ok := eng.Directory().(authz.EventLog); ok && e.data == "" {
				opts = append(opts, decisionlog.WithEvents(events))
			}
			tw := newRecordTable(e.stdout)
			err = decisionlog.Recheck(ctx, dl, eng, q, func(c decisionlog.Change) error {
				if format == formatPretty {
					tw.change(c)
					return nil
				}
				return writeJSON(e.stdout, c)
			}, opts...)
			if format == formatPretty && err == nil {
				tw.flush("no decision in the log is decided differently now")
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&logDir, "log", "", "the decision log (a Badger directory written with --decision-log or decisionlog.Open)")
	_ = c.MarkFlagDirname("log")
	f.StringVar(&q.Subject, "subject", "", "only this subject's requests")
	f.StringVar(&q.Action, "action", "", "only this action")
	f.StringVar(&q.Resource, "resource", "", "only this resource, as the request named it")
	f.StringVar(&outcome, "outcome", "", "only allow or deny (or the metrics' allowed, denied; a request that failed is a deny)")
	f.StringVar(&reason, "reason", "", "only decisions carrying this reason code (restricted, org_role, error, ...)")
	f.StringVar(&path, "path", "", "only decisions made on this path: cache_l1, cache_l2, compiled, rego, or none (the request failed)")
	f.StringVar(&since, "since", "", "records at or after this time: RFC 3339, a date (UTC), or a duration before now (1h, 7d)")
	f.StringVar(&until, "until", "", "records before this time: RFC 3339, a date (UTC), or a duration before now")
	f.IntVar(&q.Limit, "limit", 0, "at most this many records (0: all)")
	f.BoolVar(&q.Newest, "newest", false, "newest first (default: oldest first)")
	f.BoolVar(&recheck, "recheck", false, "decide each selected request again against --data/--store/--nats and --policy; print those decided differently now")
	formatFlag(c, &format, formatJSON, "a table")
	return c
}

// recordTable prints records or changes for people, under a header line.
type recordTable struct {
	tw      *tabwriter.Writer
	started bool // the header is printed
}

func newRecordTable(w io.Writer) *recordTable {
	return &recordTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func outcomeOf(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

func codes(rs []authz.Reason) string {
	var cs []string
	for _, r := range rs {
		cs = append(cs, string(r.Code))
	}
	return strings.Join(cs, ",")
}

func messages(rs []authz.Reason) string {
	var ms []string
	for _, r := range rs {
		ms = append(ms, r.Message)
	}
	return strings.Join(ms, "; ")
}

func (t *recordTable) row(r authz.DecisionRecord) {
	if !t.started {
		fmt.Fprintln(t.tw, "TIME\tOUTCOME\tSUBJECT\tACTION\tRESOURCE\tPATH\tREASONS")
		t.started = true
	}
	why := codes(r.Decision.Reasons)
	if r.Error != "" {
		why = "error: " + r.Error
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format(time.DateTime), outcomeOf(r.Decision.Allowed), cell(r.Request.Subject), cell(r.Request.Action), cell(r.Request.Resource), r.Path, cell(why))
}

func (t *recordTable) change(c decisionlog.Change) {
	if !t.started {
		fmt.Fprintln(t.tw, "TIME\tSUBJECT\tACTION\tRESOURCE\tTHEN → NOW\tCHANGED SINCE\tWHY NOW")
		t.started = true
	}
	r := c.Record
	why := messages(c.Now.Reasons)
	if c.Error != "" {
		why = "error: " + c.Error
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s (%s) → %s (%s)\t%s\t%s\n", r.Time.Local().Format(time.DateTime), cell(r.Request.Subject), cell(r.Request.Action), cell(r.Request.Resource),
		outcomeOf(r.Decision.Allowed && r.Path != authz.PathNone), cell(codes(r.Decision.Reasons)), outcomeOf(c.Now.Allowed), cell(codes(c.Now.Reasons)), changedSince(c), cell(why))
}

// cell is s as a table shows it: as is, or quoted with Go's escapes (strconv.Quote) when it
// holds a character that is not printable or is a space other than ' ' — a tab or a line break
// in a failed request's subject, or in an author's reason, would otherwise forge columns or rows
// of the table.
func cell(s string) string {
	for _, r := range s {
		if r != ' ' && (!unicode.IsPrint(r) || unicode.IsSpace(r)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// changedSince says what changed since a rechecked decision: the policy, and the writes at
// revisions after it that name its subject or project (r3 delete_team_member); "revision 2 → 3"
// when the writes are not known (a data file), "-" when nothing it can name changed.
func changedSince(c decisionlog.Change) string {
	var parts []string
	if c.PolicyChanged {
		parts = append(parts, "policy")
	}
	switch {
	case c.Writes != nil:
		for _, w := range c.Writes {
			parts = append(parts, fmt.Sprintf("r%d %s", w.Revision, w.Kind))
		}
	case c.Record.Decision.Revision != c.Now.Revision:
		parts = append(parts, fmt.Sprintf("revision %d → %d", c.Record.Decision.Revision, c.Now.Revision))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// flush writes the table, or the line none when it has no row: an empty table would look like
// a command that did nothing.
func (t *recordTable) flush(none string) {
	if !t.started {
		fmt.Fprintln(t.tw, none)
	}
	_ = t.tw.Flush()
}
