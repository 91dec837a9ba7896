#!/usr/bin/env bash
# Build the project's container image from the Dockerfile on a machine with no container
# engine and no image registry: buildah (chroot isolation, vfs storage) FROM a Python 3.11 base
# made here from Debian 12 packages with mmdebstrap. The result is an OCI archive in the cache,
# ready for a registry push (this script's --push, or any tool that reads OCI archives).
#
# Why this way:
#   * No registry is reachable, so `FROM python:3.11-slim` cannot be pulled. The Dockerfile
#     takes its base as ARG BASE_IMAGE; we pass a local Debian 12 image (Python 3.11.2,
#     python3-venv, python-is-python3, ca-certificates: what the Dockerfile's RUN lines use).
#   * `apt-get install buildah` would pull iptables and CNI plugins into the host. Instead the
#     needed .debs are downloaded (`apt-get download`) and unpacked (`dpkg -x`) into the cache.
#   * The host stays unchanged: every buildah/mmdebstrap process runs in a private mount
#     namespace (`unshare --mount --propagation private`), so nothing is ever mounted on the
#     host; buildah's configuration, storage, run root, CNI config dir, auth file and TMPDIR
#     point into a temp dir under the cache; a private tmpfs on /var/lib catches the one path
#     buildah hard-codes for root (/var/lib/containers/cache/blob-info-cache-v1.boltdb).
#
# Cache layout (root: PULLSECRET_TOOLS_CACHE or ~/.cache/pullsecret-injector), each level keyed
# by a hash of what goes into it, so an unchanged checkout reuses everything in ~0.1 s:
#   image/tools-<key>/     the unpacked .debs (buildah, libgpgme11, mmdebstrap, patchelf)
#   image/base-<key>/      base.tar (mmdebstrap rootfs) and packages.txt (dpkg -l of it)
#   image/project-<key>/   pullsecret-injector.oci.tar, image.json (reference, digest, times)
#
# Usage:
#   tools/build-image.sh                   # build if needed; prints the OCI archive path
#   tools/build-image.sh --json            # ... prints image.json instead
#   tools/build-image.sh --push docker://HOST:PORT/pullsecret-injector:0.1.0 \
#       [--creds USER:PASSWORD] [--cert-dir DIR] [--tls-verify=false]
#                                          # build if needed, then push the archive there
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

# -- options -----------------------------------------------------------------------------------
print=archive
push_dest="" push_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --json) print=json ;;
    --push) push_dest=${2:?--push needs a destination, e.g. docker://host:port/repo:tag}; shift ;;
    --creds) push_args+=(--creds "${2:?--creds needs USER:PASSWORD}"); shift ;;
    --cert-dir) push_args+=(--cert-dir "${2:?--cert-dir needs a directory}"); shift ;;
    --tls-verify=*) push_args+=("$1") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root and buildah chroot isolation)"
for tool in apt-get dpkg dpkg-deb unshare flock sha256sum perl; do
  command -v "$tool" >/dev/null || die "$tool is missing on this host"
done

# -- what goes in (every value below is part of a cache key) -----------------------------------
TOOL_DEBS=(buildah libgpgme11 mmdebstrap patchelf)   # ldd-checked below; the rest is on Debian 12
TOOLS_REV=1                                          # bump when the unpack steps change

