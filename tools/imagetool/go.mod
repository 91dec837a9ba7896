// The harness's own image tool and the sleeper program its images run (see main.go).
// A separate module pins go-containerregistry and x/crypto for these two programs only.
module pullsecret-injector.invalid/tools/imagetool

go 1.26.0

require (
	github.com/google/go-containerregistry v0.22.1
	golang.org/x/crypto v0.59.0
)

require (
	github.com/docker/cli v29.7.2+incompatible // indirect
	github.com/docker/docker-credential-helpers v0.9.3 // indirect
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	github.com/sirupsen/logrus v1.9.4 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	gotest.tools/v3 v3.5.2 // indirect
)
