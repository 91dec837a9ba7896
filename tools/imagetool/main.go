// Command imagetool makes, pushes and authenticates the container images of the e2e harness.
//
// The real node of the test suite pulls from a registry on 127.0.0.1 that wants a password,
// and this machine class can neither download images nor run Docker. So the harness builds
// its images itself, from static binaries it compiles, and needs exactly three operations:
//
//	imagetool image --binary FILE --ref NAME --out TARBALL [--entrypoint PATH]
//	    a one-layer image whose only file is FILE at PATH (default /<basename>), written as a
//	    docker-archive tarball that `ctr images import` and `imagetool push` both read. The
//	    layer and config carry fixed timestamps, so the same binary always yields the same
//	    digest (a test can pin it and a re-run pushes nothing new).
//	imagetool push --from TARBALL|OCI-LAYOUT-DIR|OCI-ARCHIVE --ref HOST:PORT/REPO:TAG
//	    --ca CA.pem [--username USER --password-stdin]
//	    pushes with basic-auth credentials (the password on stdin, never in argv or the
//	    environment, where ps and /proc would show it) and prints the manifest digest.
//	imagetool htpasswd --user USER
//	    reads a password on stdin and prints one bcrypt htpasswd line, the only hash the
//	    distribution registry accepts.
//
// Errors go to stderr with a non-zero exit; no output ever contains a password.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/bcrypt"
)

// epoch is every timestamp the tool writes: images are a function of their content only.
var epoch = time.Unix(0, 0).UTC()

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "image":
		err = imageCmd(os.Args[2:])
	case "push":
		err = pushCmd(os.Args[2:])
	case "htpasswd":
		err = htpasswdCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagetool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: imagetool image|push|htpasswd [flags] (see the source's doc comment)")
	os.Exit(2)
}

func imageCmd(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	binary := fs.String("binary", "", "static executable to put in the image")
	entrypoint := fs.String("entrypoint", "", "its path in the image (default /<basename>)")
	ref := fs.String("ref", "", "image name recorded in the tarball (RepoTags)")
	out := fs.String("out", "", "docker-archive tarball to write")
	arch := fs.String("arch", runtime.GOARCH, "image architecture")
	_ = fs.Parse(args)
	if *binary == "" || *ref == "" || *out == "" {
		return errors.New("--binary, --ref and --out are required")
	}
	if *entrypoint == "" {
		*entrypoint = "/" + filepath.Base(*binary)
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		return err
	}
	content, err := os.ReadFile(*binary)
	if err != nil {
		return err
	}
	layerTar, err := singleFileTar(strings.TrimPrefix(path.Clean(*entrypoint), "/"), content)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	config, err := img.ConfigFile()
	if err != nil {
		return err
	}
	config = config.DeepCopy()
	config.OS, config.Architecture = "linux", *arch
	config.Created = v1.Time{Time: epoch}
	config.Config.Entrypoint = []string{*entrypoint}
	config.Config.Env = []string{"PATH=/"}
	if img, err = mutate.ConfigFile(img, config); err != nil {
		return err
	}
	return writeAtomic(*out, func(w io.Writer) error { return tarball.Write(tag, img, w) })
}

