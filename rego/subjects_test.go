package rego_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate/rego"
)

// TestExtAllows: only something that defines data.teamgate.ext.allow — a rule at or below it,
// from any module, or non-empty data — makes a policy able to allow non-members.
func TestExtAllows(t *testing.T) {
	t.Parallel()
	mod := func(src string) []rego.Module { return []rego.Module{{Name: "m.rego", Source: src}} }
	ext := func(v any) map[string]any {
		return map[string]any{"teamgate": map[string]any{"ext": map[string]any{"allow": v}}}
	}
	cases := []struct {
		name    string
		modules []rego.Module
		data    []map[string]any
		want    bool
	}{
		{name: "default policy"},
		{name: "deny only", modules: mod("package teamgate.ext\nimport rego.v1\ndeny contains \"x\" if input.action == \"runs.stop\"\n")},
		{name: "a helper package", modules: mod("package teamgate.ext.lib\nimport rego.v1\nallow := true\n")},
		{name: "allow rule", modules: mod("package teamgate.ext\nimport rego.v1\nallow contains \"x\" if input.subject.id == \"zed\"\n"), want: true},
		{name: "allow package", modules: mod("package teamgate.ext.allow\nimport rego.v1\nx := \"open\"\n"), want: true},
		{name: "allow data", data: []map[string]any{ext([]any{"open to all"})}, want: true},
		{name: "empty allow data", data: []map[string]any{ext([]any{})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := rego.New(t.Context(), tc.modules, tc.data...)
			require.NoError(t, err)
			require.Equal(t, tc.want, p.ExtAllows())
		})
	}
}
