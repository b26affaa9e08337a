// Package version holds the version a binary was built as. The image build
// stamps it with the commit (Dockerfile, make images):
//
//	go build -ldflags "-X eventrelay/internal/version.Version=$COMMIT_SHA"
package version

// Version is the commit the binary was built from, or "dev" when the build
// did not stamp it.
var Version = "dev"
