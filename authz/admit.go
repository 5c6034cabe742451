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
func (e *Engine) Admit(ctx context.Context, subject, project string, run policy.Run) (a policy.Admission, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.Admit", "teamgate.project", project, "teamgate.run_kind", run.Kind)
	defer func() { sp.endAdmission(a, err) }()
	return e.admit(ctx, subject, project, run)
}

// AdmitVersion decides whether subject may create a version of feature (component, model,
// artifact or runtime) in project: versions.create must be authorized and the feature must not be
// in the effective excluded_features. Violations use the fields "permission" and "features".
func (e *Engine) AdmitVersion(ctx context.Context, subject, project, feature string) (a policy.Admission, err error) {
	ctx, sp := e.startSpan(ctx, "teamgate.AdmitVersion", "teamgate.project", project, "teamgate.feature", feature)
	defer func() { sp.endAdmission(a, err) }()
	if err := policy.CheckFeature("feature", feature); err != nil {
		return policy.Admission{}, err
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
		Subject: c.subject, Project: c.project, Run: run, Feature: "runtime",
	}), nil
}

// admission is what every admission check reads about the subject and the project, all in one
// snapshot.
type admission struct {
	permitted bool
	permMsg   string
	subject   policy.RuleSubject
	project   policy.RuleProject
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

// admissionContext decides action on project for subject and, in the snapshot that decision reads,
// reads the project's effective settings and rules and the subject's facts.
func (e *Engine) admissionContext(ctx context.Context, subject, project, action string) (*admission, error) {
	ref, err := scope.ParseFullProject(project)
	if err != nil {
		return nil, err
	}
	hit := e.settingsCache.lookup(settingsKey(ref, subject)) // Badger is read outside the snapshot
	c := &admission{subject: policy.RuleSubject{ID: subject}, project: policy.RuleProject{Org: ref.Org, Name: ref.Project}}
	var toDisk *settingsEntry
	notFound := false
	_, d, _, err := e.decide(ctx, Request{Subject: subject, Action: action, Resource: project}, nil, false, func(r store.Reader) error {
		var err error
		c.settings, c.rules, toDisk, err = e.settingsIn(r, ref, subject, hit)
		if errors.Is(err, teamgate.ErrNotFound) {
			notFound = true
			return nil
		}
		if err != nil {
			return err
		}
		c.subject.OrgRole, _ = r.OrgRole(ref.Org, subject)
		pv, _ := r.Project(ref.Org, ref.Project)
		c.project.Teams = slices.Clone(pv.Project.Teams)
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.settingsCache.store(ref, subject, toDisk)
	c.permitted, c.subject.Role = d.Allowed, d.Role
	if !d.Allowed {
		c.permMsg = action + " denied"
		if len(d.Reasons) > 0 {
			c.permMsg = string(d.Reasons[0].Code) + ": " + d.Reasons[0].Message
		}
	}
	if notFound {
		c.missing = &policy.Admission{Queue: "", Presets: []string{},
			Violations: []policy.Violation{{Field: "permission", Value: project, Message: c.permMsg}}}
	}
	return c, nil
}
