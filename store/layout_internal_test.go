package store

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestDecisionReadsFewLines: the fields Reader.access reads on every project decision share
// cache lines (64 bytes), as their comments say: a reordered struct fails here, not only in a
// benchmark's cache simulation (bench/RESULTS.md, stop 17).
func TestDecisionReadsFewLines(t *testing.T) {
	t.Parallel()
	const line = 64
	var pd projectData
	// At most eight lines, and every object starts a line, so that offsets are lines: that takes
	// a size class that is a multiple of 64 (512 is; 480, the class of 449 to 480 bytes, puts
	// every other object of a span 32 bytes into a line), so look where objects land.
	require.LessOrEqual(t, unsafe.Sizeof(pd), uintptr(512))
	for range 16 {
		p := new(projectData)
		require.Zero(t, uintptr(unsafe.Pointer(p))%line, "a projectData of %d bytes starts inside a line", unsafe.Sizeof(pd))
		layoutSink = p // the heap's, not a stack slot
	}
	lineOf := func(off uintptr) uintptr { return off / line }
	// What a decision reads of a project, the bytes o.projects compares a name with included:
	// the first line (the team ids, read only when the mask matches, may be on the next).
	for _, f := range []struct {
		name      string
		off, size uintptr
	}{
		{"key", unsafe.Offsetof(pd.key), unsafe.Sizeof(pd.key)},
		{"restricted", unsafe.Offsetof(pd.restricted), unsafe.Sizeof(pd.restricted)},
		{"teams", unsafe.Offsetof(pd.teams), unsafe.Sizeof(pd.teams)},
		{"grants", unsafe.Offsetof(pd.grants), unsafe.Sizeof(pd.grants)},
		{"labels", unsafe.Offsetof(pd.labels), unsafe.Sizeof(pd.labels)},
		{"teamIDs.mask", unsafe.Offsetof(pd.teamIDs) + unsafe.Offsetof(pd.teamIDs.mask), unsafe.Sizeof(pd.teamIDs.mask)},
	} {
		require.Equal(t, uintptr(0), lineOf(f.off), f.name)
		require.Equal(t, uintptr(0), lineOf(f.off+f.size-1), f.name)
	}
	// o.projects compares a name of up to 15 bytes with the object's first bytes, key's.
	require.Zero(t, unsafe.Offsetof(pd.key))
	require.Equal(t, len(pd.key), newProjects(0).inline)
	pd.setKey("0123456789abcde")
	require.Equal(t, "0123456789abcde", string(pd.key[:]))
	projects := newProjects(0)
	projects.put("0123456789abcde", &pd)
	require.Same(t, &pd, projects.find("0123456789abcde"))
	require.Nil(t, projects.find("0123456789abcdX"))
	// The copies of the record's Grants and Labels are the record's.
	p := Project{Name: "p", Grants: map[string]Grant{"u": {Role: "viewer"}}, Labels: map[string]string{"k": "v"}}
	pd.setRecord(p, nil)
	require.True(t, sameMap(pd.grants, p.Grants))
	require.True(t, sameMap(pd.labels, p.Labels))

	// A member's entry: the team list, the org role and the name's bytes (byName's key, which the
	// map's key compare reads) in one line: 64 bytes, each entry starting a line, whether made
	// alone (a join) or many at once (newEntries: a load from a snapshot, a simulation's copy).
	require.Equal(t, uintptr(line), unsafe.Sizeof(member{}))
	for range 16 {
		m := new(member)
		require.Zero(t, uintptr(unsafe.Pointer(m))%line, "a member entry starts inside a line")
		memberSink = m
	}
	for _, n := range []int{1, 7, 8, 9, 40, 511, 512, 513, 2000} {
		all := newEntries(n)
		require.Len(t, all, n)
		for i, m := range all {
			require.Zero(t, uintptr(unsafe.Pointer(m))%line, "entry %d of %d starts inside a line", i, n)
			require.Zero(t, *m)
		}
		memberSink = all[n-1]
	}
	// byName compares a name of up to 35 bytes with the entry's first bytes, key's.
	require.Zero(t, unsafe.Offsetof(member{}.key))
	require.Equal(t, len(member{}.key), newMembers(0).inline)
	var m member
	name := m.keyName("a-name-of-35-bytes-x-x-x-x-x-x-x-x-")
	require.Len(t, name, len(m.key))
	require.Equal(t, unsafe.Pointer(&m.key[0]), unsafe.Pointer(unsafe.StringData(name)))
	long := "a-name-of-36-bytes-x-x-x-x-x-x-x-x-x"
	require.Equal(t, long, m.keyName(long))
	require.NotEqual(t, unsafe.Pointer(unsafe.StringData(long)), unsafe.Pointer(unsafe.StringData(m.keyName(long))),
		"a long name is a copy of its own")
}

var (
	layoutSink *projectData
	memberSink *member
)
