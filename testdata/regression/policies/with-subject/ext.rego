package teamgate.ext

import rego.v1

# The fixed bug (8d70b7a): team_role's fallback ran on a resource without teams when an author
# replaced input.subject without team_role, so such a rule saw a project in no team. (No other
# rule here may read input as a whole: that passes every field and would hide the bug.)
deny contains "team admin" if "admin" == data.teamgate.authz.team_role with input.subject as object.remove(input.subject, ["team_role"])
