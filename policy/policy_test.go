package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
)

func gpu() *policy.Named {
	return &policy.Named{Name: "gpu", Settings: policy.Settings{
		Queues: []string{"gpu/a100", "gpu/h100"}, Queue: "gpu/a100", Agents: []string{"gpu"},
		Presets: []string{"small", "large"}, DefaultPresets: []string{"large", "small"},
		ExcludedRuntimes: []string{"service"}, ExcludedFeatures: []string{"component"},
		ArchivedDeletionInterval: 7, Teams: []string{"eng", "research"},
		Rules: []policy.Rule{{Name: "cap", Expression: "true"}},
	}}
}

func TestMergeAllowLists(t *testing.T) {
	t.Parallel()
	// Only the project sets it.
	e := policy.Merge(policy.Inputs{Project: policy.Settings{Connections: []string{"b", "a"}}})
	require.Equal(t, policy.AllowList{Restricted: true, Values: []string{"a", "b"}, Source: "project"}, e.Connections)
	// Only the policy sets it.
	e = policy.Merge(policy.Inputs{Policy: gpu()})
	require.Equal(t, policy.AllowList{Restricted: true, Values: []string{"gpu/a100", "gpu/h100"}, Source: "policy:gpu"}, e.Queues)
	// Both: intersection, a project narrows and never widens.
	e = policy.Merge(policy.Inputs{Policy: gpu(), Project: policy.Settings{Queues: []string{"gpu/h100", "cpu/x"}}})
	require.Equal(t, policy.AllowList{Restricted: true, Values: []string{"gpu/h100"}, Source: "policy:gpu∩project"}, e.Queues)
	// Neither: unrestricted.
	require.Equal(t, policy.AllowList{Values: []string{}, Source: "unset"}, e.Namespaces)
	// Restricted and empty: nothing allowed, conflict reported.
	e = policy.Merge(policy.Inputs{Policy: gpu(), ProjectTeams: []string{"ops"}})
	require.True(t, e.Teams.Restricted)
	require.Empty(t, e.Teams.Values)
	require.False(t, e.Teams.Allows("ops"))
	require.Equal(t, "teams", e.Conflicts[0].Field)
	// Teams: the same computation as EffectiveTeams.
	require.Equal(t, e.Teams, policy.EffectiveTeams([]string{"ops"}, gpu()))
}

func TestMergeDenyListsUnion(t *testing.T) {
	t.Parallel()
	e := policy.Merge(policy.Inputs{Policy: gpu(), Project: policy.Settings{ExcludedRuntimes: []string{"tuner", "service"}}})
	require.Equal(t, []string{"service", "tuner"}, e.ExcludedRuntimes.Values)
	require.Equal(t, "policy:gpu∪project", e.ExcludedRuntimes.Source)
	require.Equal(t, []string{"component"}, e.ExcludedFeatures.Values)
	require.Equal(t, "policy:gpu", e.ExcludedFeatures.Source)
}

func TestMergeDefaultQueue(t *testing.T) {
	t.Parallel()
	org := policy.OrgDefaults{Queue: "cpu/default", DefaultPresets: []string{"small"}, ArchivedDeletionInterval: 30}
	// Project queue first.
	e := policy.Merge(policy.Inputs{Org: org, Policy: gpu(), Project: policy.Settings{Queue: "gpu/h100"}})
	require.Equal(t, policy.Value{Value: "gpu/h100", Source: "project"}, e.Queue)
	// A project queue outside the policy's queues is skipped, with a conflict; the policy's is next.
	e = policy.Merge(policy.Inputs{Org: org, Policy: gpu(), Project: policy.Settings{Queue: "cpu/big"}})
	require.Equal(t, policy.Value{Value: "gpu/a100", Source: "policy:gpu"}, e.Queue)
	require.Equal(t, "queue", e.Conflicts[0].Field)
	require.Equal(t, "cpu/big", e.Conflicts[0].Value)
	// A queue whose agent is not allowed is skipped too; here nothing is left.
	p := gpu()
	p.Settings.Agents = []string{"tpu"}
	e = policy.Merge(policy.Inputs{Org: org, Policy: p})
	require.Equal(t, policy.Value{Value: "", Source: "unset"}, e.Queue)
	require.Len(t, e.Conflicts, 2, "policy queue (agent) and org queue (not in queues)")
	// No policy: the org's.
	e = policy.Merge(policy.Inputs{Org: org})
	require.Equal(t, policy.Value{Value: "cpu/default", Source: "org"}, e.Queue)
	// A queue with no agent part passes any agents list.
	e = policy.Merge(policy.Inputs{Org: policy.OrgDefaults{Queue: "default"}, Project: policy.Settings{Agents: []string{"gpu"}}})
	require.Equal(t, "default", e.Queue.Value)
}

