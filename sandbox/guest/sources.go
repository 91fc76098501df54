//go:build !wasip1

package guest

import "embed"

// Sources holds this package's source, for `edgefn new --lang go` to write
// the SDK into a new project (built offline through a replace). Not part
// of a guest build.
//
//go:embed doc.go errors.go guest.go imports.go
var Sources embed.FS
