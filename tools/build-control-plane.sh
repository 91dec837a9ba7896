#!/usr/bin/env bash
# Build the real control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) and
# helm from published Go modules, into a cache OUTSIDE the work tree.
#
# Why from source: this machine class reaches the Go module proxy but not release downloads,
# and Debian's etcd (3.4) / kubectl (1.20) are far below what kube-apiserver 1.36 supports.
#
# The cache directory is keyed by a hash of the tools/ modules (go.mod + go.sum), the Go
# version and this script, so bumping any pinned version builds a fresh set and an unchanged
# checkout reuses the existing binaries in well under a second.
#
# Usage: tools/build-control-plane.sh            # build if needed, print the bin directory
#        PULLSECRET_TOOLS_CACHE=/some/dir ...    # override the cache root
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

K8S_VERSION=v1.36.3      # keep in lockstep with tools/k8s/go.mod
HELM_VERSION=v3.21.4     # keep in lockstep with tools/helm/go.mod
HELM_KUBE_MINOR=36       # helm's offline default kube version (template/lint)

cache_root=${PULLSECRET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-injector}
key=$( { go version; cat "$here/build-control-plane.sh"; \
         cat "$here"/k8s/go.mod "$here"/k8s/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum \
             "$here"/helm/go.mod "$here"/helm/go.sum; } | sha256sum | cut -c1-16)
bin="$cache_root/bin/$key"
wanted=(etcd kube-apiserver kube-controller-manager kubectl helm)

log() { printf '[build-control-plane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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
build() { # build <dir> <out-name> <ldflags> <package>
  local dir=$1 out=$2 ldflags=$3 pkg=$4 t0
  if [ -x "$bin/$out" ]; then log "$out: cached"; return; fi
  t0=$(date +%s)
  log "$out: building $pkg (first build on 2 cores takes minutes)..."
  (cd "$here/$dir" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$out.partial" "$pkg")
  mv "$bin/.$out.partial" "$bin/$out"
  log "$out: done in $(( $(date +%s) - t0 ))s"
}

# kube-* version stamping: without these, /version reports v0.0.0-master+$Format:%H$ and
# helm/kubectl version logic breaks (same variables as k/k hack/lib/version.sh).
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kube_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

build etcd etcd "-s -w" go.etcd.io/etcd/server/v3
build k8s kube-apiserver "$kube_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build k8s kube-controller-manager "$kube_ldflags" k8s.io/kubernetes/cmd/kube-controller-manager
build k8s kubectl "$kube_ldflags" k8s.io/kubernetes/cmd/kubectl

helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$HELM_KUBE_MINOR"
done
build helm helm "$helm_ldflags" helm.sh/helm/v3/cmd/helm

have_all
log "all binaries ready in $bin ($(( $(date +%s) - start ))s)"
echo "$bin"
