package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/teamgate/teamgate"
)

// Sub-kinds a matrix or schedule run may name in Run.Runtime. They may also be excluded.
var (
	matrixKinds   = []string{"grid", "random", "hyperband", "bayes", "hyperopt", "iterative", "mapping"}
	scheduleKinds = []string{"cron", "interval", "datetime"}
)

// Run is a run about to be created, as admission sees it. It is also the CEL variable `run`
// (see RuleVars): the cel tags name its fields there.
type Run struct {
	Kind        string             `json:"kind" cel:"kind"`
	Runtime     string             `json:"runtime,omitempty" cel:"runtime"`
	Queue       string             `json:"queue,omitempty" cel:"queue"`
	Agent       string             `json:"agent,omitempty" cel:"agent"`
	Namespace   string             `json:"namespace,omitempty" cel:"namespace"`
	Presets     []string           `json:"presets,omitempty" cel:"presets"`
	Connections []string           `json:"connections,omitempty" cel:"connections"`
	Resources   map[string]float64 `json:"resources,omitempty" cel:"resources"`
	Labels      map[string]string  `json:"labels,omitempty" cel:"labels"`
}

// Validate checks the run's kind and runtime. Errors match teamgate.ErrInvalid.
func (r Run) Validate() error {
	if !slices.Contains(runKinds, r.Kind) {
		return teamgate.Invalid("run kind", r.Kind, "expected one of "+fmt.Sprint(runKinds))
	}
	if r.Runtime != "" {
		var subs []string
		switch r.Kind {
		case "matrix":
			subs = matrixKinds
		case "schedule":
			subs = scheduleKinds
		default:
			return teamgate.Invalid("run runtime", r.Runtime, "only matrix and schedule runs have a runtime")
		}
		if !slices.Contains(subs, r.Runtime) {
			return teamgate.Invalid("run runtime", r.Runtime, fmt.Sprintf("a %s runtime is one of %v", r.Kind, subs))
		}
	}
	if r.Queue != "" {
		if err := checkQueue("run queue", r.Queue); err != nil {
			return err
		}
	}
	return nil
}

// Violation is one failed admission check. Field is one of permission, features, kind, runtime,
// queue, agent, namespace, presets, connections, rules.
type Violation struct {
	Field   string `json:"field"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// Admission is the outcome of admitting a run. Queue and Presets are what the run would use.
type Admission struct {
	Allowed    bool        `json:"allowed"`
	Queue      string      `json:"queue"`
	Presets    []string    `json:"presets"`
	Violations []Violation `json:"violations"`
}

// AdmitInput is what Admit checks a run against.
type AdmitInput struct {
	Permitted         bool   // runs.create (or versions.create) was authorized
	PermissionMessage string // why not, when !Permitted
	Settings          Effective
	Rules             []*Program // compiled rules of Settings.Rules, same order
	Subject           RuleSubject
	Project           RuleProject
	Run               Run
	Feature           string // "runtime" for runs; the feature of a version
	VersionOnly       bool   // a version: only permission and features are checked
}

// Admit runs every admission check of SPEC §6 and reports every violation; a permission failure
// hides nothing. The caller validates the run first.
func Admit(ctx context.Context, in AdmitInput) Admission {
	s := in.Settings
	run := in.Run
	var v []Violation
	add := func(field, value, msg string) { v = append(v, Violation{Field: field, Value: value, Message: msg}) }

	if !in.Permitted {
		add("permission", "", in.PermissionMessage)
	}
	feature := in.Feature
	if feature == "" {
		feature = "runtime"
	}
	if slices.Contains(s.ExcludedFeatures.Values, feature) {
		add("features", feature, fmt.Sprintf("feature %s is excluded (%s)", feature, s.ExcludedFeatures.Source))
	}
	if in.VersionOnly {
		if v == nil {
			v = []Violation{}
		}
		return Admission{Allowed: len(v) == 0, Presets: []string{}, Violations: v}
	}
	if run.Kind != "" && slices.Contains(s.ExcludedRuntimes.Values, run.Kind) {
		add("kind", run.Kind, fmt.Sprintf("run kind %s is excluded (%s)", run.Kind, s.ExcludedRuntimes.Source))
	}
	if run.Runtime != "" && slices.Contains(s.ExcludedRuntimes.Values, run.Runtime) {
		add("runtime", run.Runtime, fmt.Sprintf("runtime %s is excluded (%s)", run.Runtime, s.ExcludedRuntimes.Source))
	}

	queue := run.Queue
	if queue == "" {
		queue = s.Queue.Value
	}
	switch {
	case queue == "" && s.Queues.Restricted:
		add("queue", "", fmt.Sprintf("no queue given and no default; queues are restricted to %v", s.Queues.Values))
	case queue != "" && !s.Queues.Allows(queue):
		add("queue", queue, fmt.Sprintf("queue %s is not in queues %v", queue, s.Queues.Values))
	}
	agent := QueueAgent(queue)
	if agent == "" {
		agent = run.Agent
	}
	if agent != "" && !s.Agents.Allows(agent) {
		add("agent", agent, fmt.Sprintf("agent %s is not in agents %v", agent, s.Agents.Values))
	}

	ns := run.Namespace
	if ns == "" {
		ns = s.Namespace.Value
	}
	if ns != "" && !s.Namespaces.Allows(ns) {
		add("namespace", ns, fmt.Sprintf("namespace %s is not in namespaces %v", ns, s.Namespaces.Values))
	}
	presets := run.Presets
	if len(presets) == 0 {
		presets = s.DefaultPresets.Values
	}
	for _, p := range presets {
		if !s.Presets.Allows(p) {
			add("presets", p, fmt.Sprintf("preset %s is not in presets %v", p, s.Presets.Values))
		}
	}
	for _, c := range run.Connections {
		if !s.Connections.Allows(c) {
			add("connections", c, fmt.Sprintf("connection %s is not in connections %v", c, s.Connections.Values))
		}
	}

	if len(in.Rules) > 0 {
		vars := RuleVars{Subject: in.Subject, Project: in.Project, Run: run, Settings: s.ruleSettings()}
		for _, p := range in.Rules {
			ok, err := p.Eval(ctx, vars)
			switch {
			case err != nil:
				add("rules", p.Rule.Name, fmt.Sprintf("rule %s could not be evaluated (denied): %v", p.Rule.Name, err))
			case !ok:
				msg := p.Rule.Message
				if msg == "" {
					msg = "rule " + p.Rule.Name + " failed: " + p.Rule.Expression
				}
				add("rules", p.Rule.Name, msg)
			}
		}
	}

	if v == nil {
		v = []Violation{}
	}
	if presets == nil {
		presets = []string{}
	}
	return Admission{Allowed: len(v) == 0, Queue: queue, Presets: slices.Clone(presets), Violations: v}
}

// validRuntimeName reports whether name may appear in excluded_runtimes.
func validRuntimeName(name string) bool {
	return slices.Contains(runKinds, name) || slices.Contains(matrixKinds, name) || slices.Contains(scheduleKinds, name)
}
