// Package badgerdir checks a Badger directory before Badger opens it, for the damage Badger would
// make worse: the store and the decision log both open Badger directories a host or an operator
// may have copied, restored or cut short, and both refuse such a directory the same way.
package badgerdir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/teamgate/teamgate"
)

// Check refuses a damaged directory that Badger, opening it, would empty or crash on: table or
// value-log files without a MANIFEST (Badger would start a new log and delete the tables it does
// not know: every record), and a table the MANIFEST names whose footer points outside the file
// (Badger panics reading its index, on a goroutine of its own, which ends the process). The
// error matches teamgate.ErrInvalid and names what (the caller's kind of directory: "store",
// "decision log"), dir and the damage; nothing in dir is changed. A directory that does not
// exist, or holds no Badger file, passes; so does any damage Badger reports as an error itself
// (a bad MANIFEST, a table's index that fails its checksum).
func Check(what, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	manifest, data := false, ""
	for _, e := range ents {
		switch n := e.Name(); {
		case n == "MANIFEST":
			manifest = true
		case data == "" && (strings.HasSuffix(n, ".sst") || strings.HasSuffix(n, ".vlog")):
			data = n
		}
	}
	if !manifest {
		if data != "" {
			return teamgate.Invalid(what, dir, "damaged: Badger's MANIFEST is missing beside "+data+
				" (opening it would delete the files it does not know); restore the directory from a copy")
		}
		return nil
	}
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	defer f.Close()
	mf, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir))
	if err != nil {
		return nil // Badger's Open says what is wrong with it
	}
	for id := range mf.Tables {
		name := fmt.Sprintf("%06d.sst", id)
		if why := tableFooter(filepath.Join(dir, name)); why != "" {
			return teamgate.Invalid(what, dir, "damaged: table "+name+" "+why+"; restore the directory from a copy")
		}
	}
	return nil
}

// tableFooter checks that a Badger table's footer — from its end: the checksum's length (4
// bytes, big-endian), the checksum, the index's length (4 bytes), the index — lies within the
// file, and says why not ("" when it does, or the file cannot be read: Badger's Open reports
// that).
func tableFooter(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	size := st.Size()
	var b [4]byte
	if size < 8 {
		return fmt.Sprintf("is %d bytes long, too short for a table", size)
	}
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return ""
	}
	ck := int64(binary.BigEndian.Uint32(b[:]))
	if ck > size-8 {
		return fmt.Sprintf("has a footer naming a %d-byte checksum in a %d-byte file (truncated or overwritten)", ck, size)
	}
	if _, err := f.ReadAt(b[:], size-8-ck); err != nil {
		return ""
	}
	if idx := int64(binary.BigEndian.Uint32(b[:])); idx > size-8-ck {
		return fmt.Sprintf("has a footer naming a %d-byte index in a %d-byte file (truncated or overwritten)", idx, size)
	}
	return ""
}