SUITE=bookworm
DEBIAN_MIRROR=${PULLSECRET_DEBIAN_MIRROR:-http://deb.debian.org}
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
# minbase + the Dockerfile's needs; no docs/man/locales (as in python:3.11-slim); merged /usr
# like every current Debian image; no device nodes in the tarball (the runtime provides /dev).
MMDEBSTRAP_OPTS=(
  --mode=root --variant=minbase --format=tar --include="$BASE_PACKAGES"
  --skip=output/dev
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
# The first hook records the package list next to the chroot; the second empties the two files
# mmdebstrap copies from this host (its resolver and hostname must not ship; runtimes mount them).
# shellcheck disable=SC2016  # $1 is the chroot, expanded by mmdebstrap's hook shell
MMDEBSTRAP_HOOKS=(
  --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/../packages.txt"'
  --customize-hook=': > "$1/etc/resolv.conf"; : > "$1/etc/hostname"; chmod 0644 "$1/etc/resolv.conf" "$1/etc/hostname"'
)
MIRRORS=(
  "deb $DEBIAN_MIRROR/debian $SUITE main"
  "deb $DEBIAN_MIRROR/debian $SUITE-updates main"
  "deb $DEBIAN_MIRROR/debian-security $SUITE-security main"
)
BASE_REV=1                                           # bump when the base recipe changes

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n1)
[ -n "$VERSION" ] || die "no version in pyproject.toml"
REFERENCE=localhost/pullsecret-injector:$VERSION

cache_root=${PULLSECRET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsecret-injector}
images=$cache_root/image
mkdir -p "$images"

hash16() { sha256sum | cut -c1-16; }
tools_key=$(printf '%s\n' "$TOOLS_REV" "${TOOL_DEBS[@]}" | hash16)
base_key=$(printf '%s\n' "$tools_key" "$BASE_REV" "$SUITE" "${MMDEBSTRAP_OPTS[@]}" \
             "${MMDEBSTRAP_HOOKS[@]}" "${MIRRORS[@]}" | hash16)

# The build context as the Dockerfile sees it: the allow-listed paths of .dockerignore (its
# `!path` lines; tests/packaging checks the file keeps that shape), minus caches.
context_files() {
  local path
  sed -n 's/^!\(.*[^/]\)\/\{0,1\}$/\1/p' "$repo/.dockerignore" | while read -r path; do
    [ -e "$repo/$path" ] || continue
    find "$repo/$path" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
      ! -path '*/.mypy_cache/*'
  done | LC_ALL=C sort
}
project_key=$( { echo "$base_key"; cat "$here/build-image.sh" "$repo/Dockerfile" "$repo/.dockerignore";
                 context_files | while read -r f; do
                   printf '%s ' "${f#"$repo"/}"; sha256sum < "$f"; done; } | hash16)

tools=$images/tools-$tools_key
base=$images/base-$base_key
project=$images/project-$project_key
archive=$project/pullsecret-injector.oci.tar

# One build at a time per cache (the test suite and `make image` may race); the lock is a file
# in the cache, released when this script exits.
exec 9>"$images/.lock"
flock 9

# Scratch space for this run, under the cache (vfs storage copies whole layers: ~1 GB), removed
# on exit whatever happens. Nothing in it is mounted on the host, so `rm -rf` is enough.
work=$(mktemp -d "$images/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Run "$@" in a private mount namespace whose /var/lib is an empty tmpfs: buildah, as root,
# writes its blob-info cache to /var/lib/containers/cache whatever it is told; here that write
# lands in the tmpfs and vanishes with the namespace. Nothing else under /var/lib is used.
in_private_ns() {
  unshare --mount --propagation private -- sh -ec \
    'mount -t tmpfs -o mode=0755,size=64m pullsecret-varlib /var/lib; exec "$@"' sh "$@"
}

# -- 1. buildah and mmdebstrap from Debian's .debs, unpacked, never installed -------------------
build_tools() {
  local dl=$work/debs deb missing
  mkdir -p "$dl" "$work/tools/root"
  log "tools: apt-get download ${TOOL_DEBS[*]}"
  # APT::Sandbox::User=root: _apt cannot write into root's cache directory.
  if ! (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "${TOOL_DEBS[@]}" >&2); then
    log "tools: download failed; refreshing the package lists once (apt-get update)"
    apt-get -q update >&2
    (cd "$dl" && apt-get -q -o APT::Sandbox::User=root download "${TOOL_DEBS[@]}" >&2)
  fi
  for deb in "$dl"/*.deb; do
    dpkg -x "$deb" "$work/tools/root"
    # shellcheck disable=SC2016  # dpkg-deb's own ${field} syntax
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >> "$work/tools/debs.txt"
  done
  # buildah re-executes itself (/proc/self/exe) as `buildah-chroot-runtime` with a clean
  # environment, so LD_LIBRARY_PATH does not reach it: give the binary an absolute RUNPATH to
  # the unpacked libraries instead ($ORIGIN would resolve to /proc/self).
  "$work/tools/root/usr/bin/patchelf" --set-rpath "$tools/root/usr/lib/x86_64-linux-gnu" \
    "$work/tools/root/usr/bin/buildah"
  rm -rf "$tools"
  mv "$work/tools" "$tools"
  missing=$(ldd "$tools/root/usr/bin/buildah" | grep 'not found' || true)
  [ -z "$missing" ] || die "buildah lacks libraries (add their packages to TOOL_DEBS): $missing"
  "$tools/root/usr/bin/buildah" --version >&2
}

# -- 2. the Debian 12 Python base: an mmdebstrap rootfs tarball ---------------------------------
build_base() {
  local t0=$SECONDS hooks=$tools/root/usr/share/mmdebstrap/hooks
  mkdir -p "$work/base" "$work/mm-tmp"
  log "base: mmdebstrap $SUITE minbase + $BASE_PACKAGES (about a minute on 2 cores)..."
  TMPDIR=$work/mm-tmp PATH=$tools/root/usr/bin:$PATH in_private_ns \
    mmdebstrap "${MMDEBSTRAP_OPTS[@]}" --hook-dir="$hooks/merged-usr" "${MMDEBSTRAP_HOOKS[@]}" \
    "$SUITE" "$work/base/base.tar" "${MIRRORS[@]}" >"$work/base/mmdebstrap.log" 2>&1 \
    || { tail -n 40 "$work/base/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  mv "$work/mm-tmp"/packages.txt "$work/base/packages.txt" 2>/dev/null || true
  echo "$(( SECONDS - t0 ))" > "$work/base/seconds"
  rm -rf "$base"
  mv "$work/base" "$base"
  log "base: done in $(cat "$base/seconds")s ($(du -m "$base/base.tar" | cut -f1) MB)"
}

# -- buildah, configured to touch nothing outside $work ----------------------------------------
setup_buildah() {
  local conf=$work/containers
  mkdir -p "$conf" "$work/storage" "$work/run" "$work/cni" "$work/tmp"
  printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$work/storage" "$work/run" > "$conf/storage.conf"
  # network_config_dir: otherwise buildah creates /etc/cni/net.d/cni.lock even with --network host.
  printf '[network]\nnetwork_config_dir = "%s"\n' "$work/cni" > "$conf/containers.conf"
  printf 'unqualified-search-registries = []\n' > "$conf/registries.conf"
  # Only local transports and the explicit --push destination are ever used.
  printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$conf/policy.json"
  printf '{"auths": {}}\n' > "$conf/auth.json"
  export CONTAINERS_STORAGE_CONF=$conf/storage.conf CONTAINERS_CONF=$conf/containers.conf
  export CONTAINERS_REGISTRIES_CONF=$conf/registries.conf REGISTRY_AUTH_FILE=$conf/auth.json
  export TMPDIR=$work/tmp
  policy=(--signature-policy "$conf/policy.json")
}
buildah() { in_private_ns "$tools/root/usr/bin/buildah" "$@"; }

# pip inside the builder stage must trust what this host's pip trusts (this machine reaches
# PyPI through a TLS-inspecting proxy with its own CA). The host's CA bundle and a pip.conf are
# bind-mounted for RUN steps only: they never enter a layer, and the builder stage is discarded.
pip_build_mounts() {
  local bundle=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [ -z "${PIP_INDEX_URL:-}" ] || echo "index-url = $PIP_INDEX_URL"
    [ -z "${PIP_EXTRA_INDEX_URL:-}" ] || echo "extra-index-url = $PIP_EXTRA_INDEX_URL"
    [ -z "${PIP_TRUSTED_HOST:-}" ] || echo "trusted-host = $PIP_TRUSTED_HOST"
    echo "timeout = ${PIP_DEFAULT_TIMEOUT:-60}"
  } > "$work/pip.conf"
  build_mounts=(-v "$bundle:/etc/ssl/certs/ca-certificates.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
  local proxy
  for proxy in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -z "${!proxy:-}" ] || build_mounts+=(--build-arg "$proxy=${!proxy}")
  done
}

# -- 3. the project image: the base imported, then the Dockerfile built FROM it -----------------
build_project() {
  local t0=$SECONDS base_ref=localhost/pullsecret-injector-base:$base_key c digest
  setup_buildah
  mkdir -p "$work/project"
  log "image: importing the base as $base_ref"
  c=$(buildah from "${policy[@]}" scratch)
  buildah add "$c" "$base/base.tar" / >/dev/null
  # mmdebstrap's --skip=output/dev leaves out /dev itself: add it back empty (root, 0755), as
  # in Debian's official images; the runtime mounts its own /dev there.
  mkdir "$work/devroot" && mkdir -m 0755 "$work/devroot/dev"
  tar -C "$work/devroot" --numeric-owner --owner=0 --group=0 -cf "$work/dev.tar" ./dev
  buildah add "$c" "$work/dev.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --created-by "mmdebstrap $SUITE minbase $BASE_PACKAGES (tools/build-image.sh)" \
    --label org.opencontainers.image.title=pullsecret-injector-base "$c"
  buildah commit --quiet --rm "${policy[@]}" "$c" "$base_ref" >/dev/null
  pip_build_mounts
  log "image: buildah bud $REFERENCE FROM $base_ref (pip reaches PyPI: about a minute)..."
  (cd "$repo" && buildah bud "${policy[@]}" --isolation chroot --network host --pull=never \
      --layers=false --format oci --build-arg "BASE_IMAGE=$base_ref" "${build_mounts[@]}" \
      -t "$REFERENCE" -f Dockerfile . ) >"$work/project/build.log" 2>&1 \
    || { tail -n 40 "$work/project/build.log" >&2; die "buildah bud failed"; }
  buildah inspect --type image "$REFERENCE" > "$work/project/inspect.json"
  buildah push --quiet "${policy[@]}" --digestfile "$work/project/digest" "$REFERENCE" \
    "oci-archive:$work/project/pullsecret-injector.oci.tar:$REFERENCE" >/dev/null
  digest=$(cat "$work/project/digest")
  cat > "$work/project/image.json" <<EOF
{
  "archive": "$archive",
  "reference": "$REFERENCE",
  "digest": "$digest",
  "version": "$VERSION",
  "base": "$base_ref",
  "base_tarball": "$base/base.tar",
  "base_seconds": $(cat "$base/seconds"),
  "image_seconds": $(( SECONDS - t0 )),
  "archive_bytes": $(stat -c %s "$work/project/pullsecret-injector.oci.tar"),
  "tools": "$tools/debs.txt"
}
EOF
  rm -rf "$project"
  mv "$work/project" "$project"
  # The JSON names the final paths; the directory only appears once it is complete.
  log "image: done in $(( SECONDS - t0 ))s ($(du -m "$archive" | cut -f1) MB archive)"
}

push_archive() {
  setup_buildah
  log "push: $archive -> $push_dest"
  buildah pull --quiet "${policy[@]}" "oci-archive:$archive" >/dev/null
  buildah push "${policy[@]}" "${push_args[@]}" --digestfile "$work/pushed-digest" \
    "$REFERENCE" "$push_dest" >&2
  log "push: pushed $(cat "$work/pushed-digest")"
}

# -- main --------------------------------------------------------------------------------------
[ -x "$tools/root/usr/bin/buildah" ] && [ -f "$tools/debs.txt" ] || build_tools
[ -f "$base/base.tar" ] && [ -f "$base/seconds" ] || build_base
if [ -f "$project/image.json" ] && [ -f "$archive" ]; then
  log "cached image $REFERENCE in $project"
else
  build_project
fi
log "reference=$REFERENCE digest=$(sed -n 's/.*"digest": "\(.*\)".*/\1/p' "$project/image.json")"
[ -z "$push_dest" ] || push_archive
if [ "$print" = json ]; then cat "$project/image.json"; else echo "$archive"; fi
