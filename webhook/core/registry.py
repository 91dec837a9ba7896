"""Credential-key matching, exactly as the kubelet's keyring does it.

Source of truth: ``pkg/credentialprovider`` (``keyring.go`` ``Add``/``Lookup``,
``config.go`` ``URLsMatch``). The rules are surprising enough that they are restated here:

* keys are normalised on the way in (``https://`` added, URL parsed, a leading ``/v1/`` or
  ``/v2/`` dropped) and keys that do not parse are skipped;
* a key matches a repository when the ports are equal (no port is a value of its own), the
  hosts have the same number of dot-separated labels, each label matches as a shell glob
  (Go ``filepath.Match``: ``*`` stays inside one label and may match nothing) and the key's
  path is a plain *string* prefix of the repository path (``/pong`` matches ``/pongz``);
* every matching key contributes, visited in reverse lexicographic order of the normalised
  key; Docker Hub credentials stored under ``index.docker.io`` are used only as a fallback
  when nothing else matched.

The same matcher serves policy registry patterns, so a pattern means exactly what the same
string would mean as a key in a pull secret.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

from webhook.core.memo import Memo

__all__ = [
    "DEFAULT_REGISTRY_KEY",
    "InvalidPattern",
    "Keyring",
    "ParsedURL",
    "bucket_key",
    "candidate_buckets",
    "check_pattern",
    "glob_literal_prefix",
    "glob_match",
    "is_default_registry_match",
    "is_valid_glob",
    "lookup",
    "normalize_key",
    "normalized_keys",
    "parse_schemeless",
    "patterns_match",
    "urls_match",
]

DEFAULT_REGISTRY_KEY = "index.docker.io"


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A schemeless URL split the way Go's ``url.Parse`` + ``SplitURL`` split it."""

    labels: tuple[str, ...]
    """Host split on ``.`` (brackets of an IPv6 literal removed when a port was given)."""
    port: str
    """Port string, ``""`` when absent."""
    path: str
    """Unescaped path, ``""`` when absent."""


class _BadPattern(ValueError):
    """A glob Go's ``filepath.Match`` rejects (``ErrBadPattern``)."""


def normalize_key(key: str) -> str | None:
    """Normalise a pull-secret ``auths`` key like ``BasicDockerKeyring.Add``.

    Returns ``None`` for a key the kubelet would skip because it does not parse as a URL.
    """
    return _NORMALIZED_KEYS.get(key, _normalize_key_uncached)


_NORMALIZED_KEYS: Memo[str, str | None] = Memo(
    lambda key, _: 2 * len(key) + 200, entries=16384, max_bytes=4 * 1024 * 1024
)


def _normalize_key_uncached(key: str) -> str | None:
    value = key if key.startswith(("https://", "http://")) else "https://" + key
    parsed = _go_url_parse(value)
    if parsed is None:
        return None
    host, path = parsed
    if path.startswith(("/v2/", "/v1/")):
        path = path[3:]
    return host + path if path and path != "/" else host


def _go_url_parse(url: str) -> tuple[str, str] | None:
    """(host, unescaped path) of an absolute http(s) URL, or None where Go's ``url.Parse``
    (Go 1.26, which the kubelet is built with) returns an error and the key is skipped."""
    if _CONTROL_RE.search(url):
        return None
    rest, _, fragment = url.split("://", 1)[1].partition("#")
    if _unescape(fragment) is None:
        return None
    rest = rest.split("?", 1)[0]
    authority, slash, path = rest.partition("/")
    userinfo, at, host_port = authority.rpartition("@")
    if at and not _valid_userinfo(userinfo):
        return None
    host = _parse_host(host_port)
    decoded_path = _unescape(slash + path)
    if host is None or decoded_path is None:
        return None
    return host, decoded_path


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_HOST_RE = re.compile(r"[A-Za-z0-9.\-_:*]*")
_HOST_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()*+,;=:[]<>\""
)
_USERINFO_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@"
)