func TestMergeDefaultPresetsNoFallThrough(t *testing.T) {
	t.Parallel()
	org := policy.OrgDefaults{DefaultPresets: []string{"small"}}
	e := policy.Merge(policy.Inputs{Org: org, Policy: gpu(), Project: policy.Settings{Presets: []string{"small"}}})
	require.Equal(t, policy.List{Values: []string{"small"}, Source: "policy:gpu"}, e.DefaultPresets)
	require.Equal(t, "default_presets", e.Conflicts[0].Field)
	require.Equal(t, "large", e.Conflicts[0].Value)
	// The first non-empty source is filtered, even to nothing: no fall-through to the org.
	e = policy.Merge(policy.Inputs{Org: org, Project: policy.Settings{Presets: []string{"gpu"}, DefaultPresets: []string{"huge"}}})
	require.Equal(t, policy.List{Values: []string{}, Source: "project"}, e.DefaultPresets)
}

func TestMergeRetentionAndRules(t *testing.T) {
	t.Parallel()
	org := policy.OrgDefaults{ArchivedDeletionInterval: 30}
	e := policy.Merge(policy.Inputs{Org: org, Policy: gpu(), Project: policy.Settings{ArchivedDeletionInterval: 90,
		Rules: []policy.Rule{{Name: "own", Expression: "true"}}}})
	require.Equal(t, policy.Int{Value: 90, Source: "project"}, e.ArchivedDeletionInterval)
	require.Len(t, e.Rules, 2)
	require.Equal(t, "policy:gpu", e.Rules[0].Source)
	require.Equal(t, "project", e.Rules[1].Source)
	e = policy.Merge(policy.Inputs{Org: org, Policy: gpu()})
	require.Equal(t, policy.Int{Value: 7, Source: "policy:gpu"}, e.ArchivedDeletionInterval)
	e = policy.Merge(policy.Inputs{Org: org})
	require.Equal(t, policy.Int{Value: 30, Source: "org"}, e.ArchivedDeletionInterval)
	e = policy.Merge(policy.Inputs{})
	require.Equal(t, policy.Int{Value: 0, Source: "unset"}, e.ArchivedDeletionInterval)
}

func TestMergePerUser(t *testing.T) {
	t.Parallel()
	p := gpu()
	p.Settings.Namespaces = []string{"ml"}
	e := policy.Merge(policy.Inputs{Policy: p, User: &policy.UserGrant{Queue: "gpu/h100", Namespace: "ml", DefaultPresets: []string{"small"}}})
	require.Equal(t, policy.Value{Value: "gpu/h100", Source: "user"}, e.Queue)
	require.Equal(t, policy.Value{Value: "ml", Source: "user"}, e.Namespace)
	require.Equal(t, policy.List{Values: []string{"small"}, Source: "user"}, e.DefaultPresets)
	require.Empty(t, e.Conflicts)
	// Each field not wholly allowed is ignored with a conflict.
	e = policy.Merge(policy.Inputs{Policy: p, User: &policy.UserGrant{Queue: "cpu/x", Namespace: "prod", DefaultPresets: []string{"small", "huge"}}})
	require.Equal(t, "gpu/a100", e.Queue.Value)
	require.Equal(t, "", e.Namespace.Value)
	require.Equal(t, "policy:gpu", e.DefaultPresets.Source)
	var fields []string
	for _, c := range e.Conflicts {
		fields = append(fields, c.Field)
	}
	require.Equal(t, []string{"queue", "namespace", "default_presets"}, fields)
}

