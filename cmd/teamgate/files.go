package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/rego"
)

// Every flag that names a file or directory a command reads is opened through checkPath
// (checkPolicy), readFlag or openFlag, so that an error says which flag and which path, whatever the command,
// each once: "--data acme.yaml: no such file or directory". Path flags are marked for shell
// completion (cobra.MarkFlagFilename, MarkFlagDirname); TestFileFlagErrorsNameFlagAndPath runs
// every marked flag of every command on a missing path and on an unreadable one.

// flagError is the error of the path flag names that cannot be opened or read, or holds
// nothing a policy flag can load.
func flagError(flag, path string, err error) error {
	detail := err.Error()
	var pe *fs.PathError
	var re *rego.Error
	switch {
	case errors.As(err, &pe):
		detail = pe.Err.Error() // the path is said once, beside its flag
	case errors.As(err, &re) && re.File == path:
		detail = re.Detail
	}
	return &pathError{flag: flag, path: path, detail: detail, err: err}
}

// pathError is flagError's: "FLAG PATH: what went wrong", wrapping the cause (errors.Is finds
// fs.ErrNotExist, teamgate.ErrInvalid).
type pathError struct {
	flag, path, detail string
	err                error
}

func (e *pathError) Error() string { return e.flag + " " + e.path + ": " + e.detail }
func (e *pathError) Unwrap() error { return e.err }

// checkEmptyPaths refuses a path flag given an empty value, as `--policy "$DIR"` with DIR unset
// gives it: the empty value would leave the flag out unseen (the default rules deciding in place
// of the policy, no decision log, no settings). A path flag is one marked for completion.
func checkEmptyPaths(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		_, file := f.Annotations[cobra.BashCompFilenameExt]
		_, dir := f.Annotations[cobra.BashCompSubdirsInDir]
		if err == nil && (file || dir) && f.Changed && f.Value.String() == "" {
			err = fmt.Errorf(`--%s "": an empty path (an unset variable?): give a path, or leave the flag out`, f.Name)
		}
	})
	return err
}

// checkPath opens the file or directory flag names, and closes it: a flag whose path is read
// later, by a library, fails first with the flag's own error.
func checkPath(flag, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return flagError(flag, path, err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		_, err = f.ReadDir(1)
		if err != nil && err != io.EOF {
			f.Close()
			return flagError(flag, path, err)
		}
	}
	return f.Close()
}

// checkPolicy is checkPath for a policy flag (--policy, --current-policy): the path must also
// hold a module or data file (rego.Files), which rego.LoadDir reads later.
func checkPolicy(flag, path string) error {
	if err := checkPath(flag, path); err != nil {
		return err
	}
	if _, err := rego.Files(path); err != nil {
		return flagError(flag, path, err)
	}
	return nil
}

// readFlag reads the file flag names; with stdin, "-" is the standard input, at most
// maxInputFile bytes: a longer input is an error, never its first maxInputFile bytes read as if
// they were the whole file (a YAML list cut at a line is still a valid, shorter list).
func (e *env) readFlag(flag, path string, stdin bool) ([]byte, error) {
	if stdin && path == "-" {
		raw, err := io.ReadAll(io.LimitReader(e.stdin, maxInputFile+1))
		if err != nil {
			return nil, flagError(flag, path, err)
		}
		if len(raw) > maxInputFile {
			return nil, flagError(flag, path, stdinTooLong{})
		}
		return raw, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, flagError(flag, path, err)
	}
	return raw, nil
}

// stdinTooLong is readFlag's error for a standard input over maxInputFile; it matches
// teamgate.ErrInvalid.
type stdinTooLong struct{}

func (stdinTooLong) Error() string {
	return fmt.Sprintf("more than %d bytes (64 MiB) on the standard input: give a file instead", maxInputFile)
}
func (stdinTooLong) Unwrap() error { return teamgate.ErrInvalid }

// openFlag opens the file flag names for reading as a stream, "-" being the standard input.
// read wraps the stream's read errors the same way.
func (e *env) openFlag(flag, path string) (r io.Reader, done func(), err error) {
	if path == "-" {
		return flagReader{e.stdin, flag, path}, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, flagError(flag, path, err)
	}
	return flagReader{f, flag, path}, func() { _ = f.Close() }, nil
}

// flagReader names its flag and path in its read errors (a directory given for a file fails
// on the first read, not on open).
type flagReader struct {
	r          io.Reader
	flag, path string
}

func (f flagReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		err = flagError(f.flag, f.path, err)
	}
	return n, err
}
