package teamgate.authz

decision := {"allow": true}
