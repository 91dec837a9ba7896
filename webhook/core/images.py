"""Image references, normalised exactly as the kubelet and container runtimes do.

The kubelet hands its credential keyring the repository returned by
``ParseNormalizedNamed`` (github.com/distribution/reference). Any difference between that
function and ours means we inject a secret the kubelet will not use, or miss one it needs, so
this module reproduces its grammar and its quirks (the domain heuristic, ``library/`` only for
single-component Docker Hub names, uppercase allowed in the domain but not the path, bare
64-hex strings rejected) rather than guessing from how references "usually" look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webhook.core.memo import Memo

__all__ = [
    "DEFAULT_DOMAIN",
    "ImageRef",
    "InvalidImageReference",
    "parse_image",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
LOCALHOST = "localhost"
NAME_TOTAL_LENGTH_MAX = 255
MAX_HOST_LENGTH = 255
"""A DNS name has at most 255 octets: a longer registry host can never be reached."""
MAX_REFERENCE_LENGTH = 1024
"""Longest host (255) + ``:port`` + path (255) + tag (128) + sha512 digest is under 800
characters; anything longer is refused before any regex runs or any cache keeps it."""

# The grammar of distribution/reference (regexp.go), assembled the same way so the two can be
# compared line by line. Go's \w and [[:xdigit:]] are ASCII-only, hence the explicit classes.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})")
_ANCHORED_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")

# Digest algorithms the kubelet binary accepts (go-digest registers these three and the
# kubelet links crypto/sha256 and crypto/sha512), with the hex length each requires.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_ENCODED_RE = re.compile(r"[a-f0-9]+")


class InvalidImageReference(ValueError):
    """An image string the container runtime would refuse to pull (``InvalidImageName``)."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference: what the runtime pulls and the kubelet looks up."""

    domain: str
    """Registry host and optional port, e.g. ``docker.io`` or ``registry.example.com:5000``;
    empty in the rare case upstream parses a name without one (``foo_bar.com/x``)."""
    path: str
    """Repository path inside the registry, e.g. ``library/nginx`` (never starts with ``/``)."""
    tag: str | None = None
    """Tag, when given. The runtime defaults to ``latest`` only when there is no digest."""
    digest: str | None = None
    """``algorithm:hex`` content digest, when given."""

    @property
    def repository(self) -> str:
        """``domain/path``: exactly the string the kubelet passes to its credential keyring."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar(self) -> str:
        """The short form a user would type: ``nginx:1.27``, ``quay.io/team/app@sha256:...``."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            if name.startswith(OFFICIAL_REPO_PREFIX) and name.count("/") == 1:
                name = name[len(OFFICIAL_REPO_PREFIX) :]
        return name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()


def parse_image(ref: str) -> ImageRef:
    """Parse ``ref`` like ``reference.ParseNormalizedNamed``; raise ``InvalidImageReference``.

    Results are cached: a cluster has few distinct images and every pod repeats them. Strings
    no runtime could pull (too long overall, in the host or in the path) are refused first, in
    time proportional to their length and without entering the cache: a hostile pod spec
    cannot make us spend seconds in a regex or megabytes in memory.
    """
    problem = _size_problem(ref)
    if problem is not None:
        raise InvalidImageReference(problem)
    result = _PARSED.get(ref, _parse_uncached) if isinstance(ref, str) else _parse_uncached(ref)
    if isinstance(result, str):
        raise InvalidImageReference(result)
    return result


