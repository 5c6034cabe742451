package authz

import (
	"context"
	"errors"
	"slices"

	"github.com/teamgate/teamgate"
	"github.com/teamgate/teamgate/policy"
	"github.com/teamgate/teamgate/scope"
	"github.com/teamgate/teamgate/store"
)

// Admit decides whether subject may create run in project (SPEC §6): runs.create must be
// authorized and the run must satisfy the project's effective settings and CEL rules. Every
// check runs and every violation is reported. An unknown run kind is an error matching
// teamgate.ErrInvalid; a project that does not exist gives the single violation "permission".
func (e *Engine) Admit(ctx context.Context, subject, project string, run policy.Run) (policy.Admission, error) {
	return e.admit(ctx, subject, project, run)
}

// AdmitVersion decides whether subject may create a version of feature (component, model,
// artifact or runtime) in project: versions.create must be authorized and the feature must not be
// in the effective excluded_features. Violations use the fields "permission" and "features".
func (e *Engine) AdmitVersion(ctx context.Context, subject, project, feature string) (policy.Admission, error) {
	if !policy.IsFeature(feature) {
		return policy.Admission{}, teamgate.Invalid("feature", feature, "expected one of component, model, artifact, runtime")
	}
	c, err := e.admissionContext(ctx, subject, project, "versions.create")
	if err != nil || c.missing != nil {
		return c.orMissing(err)
	}
	return policy.Admit(ctx, policy.AdmitInput{Permitted: c.permitted, PermissionMessage: c.permMsg,
		Settings: c.settings.Effective, Feature: feature, VersionOnly: true}), nil
}

// Admit is documented above; it runs every check of SPEC §6.
func (e *Engine) admit(ctx context.Context, subject, project string, run policy.Run) (policy.Admission, error) {
	if err := run.Validate(); err != nil {
		return policy.Admission{}, err
	}
	c, err := e.admissionContext(ctx, subject, project, "runs.create")
	if err != nil || c.missing != nil {
		return c.orMissing(err)
	}
	return policy.Admit(ctx, policy.AdmitInput{
		Permitted: c.permitted, PermissionMessage: c.permMsg, Settings: c.settings.Effective, Rules: c.rules,
		Subject: map[string]any{"id": subject, "org_role": c.orgRole, "role": c.role},
		Project: map[string]any{"org": c.ref.Org, "name": c.ref.Project, "teams": toAny(c.teams)},
		Run:     run, Feature: "runtime",
	}), nil
}

// admission is what every admission check reads about the subject and the project.
type admission struct {
	ref       scope.Ref
	permitted bool
	permMsg   string
	role      string
	orgRole   string
	teams     []string
	settings  Settings
	rules     []*policy.Program
	missing   *policy.Admission // set when the project does not exist
}

func (c *admission) orMissing(err error) (policy.Admission, error) {
	if err != nil {
		return policy.Admission{}, err
	}
	return *c.missing, nil
}

func (e *Engine) admissionContext(ctx context.Context, subject, project, action string) (*admission, error) {
	ref, err := scope.ParseFullProject(project)
	if err != nil {
		return nil, err
	}
	d, err := e.Authorize(ctx, Request{Subject: subject, Action: action, Resource: project})
	if err != nil {
		return nil, err
	}
	c := &admission{ref: ref, permitted: d.Allowed, role: d.Role}
	if !d.Allowed {
		c.permMsg = action + " denied"
		if len(d.Reasons) > 0 {
			c.permMsg = string(d.Reasons[0].Code) + ": " + d.Reasons[0].Message
		}
	}
	c.settings, c.rules, err = e.settings(ref, subject)
	if errors.Is(err, teamgate.ErrNotFound) {
		c.missing = &policy.Admission{Queue: "", Presets: []string{},
			Violations: []policy.Violation{{Field: "permission", Value: project, Message: c.permMsg}}}
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	_ = e.dir.View(func(r store.Reader) error {
		c.orgRole, _ = r.OrgRole(ref.Org, subject)
		if pv, ok := r.Project(ref.Org, ref.Project); ok {
			c.teams = slices.Clone(pv.Project.Teams)
		}
		return nil
	})
	return c, nil
}

func toAny(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}