def _valid_userinfo(userinfo: str) -> bool:
    ascii_ok = all(c in _USERINFO_ALLOWED or ord(c) >= 0x80 for c in userinfo)
    return ascii_ok and _unescape(userinfo) is not None


def _parse_host(host: str) -> str | None:
    """Go's ``parseHost``: IP-literals must hold a real IPv6 address; other hosts may not
    contain brackets, more than one colon, or %-escapes of ASCII bytes."""
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0 or not _valid_optional_port(host[close + 1 :]):
            return None
        literal, _, zone = host[1:close].partition("%25")
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            return None
        if address.version != 6 or (zone and _unescape(zone) is None):
            return None
        zone_part = "%" + str(_unescape(zone)) if zone else ""
        return host[: 1 + len(literal)] + zone_part + host[close:]
    if "[" in host or "]" in host or host.count(":") > 1:
        return None
    colon = host.rfind(":")
    if colon >= 0 and not _valid_optional_port(host[colon:]):
        return None
    return _unescape_host(host)


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all(c in "0123456789" for c in port[1:]))


def _unescape_host(host: str) -> str | None:
    if _PLAIN_HOST_RE.fullmatch(host):
        return host  # the common case: nothing to check character by character
    out = bytearray()
    i = 0
    while i < len(host):
        char = host[i]
        if char == "%":
            pair = host[i + 1 : i + 3]
            if len(pair) < 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                return None
            value = int(pair, 16)
            if value < 0x80:  # in a host, %-encoding is only for non-ASCII bytes
                return None
            out.append(value)
            i += 3
            continue
        if ord(char) < 0x80 and char not in _HOST_ALLOWED:
            return None
        out.extend(char.encode())
        i += 1
    return out.decode(errors="surrogateescape")


def _unescape(text: str) -> str | None:
    """Percent-decoding that fails on a malformed escape, like Go's ``unescape``."""
    if "%" not in text:
        return text
    if not all(re.fullmatch(r"[0-9a-fA-F]{2}", part[:2]) for part in text.split("%")[1:]):
        return None
    return unquote(text, errors="surrogateescape")


def parse_schemeless(url: str) -> ParsedURL | None:
    """Parse a key or repository like ``ParseSchemelessURL`` + ``SplitURL``; None if invalid."""
    return _SCHEMELESS.get(url, _parse_schemeless_uncached)


# Keyed by the repository part of every image admitted (up to the reference bound).
_SCHEMELESS: Memo[str, ParsedURL | None] = Memo(
    lambda url, _: 3 * len(url) + 400, entries=16384, max_bytes=4 * 1024 * 1024
)


def _parse_schemeless_uncached(url: str) -> ParsedURL | None:
    parsed = _go_url_parse("https://" + url)
    if parsed is None:
        return None
    host, path = parsed
    hostname, port = _split_host_port(host)
    return ParsedURL(labels=tuple(hostname.split(".")), port=port, path=path)


