#!/usr/bin/env bash
# Build what a real node of the e2e harness runs, into a cache OUTSIDE the work tree:
#   kubelet                      same Kubernetes release and version stamping as the control
#                                plane (tools/k8s, K8S_VERSION from build-control-plane.sh)
#   containerd, ctr,             tools/containerd, without the btrfs/devmapper/zfs/aufs
#   containerd-shim-runc-v2      snapshotters (cgo or host tools; the node uses overlayfs)
#   registry                     tools/distribution: v3, the registry the node pulls from
#   loopback                     tools/cni: the node's only CNI plugin (pods use hostNetwork)
#   imagetool, sleeper           tools/imagetool: our image maker/pusher/htpasswd, and the
#                                one program every harness image runs
#   runc                         Debian 12's package, unpacked (never installed): crun 1.8
#                                refuses this machine class's hybrid cgroups, and a Go build
#                                of runc needs cgo for libseccomp
#
# Why from source: this machine class reaches the Go module proxy and Debian mirrors, not
# release downloads. Each tool is its own Go module so that one tool's dependency versions
# never move another's.
#
# The bin directory is keyed by a hash of the Go version, this script, the Kubernetes version
# and every module above (go.mod, go.sum, and our own Go sources), so any bump builds a fresh
# set and an unchanged checkout reuses the binaries in well under a second. The runc .deb is
# whatever Debian 12 currently ships (security updates replace old versions on the mirrors);
# its version is logged and recorded in runc.version.
#
# Usage: tools/build-node.sh            # build if needed, print the bin directory
#        PULLSECRET_TOOLS_CACHE=/dir ...  # override the cache root
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

K8S_VERSION=$(sed -n 's/^K8S_VERSION=\(v[0-9.]*\).*/\1/p' "$here/build-control-plane.sh")
CONTAINERD_VERSION=v2.4.2  # keep in lockstep with tools/containerd/go.mod
REGISTRY_VERSION=v3.1.2    # keep in lockstep with tools/distribution/go.mod
CNI_VERSION=v1.10.0        # keep in lockstep with tools/cni/go.mod
[ -n "$K8S_VERSION" ] || { echo "no K8S_VERSION in build-control-plane.sh" >&2; exit 1; }

modules=(k8s containerd distribution cni imagetool)
cache_root=${PULLSECRET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-injector}
key=$( { go version; echo "$K8S_VERSION"; cat "$here/build-node.sh";
         for m in "${modules[@]}"; do
           find "$here/$m" -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 \
             | LC_ALL=C sort -z | xargs -0 cat
         done; } | sha256sum | cut -c1-16)
bin="$cache_root/node/$key"
wanted=(kubelet containerd ctr containerd-shim-runc-v2 registry loopback imagetool sleeper runc)

log() { printf '[build-node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

have_all() {
  local b
  for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done
}

if have_all; then
  log "cached binaries in $bin"
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)

# Each binary is built into a temp name and renamed, so an interrupted build never leaves a
# truncated executable that a later run would take for a finished one.
build() { # build <dir> <out-name> <ldflags> <package> [tags]
  local dir=$1 out=$2 ldflags=$3 pkg=$4 tags=${5:-} t0
  if [ -x "$bin/$out" ]; then log "$out: cached"; return; fi
  t0=$(date +%s)
  log "$out: building $pkg (first build on 2 cores takes minutes)..."
  (cd "$here/$dir" && go build -trimpath -tags "$tags" -ldflags "$ldflags" \
     -o "$bin/.$out.partial" "$pkg")
  mv "$bin/.$out.partial" "$bin/$out"
  log "$out: done in $(( $(date +%s) - t0 ))s"
}

# Same variables as tools/build-control-plane.sh stamps (k/k hack/lib/version.sh): the node
# reports the release it is, and version-skew checks compare like with like.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kube_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
build k8s kubelet "$kube_ldflags" k8s.io/kubernetes/cmd/kubelet

ctrd=github.com/containerd/containerd/v2
ctrd_ldflags="-s -w -X $ctrd/version.Version=$CONTAINERD_VERSION -X $ctrd/version.Revision=module"
ctrd_tags="no_btrfs no_devmapper no_zfs no_aufs"
build containerd containerd "$ctrd_ldflags" $ctrd/cmd/containerd "$ctrd_tags"
build containerd ctr "$ctrd_ldflags" $ctrd/cmd/ctr "$ctrd_tags"
build containerd containerd-shim-runc-v2 "$ctrd_ldflags" $ctrd/cmd/containerd-shim-runc-v2 "$ctrd_tags"

build distribution registry \
  "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
  github.com/distribution/distribution/v3/cmd/registry
build cni loopback \
  "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_VERSION" \
  github.com/containernetworking/plugins/plugins/main/loopback
build imagetool imagetool "-s -w" .
build imagetool sleeper "-s -w" ./sleeper

# runc: `apt-get download` + `dpkg -x` into a scratch directory; nothing is installed, so the
# host gains no package (and in particular no iptables, which would make the kubelet write
# firewall chains). APT::Sandbox::User=root lets apt write into a root-owned temp dir.
if [ ! -x "$bin/runc" ]; then
  t0=$(date +%s)
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  if ! apt-cache show runc >/dev/null 2>&1; then
    log "runc: not in the apt lists yet, running apt-get update"
    apt-get update -qq >&2
  fi
  (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User=root runc >&2)
  dpkg -x "$scratch"/runc_*.deb "$scratch/root"
  if ldd "$scratch/root/usr/sbin/runc" | grep -q 'not found'; then
    ldd "$scratch/root/usr/sbin/runc" >&2
    log "runc: a shared library is missing (Debian 12 ships libseccomp2 with apt itself)"
    exit 1
  fi
  version=$(basename "$scratch"/runc_*.deb .deb)
  cp "$scratch/root/usr/sbin/runc" "$bin/.runc.partial"
  echo "$version" > "$bin/runc.version"
  mv "$bin/.runc.partial" "$bin/runc"
  log "runc: $version unpacked in $(( $(date +%s) - t0 ))s"
fi

have_all
log "all node binaries ready in $bin ($(( $(date +%s) - start ))s)"
echo "$bin"
