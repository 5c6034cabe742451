package teamgate.ext

import rego.v1

# acme.yaml's projects have no labels: a module that reads them is passed {} (left out, the rule
# below would not apply and runs.delete would follow the default rules).
deny contains sprintf("labels %v", [input.resource.labels]) if input.action == "runs.delete"

deny contains "project is frozen" if input.resource.labels.frozen == "true"
