package teamgate.ext

import rego.v1

deny contains sprintf("teams %v roles %v", [input.resource.teams, input.subject.team_roles]) if input.action == "runs.delete"