func admit(t *testing.T, s policy.Settings, run policy.Run) policy.Admission {
	t.Helper()
	eff := policy.Merge(policy.Inputs{Org: policy.OrgDefaults{Queue: "gpu/a100", DefaultPresets: []string{"small"}}, Project: s})
	var rs []policy.Rule
	for _, r := range eff.Rules {
		rs = append(rs, r.Rule)
	}
	rules, err := policy.CompileRules(rs, "test")
	require.NoError(t, err)
	require.NoError(t, run.Validate())
	return policy.Admit(t.Context(), policy.AdmitInput{Permitted: true, Settings: eff, Rules: rules,
		Subject: policy.RuleSubject{ID: "bob"}, Project: policy.RuleProject{Org: "acme"}, Run: run})
}

func fieldsOf(a policy.Admission) []string {
	out := []string{}
	for _, v := range a.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestAdmitEveryViolationKind(t *testing.T) {
	t.Parallel()
	s := policy.Settings{Queues: []string{"gpu/a100"}, Agents: []string{"gpu"}, Namespaces: []string{"ml"},
		Presets: []string{"small"}, Connections: []string{"s3"}, ExcludedRuntimes: []string{"service", "grid"},
		Rules: []policy.Rule{{Name: "cap", Expression: "!('gpu' in run.resources) || run.resources.gpu <= 8", Message: "≤ 8 GPUs"}}}
	for _, tc := range []struct {
		name string
		s    policy.Settings
		run  policy.Run
		want []string
	}{
		{"ok", s, policy.Run{Kind: "job"}, []string{}},
		{"kind", s, policy.Run{Kind: "service"}, []string{"kind"}},
		{"runtime", s, policy.Run{Kind: "matrix", Runtime: "grid"}, []string{"runtime"}},
		{"queue", s, policy.Run{Kind: "job", Queue: "gpu/h100"}, []string{"queue"}},
		{"agent and queue", s, policy.Run{Kind: "job", Queue: "tpu/v4"}, []string{"queue", "agent"}},
		{"agent of a plain queue", policy.Settings{Agents: []string{"gpu"}}, policy.Run{Kind: "job", Queue: "q", Agent: "tpu"}, []string{"agent"}},
		{"namespace", s, policy.Run{Kind: "job", Namespace: "prod"}, []string{"namespace"}},
		{"presets", s, policy.Run{Kind: "job", Presets: []string{"small", "large"}}, []string{"presets"}},
		{"connections", s, policy.Run{Kind: "job", Connections: []string{"gcs"}}, []string{"connections"}},
		{"rules", s, policy.Run{Kind: "job", Resources: map[string]float64{"gpu": 9}}, []string{"rules"}},
		{"features", policy.Settings{ExcludedFeatures: []string{"runtime"}}, policy.Run{Kind: "job"}, []string{"features"}},
		{"no queue while restricted", policy.Settings{Queues: []string{"x"}}, policy.Run{Kind: "job"}, []string{"queue"}},
	} {
		a := admit(t, tc.s, tc.run)
		require.ElementsMatch(t, tc.want, fieldsOf(a), tc.name)
		require.Equal(t, len(tc.want) == 0, a.Allowed, tc.name)
	}
}

func TestAdmitPermissionHidesNothing(t *testing.T) {
	t.Parallel()
	eff := policy.Merge(policy.Inputs{Project: policy.Settings{ExcludedRuntimes: []string{"service"}}})
	a := policy.Admit(t.Context(), policy.AdmitInput{Permitted: false, PermissionMessage: "restricted", Settings: eff, Run: policy.Run{Kind: "service"}})
	require.ElementsMatch(t, []string{"permission", "kind"}, fieldsOf(a))
	require.Equal(t, []string{}, a.Presets)
}

func TestRulesCompileAndEvaluate(t *testing.T) {
	t.Parallel()
	for _, bad := range []policy.Rule{
		{Name: "r", Expression: "run.kind"},             // not a bool
		{Name: "r", Expression: "1 +"},                  // does not parse
		{Name: "r", Expression: "nosuch.var == 1"},      // unknown variable
		{Name: "r", Expression: "subject.team == 'ml'"}, // unknown field
		{Name: "r", Expression: "run.kind == 1"},        // no such overload: string vs int
		{Name: "bad name", Expression: "true"},          // bad rule name
	} {
		_, err := policy.CompileRules([]policy.Rule{bad}, "policy acme/p")
		require.ErrorIs(t, err, teamgate.ErrInvalid, bad.Expression)
		require.Contains(t, err.Error(), "policy acme/p")
	}
	_, err := policy.CompileRules([]policy.Rule{{Name: "a", Expression: "true"}, {Name: "a", Expression: "true"}}, "x")
	require.ErrorIs(t, err, teamgate.ErrInvalid)

	prgs, err := policy.CompileRules([]policy.Rule{
		{Name: "int-vs-double", Expression: "run.resources.gpu <= 8"},
		{Name: "labels", Expression: "!('team' in run.labels) || run.labels.team == subject.id"},
		{Name: "settings", Expression: "run.queue == '' || run.queue in settings.queues"},
	}, "x")
	require.NoError(t, err)
	vars := policy.RuleVars{Subject: policy.RuleSubject{ID: "bob"}, Run: policy.Run{Kind: "job", Resources: map[string]float64{"gpu": 8}}}
	for _, p := range prgs {
		ok, err := p.Eval(t.Context(), vars)
		require.NoError(t, err, p.Rule.Name)
		require.True(t, ok, p.Rule.Name)
	}
	// Evaluation errors are reported (callers deny).
	prgs, err = policy.CompileRules([]policy.Rule{{Name: "missing", Expression: "run.labels.team == 'ml'"}}, "x")
	require.NoError(t, err)
	ok, err := prgs[0].Eval(t.Context(), vars)
	require.Error(t, err)
	require.False(t, ok)
}

func TestRuleCostLimitAndContext(t *testing.T) {
	t.Parallel()
	prgs, err := policy.CompileRules([]policy.Rule{{Name: "heavy",
		Expression: "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))"}}, "x")
	require.NoError(t, err)
	vars := policy.RuleVars{}
	ok, err := prgs[0].Eval(t.Context(), vars)
	require.Error(t, err, "the cost limit stops it")
	require.False(t, ok)

	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	ok, err = prgs[0].Eval(ctx, vars)
	require.Error(t, err)
	require.False(t, ok)
}

func TestRunValidate(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, policy.Run{Kind: "rocket"}.Validate(), teamgate.ErrInvalid)
	require.ErrorIs(t, policy.Run{Kind: "schedule", Runtime: "grid"}.Validate(), teamgate.ErrInvalid)
	require.ErrorIs(t, policy.Run{Kind: "job", Queue: "a/b/c"}.Validate(), teamgate.ErrInvalid)
	require.NoError(t, policy.Run{Kind: "schedule", Runtime: "cron", Queue: "gpu/a100"}.Validate())
}

func FuzzCompileRules(f *testing.F) {
	for _, s := range []string{"true", "run.resources.gpu <= 8", "'a' in run.labels", "1 +", "run.kind"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		prgs, err := policy.CompileRules([]policy.Rule{{Name: "r", Expression: expr}}, "fuzz")
		if err != nil {
			return
		}
		_, _ = prgs[0].Eval(t.Context(), policy.RuleVars{Run: policy.Run{Kind: "job"}})
	})
}