def _size_problem(ref: str) -> str | None:
    if not isinstance(ref, str):  # raw JSON can hold anything
        return None  # reported by _parse_uncached
    shown = ref[:60] + "…" if len(ref) > 60 else ref
    if len(ref) > MAX_REFERENCE_LENGTH:
        return (
            f"invalid image {shown!r}: {len(ref)} characters, longer than any image a runtime "
            f"can pull (the limit here is {MAX_REFERENCE_LENGTH})"
        )
    first, slash, rest = ref.partition("/")
    if slash and len(first) > MAX_HOST_LENGTH:
        return (
            f"invalid image {shown!r}: registry host is {len(first)} characters, "
            f"the limit is {MAX_HOST_LENGTH}"
        )
    path = (rest if slash else ref).split("@", 1)[0]
    last = path.rsplit("/", 1)
    last[-1] = last[-1].split(":", 1)[0]
    if len("/".join(last)) > NAME_TOTAL_LENGTH_MAX:
        return (
            f"invalid image {shown!r}: repository path is over {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return None


# A parsed reference holds its string about three times over (the reference, its name and
# its parts), plus the objects around them.
_PARSED: Memo[str, ImageRef | str] = Memo(
    lambda ref, _: 3 * len(ref) + 400, entries=8192, max_bytes=4 * 1024 * 1024
)


def _parse_uncached(ref: str) -> ImageRef | str:
    """Return the reference, or the error message (errors are cached too: they repeat)."""
    if not isinstance(ref, str):  # raw JSON can hold anything
        return f"image must be a string, not {type(ref).__name__}"
    if ref == "":
        return "image is empty"
    if _ANCHORED_IDENTIFIER_RE.fullmatch(ref):
        return (
            f"invalid image {ref!r}: a bare 64-character hex string is an image ID, "
            "not a repository name"
        )
    domain, remainder = _split_docker_domain(ref)
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        return f"invalid image {ref!r}: repository name {remote_name!r} must be lowercase"
    return _parse_full(ref, f"{domain}/{remainder}")


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Decide whether the first path element is a registry host, as the runtime does."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif ":" in maybe_domain or "." in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse_full(original: str, full: str) -> ImageRef | str:
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        if _REFERENCE_RE.fullmatch(full.lower()) is not None:
            return f"invalid image {original!r}: repository name must be lowercase"
        return f"invalid image {original!r}: {_describe_format_error(full)}"
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    if name_match is None:  # pragma: no cover - the reference grammar guarantees a name
        return f"invalid image {original!r}: no repository name"
    # A host the grammar cannot take as a domain (``foo_bar.com``) parses, as upstream, as
    # the first path component of a domain-less name: the kubelet looks up ``foo_bar.com/x``.
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        return (
            f"invalid image {original!r}: repository path is {len(path)} characters, "
            f"the limit is {NAME_TOTAL_LENGTH_MAX}"
        )
    if digest is not None:
        problem = _digest_problem(digest)
        if problem:
            return f"invalid image {original!r}: {problem}"
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def _digest_problem(digest: str) -> str | None:
    algorithm, _, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        return f"unsupported digest algorithm {algorithm!r}"
    if len(encoded) != expected:
        return f"{algorithm} digest must be {expected} hex characters, got {len(encoded)}"
    if not _DIGEST_ENCODED_RE.fullmatch(encoded):
        return f"{algorithm} digest must be lowercase hex"
    return None


def _describe_format_error(full: str) -> str:
    """Say which part is wrong: the generic 'invalid reference format' helps nobody."""
    name_part, at, digest = full.partition("@")
    if at and not re.fullmatch(_DIGEST, digest):
        return "digest must look like sha256:<64 lowercase hex characters>"
    host, _, rest = name_part.partition("/")
    components = rest.split("/")
    last_name, colon, tag = components[-1].partition(":")
    components[-1] = last_name
    for component in components:
        if component == "":
            return "empty path component (a doubled or trailing '/')"
        if not re.fullmatch(_PATH_COMPONENT, component):
            return (
                f"path component {component!r} must be lowercase letters and digits "
                "separated by '.', '_', '__' or dashes"
            )
    if colon and not re.fullmatch(_TAG, tag):
        return f"tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
    if not re.fullmatch(_DOMAIN_AND_PORT, host):
        return f"registry host {host!r} is not a valid host[:port]"
    return "invalid reference format"