// singleFileTar is a layer holding one executable, root-owned, with the fixed timestamp.
func singleFileTar(name string, content []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	header := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o755,
		Size:     int64(len(content)),
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(header); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeAtomic writes to a temporary file next to target and renames it: a reader never sees
// a half-written tarball, and an interrupted run leaves no file that looks finished.
func writeAtomic(target string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	buffered := bufio.NewWriter(tmp)
	if err := write(buffered); err != nil {
		tmp.Close()
		return err
	}
	if err := buffered.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}

func pushCmd(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	from := fs.String("from", "", "docker-archive tarball, OCI layout directory or OCI archive")
	ref := fs.String("ref", "", "destination HOST:PORT/REPO:TAG")
	caFile := fs.String("ca", "", "PEM CA bundle the registry's certificate chains to")
	username := fs.String("username", "", "basic-auth user (anonymous if empty)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from stdin")
	_ = fs.Parse(args)
	if *from == "" || *ref == "" || *caFile == "" {
		return errors.New("--from, --ref and --ca are required")
	}
	dest, err := name.ParseReference(*ref)
	if err != nil {
		return err
	}
	transport, err := transportTrusting(*caFile)
	if err != nil {
		return err
	}
	auth := authn.Anonymous
	if *username != "" {
		if !*passwordStdin {
			return errors.New("--username needs --password-stdin")
		}
		password, err := readSecret(os.Stdin)
		if err != nil {
			return err
		}
		auth = &authn.Basic{Username: *username, Password: password}
	}
	options := []remote.Option{remote.WithTransport(transport), remote.WithAuth(auth)}
	digest, err := push(*from, dest, options)
	if err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}

// push sends whatever *from holds and returns the digest a pod can pin.
func push(from string, dest name.Reference, options []remote.Option) (v1.Hash, error) {
	info, err := os.Stat(from)
	if err != nil {
		return v1.Hash{}, err
	}
	dir := from
	if !info.IsDir() {
		isOCI, err := tarHas(from, "oci-layout")
		if err != nil {
			return v1.Hash{}, err
		}
		if !isOCI {
			img, err := tarball.ImageFromPath(from, nil)
			if err != nil {
				return v1.Hash{}, err
			}
			if err := remote.Write(dest, img, options...); err != nil {
				return v1.Hash{}, err
			}
			return img.Digest()
		}
		if dir, err = os.MkdirTemp("", "imagetool-oci-"); err != nil {
			return v1.Hash{}, err
		}
		defer os.RemoveAll(dir)
		if err := untar(from, dir); err != nil {
			return v1.Hash{}, err
		}
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	// A layout written by a builder for one image holds one manifest: push the image itself,
	// as `docker push` would, rather than an index wrapping it.
	if len(manifest.Manifests) == 1 && manifest.Manifests[0].MediaType.IsImage() {
		img, err := index.Image(manifest.Manifests[0].Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := remote.Write(dest, img, options...); err != nil {
			return v1.Hash{}, err
		}
		return img.Digest()
	}
	if err := remote.WriteIndex(dest, index, options...); err != nil {
		return v1.Hash{}, err
	}
	return index.Digest()
}

func transportTrusting(caFile string) (http.RoundTripper, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("unexpected default transport type")
	}
	transport := base.Clone()
	// Loopback only: no proxy variable may reroute the push.
	transport.Proxy = nil
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return transport, nil
}

func readSecret(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", err
	}
	secret := strings.TrimRight(string(data), "\r\n")
	if secret == "" {
		return "", errors.New("empty password on stdin")
	}
	return secret, nil
}

func tarHas(file, entry string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		header, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if path.Clean(header.Name) == entry {
			return true, nil
		}
	}
}

// untar extracts regular files and directories only, refusing any path that would leave dir.
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		header, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		clean := path.Clean(header.Name)
		if clean == "." {
			continue
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("unsafe path %q in %s", header.Name, file)
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		switch header.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, copyErr := io.Copy(out, tr)
			closeErr := out.Close()
			if copyErr != nil {
				return copyErr
			}
			if closeErr != nil {
				return closeErr
			}
		default:
			return fmt.Errorf("unsupported entry %q (type %c) in %s", header.Name, header.Typeflag, file)
		}
	}
}

func htpasswdCmd(args []string) error {
	fs := flag.NewFlagSet("htpasswd", flag.ExitOnError)
	user := fs.String("user", "", "user name")
	cost := fs.Int("cost", bcrypt.MinCost, "bcrypt cost (the minimum keeps a 2-core test fast)")
	_ = fs.Parse(args)
	if *user == "" || strings.ContainsAny(*user, ":\n") {
		return errors.New("--user is required and may not contain ':' or a newline")
	}
	password, err := readSecret(os.Stdin)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if err != nil {
		return err
	}
	fmt.Printf("%s:%s\n", *user, hash)
	return nil
}