def _split_host_port(host: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort`` with ``SplitURL``'s fallback to (host, "") on error."""
    if host.startswith("["):
        close = host.find("]")
        if close < 0 or close + 1 >= len(host) or host[close + 1] != ":":
            return host, ""
        inner, port = host[1:close], host[close + 2 :]
        if ":" in port or "[" in inner or "]" in port:
            return host, ""
        return inner, port
    if host.count(":") != 1:
        return host, ""
    name, _, port = host.partition(":")
    if "[" in name or "]" in name or "[" in port or "]" in port:
        return host, ""
    return name, port


def glob_match(pattern: str, name: str) -> bool:
    """Go ``filepath.Match`` on one DNS label; a malformed pattern matches nothing.

    Go reports ``ErrBadPattern`` for a malformed pattern and the kubelet treats any error
    as "no match", so validating first and then matching gives the same answers.
    """
    return _GLOB_MATCHES.get((pattern, name), _glob_match_uncached)


# The policy's patterns against the host labels and paths of admitted images.
_GLOB_MATCHES: Memo[tuple[str, str], bool] = Memo(
    lambda key, _: len(key[0]) + len(key[1]) + 200, entries=65536, max_bytes=4 * 1024 * 1024
)


def _glob_match_uncached(key: tuple[str, str]) -> bool:
    pattern, name = key
    try:
        tokens = _compile_glob(pattern)
    except _BadPattern:
        return False
    return _match_tokens(tokens, name)


def glob_literal_prefix(pattern: str) -> str | None:
    """What every name ``pattern`` matches starts with (escapes resolved); ``None`` when the
    pattern is malformed and so matches nothing. Lets an index skip patterns cheaply."""
    try:
        tokens = _compile_glob(pattern)
    except _BadPattern:
        return None
    prefix = []
    for token in tokens:
        if not isinstance(token, str):
            break
        prefix.append(token)
    return "".join(prefix)


def is_valid_glob(pattern: str) -> bool:
    """True when Go's ``filepath.Match`` accepts ``pattern`` (used to validate policies)."""
    try:
        _compile_glob(pattern)
    except _BadPattern:
        return False
    return True


class _Wildcard(Enum):
    STAR = "*"
    ANY_CHAR = "?"


class _CharClass(NamedTuple):
    negated: bool
    ranges: tuple[tuple[str, str], ...]


# A compiled glob token: a wildcard, a character class, or one literal character (escapes
# already resolved).
_Token = _Wildcard | _CharClass | str


@lru_cache(maxsize=4096)
def _compile_glob(pattern: str) -> tuple[_Token, ...]:
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if not tokens or tokens[-1] is not _Wildcard.STAR:
                tokens.append(_Wildcard.STAR)
            i += 1
        elif char == "?":
            tokens.append(_Wildcard.ANY_CHAR)
            i += 1
        elif char == "[":
            negated = i + 1 < len(pattern) and pattern[i + 1] == "^"
            i += 2 if negated else 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < len(pattern) and pattern[i] == "]" and ranges:
                    i += 1
                    break
                low, i = _class_char(pattern, i)
                high = low
                if i < len(pattern) and pattern[i] == "-":
                    high, i = _class_char(pattern, i + 1)
                ranges.append((low, high))
            tokens.append(_CharClass(negated, tuple(ranges)))
        else:
            if char == "\\":
                i += 1
                if i >= len(pattern):
                    raise _BadPattern(pattern)
                char = pattern[i]
            tokens.append(char)
            i += 1
    return tuple(tokens)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise _BadPattern(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _BadPattern(pattern)
    return pattern[i], i + 1


def _match_tokens(tokens: tuple[_Token, ...], name: str) -> bool:
    """Go's ``filepath.Match`` loop: chunks between stars, each matched at the leftmost place.

    A chunk (the tokens between two stars) always consumes exactly one character per token,
    so matching it at the leftmost position that works never loses a match a later position
    would find. That is why Go needs no backtracking, and why this runs in
    O(len(name) x len(pattern)) where a backtracking matcher is exponential in the number of
    stars (``*a*a*a*b`` against 100 characters took seconds).
    """
    chunks = _chunks(tokens)
    at = 0  # where the unmatched rest of ``name`` starts
    for index, (star, chunk) in enumerate(chunks):
        last = index == len(chunks) - 1
        if star and not chunk:
            return True  # a trailing star takes the rest (a label has no separator)
        after = _match_chunk(chunk, name, at)
        if after is not None and (after == len(name) or not last):
            at = after
            continue
        if not star:
            return False
        found = _find_chunk(chunk, name, at + 1, last)
        if found is None:
            return False
        at = found
    return at == len(name)


@lru_cache(maxsize=4096)
def _chunks(tokens: tuple[_Token, ...]) -> tuple[tuple[bool, tuple[_Token, ...]], ...]:
    """(preceded by a star, tokens up to the next star) for each part of the pattern."""
    chunks: list[tuple[bool, tuple[_Token, ...]]] = []
    star, current = False, list[_Token]()
    for token in tokens:
        if token is _Wildcard.STAR:
            if current or star:
                chunks.append((star, tuple(current)))
            star, current = True, []
        else:
            current.append(token)
    chunks.append((star, tuple(current)))
    return tuple(chunks)


def _find_chunk(chunk: tuple[_Token, ...], name: str, start: int, last: bool) -> int | None:
    """The end of the leftmost match of ``chunk`` at or after ``start`` (for the last chunk:
    one that ends the name), or ``None``."""
    if last:  # the only candidate is the one ending the name
        begin = len(name) - len(chunk)
        return _match_chunk(chunk, name, begin) if begin >= start else None
    if all(isinstance(token, str) for token in chunk):
        at = name.find("".join(chunk), start)  # type: ignore[arg-type]
        return None if at < 0 else at + len(chunk)
    for begin in range(start, len(name) - len(chunk) + 1):
        end = _match_chunk(chunk, name, begin)
        if end is not None:
            return end
    return None


def _match_chunk(chunk: tuple[_Token, ...], name: str, start: int) -> int | None:
    """Where ``name`` continues after ``chunk`` matched it at ``start``, or ``None``."""
    end = start + len(chunk)
    if end > len(name):
        return None
    for token, char in zip(chunk, name[start:end], strict=True):
        if isinstance(token, _CharClass):
            if any(low <= char <= high for low, high in token.ranges) == token.negated:
                return None
        elif token is not _Wildcard.ANY_CHAR and token != char:
            return None
    return end


def urls_match(pattern: str, target: str) -> bool:
    """The kubelet's ``URLsMatchStr``: does key/pattern ``pattern`` cover ``target``?"""
    glob_url = parse_schemeless(pattern)
    target_url = parse_schemeless(target)
    if glob_url is None or target_url is None:
        return False
    return patterns_match(glob_url, target_url)


def patterns_match(glob_url: ParsedURL, target_url: ParsedURL) -> bool:
    """``urls_match`` on already-parsed URLs (for indexes that parse each pattern once)."""
    if glob_url.port != target_url.port:
        return False
    if len(glob_url.labels) != len(target_url.labels):
        return False
    if not target_url.path.startswith(glob_url.path):
        return False
    return all(
        glob_match(glob, label)
        for glob, label in zip(glob_url.labels, target_url.labels, strict=True)
    )


class InvalidPattern(ValueError):
    """A registry pattern the kubelet would skip, or read as meaning something else."""


def check_pattern(value: str) -> str:
    """Validate a registry pattern and return it normalised (as the kubelet keys it).

    One validator for every place a user writes a registry (policy ``registries`` and
    ``internalRegistry``, ``secret create --server/--registry``): ``host[:port][/path]``, a
    scheme and a leading ``/v1/`` or ``/v2/`` accepted and dropped, globs in host labels only.
    The message of ``InvalidPattern`` starts with the value; callers add where it came from.
    """
    if "?" in value or "#" in value:
        raise InvalidPattern(
            f"{value!r}: '?' and '#' end a URL's host or path for the kubelet, so the "
            "pattern would mean less than it says; use '*' or a character class"
        )
    normalized = normalize_key(value)
    parsed = parse_schemeless(normalized) if normalized is not None else None
    host = value.split("://", 1)[-1].split("/", 1)[0]
    if normalized is None and "[" in host and not host.startswith("["):
        raise InvalidPattern(
            f"{value!r}: brackets may only enclose an IPv6 address; the kubelet skips "
            "keys with character classes, so use '*' instead"
        )
    if normalized is None or parsed is None or not all(parsed.labels):
        raise InvalidPattern(f"{value!r} is not a registry pattern (host[:port][/path])")
    bad = [label for label in parsed.labels if not is_valid_glob(label)]
    if bad:
        raise InvalidPattern(f"{value!r}: malformed glob in host label {bad[0]!r}")
    if any(c in parsed.path for c in "*?["):
        raise InvalidPattern(
            f"{value!r}: globs are only allowed in the host, not the path "
            "(the kubelet matches the path as a plain prefix)"
        )
    return normalized


def is_default_registry_match(repository: str) -> bool:
    """Would the runtime pull ``repository`` from Docker Hub (kubelet's heuristic)?"""
    first, slash, _ = repository.partition("/")
    if not first:
        return False
    if not slash:
        return True
    if first in ("docker.io", DEFAULT_REGISTRY_KEY):
        return True
    return "." not in first and ":" not in first


BucketKey = tuple[str, int, str | None, str | None]
"""(port, number of host labels, first label if literal, last label if literal)."""

_GLOB_CHARS = frozenset("*?[\\")


def _literal(label: str) -> str | None:
    return None if any(c in _GLOB_CHARS for c in label) else label


def bucket_key(pattern: ParsedURL) -> BucketKey:
    """Where an index keeps ``pattern``: only patterns in a target's ``candidate_buckets``
    can match it (same port, same label count, equal literal first/last labels)."""
    labels = pattern.labels
    return (pattern.port, len(labels), _literal(labels[0]), _literal(labels[-1]))


def candidate_buckets(target: ParsedURL) -> tuple[BucketKey, ...]:
    """The four buckets a pattern matching ``target`` can be in (a glob label is None)."""
    port, count = target.port, len(target.labels)
    first, last = target.labels[0], target.labels[-1]
    return (
        (port, count, first, last),
        (port, count, first, None),
        (port, count, None, last),
        (port, count, None, None),
    )


class Keyring:
    """The kubelet's keyring over a fixed set of keys, indexed for repeated lookups.

    Built once per set of pull secrets, it answers ``lookup`` without comparing the
    repository against every key (a secret may hold hundreds).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._groups = normalized_keys(keys)
        self._buckets: dict[BucketKey, list[tuple[str, ParsedURL]]] = {}
        for normalized in self._groups:
            parsed = parse_schemeless(normalized)
            if parsed is not None:
                self._buckets.setdefault(bucket_key(parsed), []).append((normalized, parsed))

    def lookup(self, repository: str) -> list[str]:
        """Original keys the kubelet would use for ``repository``, in its order."""
        target = parse_schemeless(repository)
        matched: set[str] = set()
        if target is not None:
            for key in candidate_buckets(target):
                for normalized, parsed in self._buckets.get(key, ()):
                    if patterns_match(parsed, target):
                        matched.add(normalized)
        if matched:
            return [raw for norm in sorted(matched, reverse=True) for raw in self._groups[norm]]
        if is_default_registry_match(repository):
            return list(self._groups.get(DEFAULT_REGISTRY_KEY, ()))
        return []


def lookup(keys: Sequence[str], repository: str) -> list[str]:
    """Which of ``keys`` the kubelet would use for ``repository``, in the kubelet's order.

    ``keys`` are ``auths`` keys exactly as written in a pull secret (several secrets' keys
    may be passed together: the kubelet puts all of a pod's pull secrets in one keyring).
    Every original key whose normalised form matches is returned; keys that normalise to the
    same string keep their input order. ``repository`` must already be normalised
    (``ImageRef.repository``).
    """
    return _keyring(tuple(keys)).lookup(repository)


@lru_cache(maxsize=256)
def _keyring(keys: tuple[str, ...]) -> Keyring:
    """Pods repeat the same few sets of pull secrets: index each set once."""
    return Keyring(keys)


def normalized_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """Group raw keys by normalised form, dropping keys the kubelet would skip."""
    grouped: dict[str, list[str]] = {}
    for key in keys:
        normalized = normalize_key(key)
        if normalized is not None:
            grouped.setdefault(normalized, []).append(key)
    return grouped
