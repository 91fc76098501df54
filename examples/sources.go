package examples

import "embed"

// Sources holds the source files of every example (no built modules, no
// node_modules): `edgefn new` copies one of them into a new project, so
// the examples are the templates and cannot drift apart from them.
//
//go:embed go-temp-alert/*.go go-temp-alert/function.yaml go-temp-alert/README.md
//go:embed c-command/*.c c-command/function.yaml c-command/README.md
//go:embed c-file-stats/*.c c-file-stats/function.yaml c-file-stats/README.md
//go:embed rust-reactor/*.rs rust-reactor/function.yaml rust-reactor/README.md
//go:embed as-reactor/assembly as-reactor/*.json as-reactor/function.yaml as-reactor/README.md
//go:embed wat-minimal/*.wat wat-minimal/function.yaml wat-minimal/README.md
var Sources embed.FS
