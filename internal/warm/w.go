package warm

import (
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/google/cel-go/cel"
	_ "github.com/open-policy-agent/opa/v1/rego"
	_ "github.com/open-policy-agent/opa/v1/tester"
	_ "github.com/stretchr/testify/require"
	_ "go.yaml.in/yaml/v3"
	_ "github.com/spf13/cobra"
)
