"""Credential-key matching must agree with the kubelet's keyring (pkg/credentialprovider).

Sources of the expected values: keyring.go (``BasicDockerKeyring.Add`` normalisation, the
reverse-sorted index, ``Lookup`` with its Docker Hub fallback, ``isDefaultRegistryMatch``,
``URLsMatch``), Go's ``net/url.Parse`` (which both ``Add`` and ``ParseSchemelessURL`` use)
and ``path/filepath.Match``. The cases are our own.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.core.registry import (
    glob_match,
    is_default_registry_match,
    is_valid_glob,
    lookup,
    normalize_key,
    urls_match,
)

# --------------------------------------------------------------------------------------------
# Key normalisation (BasicDockerKeyring.Add)
# --------------------------------------------------------------------------------------------

# fmt: off
NORMALIZED = [
    pytest.param("quay.io", "quay.io", id="bare host is kept"),
    pytest.param("https://quay.io", "quay.io", id="https scheme is dropped"),
    pytest.param("http://quay.io", "quay.io", id="http scheme is dropped"),
    pytest.param("https://quay.io/", "quay.io", id="a lone slash path is dropped"),
    pytest.param("quay.io/", "quay.io", id="trailing slash without scheme is dropped"),
    pytest.param(
        "https://index.docker.io/v1/", "index.docker.io",
        id="docker login's Hub key becomes index.docker.io",
    ),
    pytest.param("index.docker.io/v1/", "index.docker.io", id="Hub key without scheme"),
    pytest.param("https://index.docker.io", "index.docker.io", id="Hub host with scheme"),
    pytest.param("http://index.docker.io/v2/", "index.docker.io", id="Hub key with /v2/"),
    pytest.param("https://quay.io/v1/", "quay.io", id="leading /v1/ is dropped"),
    pytest.param("quay.io/v2/", "quay.io", id="leading /v2/ is dropped"),
    pytest.param("quay.io/v2/team", "quay.io/team", id="/v2/ before a path is dropped"),
    pytest.param(
        "quay.io/v1/team/app", "quay.io/team/app", id="/v1/ before a nested path is dropped",
    ),
    pytest.param("quay.io/v1", "quay.io/v1", id="/v1 without its slash is a plain path"),
    pytest.param("quay.io/v3/", "quay.io/v3/", id="/v3/ is not a version prefix"),
    pytest.param("quay.io/v2/v1/x", "quay.io/v1/x", id="only one version prefix is dropped"),
    pytest.param(
        "quay.io/team/v2/", "quay.io/team/v2/", id="a version segment later in the path stays",
    ),
    pytest.param("quay.io/team/", "quay.io/team/", id="trailing slash after a path stays"),
    pytest.param("quay.io//x", "quay.io//x", id="double slash path is kept verbatim"),
    pytest.param("quay.io:5000", "quay.io:5000", id="port is kept"),
    pytest.param("https://quay.io:5000/v2/", "quay.io:5000", id="port kept, version dropped"),
    pytest.param("quay.io:", "quay.io:", id="empty port is kept as written"),
    pytest.param("[::1]:5000", "[::1]:5000", id="bracketed IPv6 with port"),
    pytest.param(
        "fake-user:fake-pass-123@quay.io", "quay.io", id="userinfo is not part of the key",
    ),
    pytest.param("quay.io?x=1", "quay.io", id="query is cut off"),
    pytest.param("quay.io#frag", "quay.io", id="fragment is cut off"),
    pytest.param("q?ay.io", "q", id="a question mark starts the query, not a glob"),
    pytest.param("quay.io/%41b", "quay.io/Ab", id="path escapes are decoded"),
    pytest.param("Quay.IO", "Quay.IO", id="case is kept"),
    pytest.param("*.example.com", "*.example.com", id="glob host is kept"),
    pytest.param("*", "*", id="lone star is kept"),
    pytest.param(
        "HTTPS://quay.io", "HTTPS://quay.io",
        id="scheme detection is case-sensitive so HTTPS: becomes the host",
    ),
    pytest.param("ftp://quay.io", "ftp://quay.io", id="other schemes become part of the key"),
]
# fmt: on


@pytest.mark.parametrize(("key", "normalized"), NORMALIZED)
def test_key_is_normalised_like_the_keyring(key: str, normalized: str) -> None:
    assert normalize_key(key) == normalized


# fmt: off
SKIPPED = [
    pytest.param("quay.io:abc", id="non-numeric port"),
    pytest.param("quay.io:+1", id="signed port"),
    pytest.param("quay.io/%zz", id="bad escape in the path"),
    pytest.param(" quay.io", id="leading space in the host"),
    pytest.param("quay.io ", id="trailing space in the host"),
    pytest.param("quay.io\t", id="control character"),
    pytest.param("qu{ay.io", id="brace in the host"),
    pytest.param("qu|ay.io", id="pipe in the host"),
    pytest.param("qua\\y.io", id="backslash escape in the host"),
    pytest.param("[a-z]uay.io", id="class at the start of the host parses as a broken IPv6"),
    pytest.param("caf%41.io", id="escaped ASCII in the host"),
]
# fmt: on


@pytest.mark.parametrize("key", SKIPPED)
def test_key_that_does_not_parse_is_skipped(key: str) -> None:
    assert normalize_key(key) is None


# Go 1.26 url.Parse (kubelet 1.36 is built with it; the bracket check was backported to
# Go 1.24.8/1.25.2 for CVE-2025-47912, the colon check is GODEBUG urlstrictcolons=1) rejects
# these keys, so BasicDockerKeyring.Add logs "Entry ... invalid, ignoring" and skips them.
# fmt: off
GO_REJECTS = [
    pytest.param(
        "q[a-z]ay.io",
        id="bracket class inside the host is an invalid IP-literal so the key is skipped",
    ),
    pytest.param("[1.2.3.4]", id="bracketed IPv4 is an invalid IP-literal"),
    pytest.param("[::*]:5000", id="bracketed glob is not an IPv6 address"),
    pytest.param("quay.io#%zz", id="bad escape in the fragment"),
    pytest.param("fake user@quay.io", id="space in the userinfo"),
    pytest.param("fake%zz@quay.io", id="bad escape in the userinfo"),
    pytest.param("quay.io:5000:6000", id="two colons outside brackets"),
]
# fmt: on


@pytest.mark.parametrize("key", GO_REJECTS)
def test_key_rejected_by_go_url_parse_is_skipped(key: str) -> None:
    assert normalize_key(key) is None


@pytest.mark.parametrize(
    ("key", "normalized"),
    [
        pytest.param("caf%C3%A9.io", "caf\u00e9.io", id="escaped non-ASCII host is unescaped"),
        pytest.param(
            "[fe80::1%25eth0]:5000", "[fe80::1%eth0]:5000", id="IPv6 zone id is unescaped",
        ),
    ],
)  # fmt: skip
def test_escaped_host_is_unescaped_like_go(key: str, normalized: str) -> None:
    assert normalize_key(key) == normalized


# --------------------------------------------------------------------------------------------
# URLsMatch
# --------------------------------------------------------------------------------------------

# fmt: off
URL_MATCHES = [
    # hosts and labels
    pytest.param("quay.io", "quay.io/team/app", True, id="same host"),
    pytest.param("quay.io", "quay.io", True, id="same host without any path"),
    pytest.param("Quay.io", "quay.io/app", False, id="matching is case-sensitive"),
    pytest.param("quay.io", "docker.io/app", False, id="different host"),
    pytest.param(
        "*.kubernetes.io", "prefix.kubernetes.io/app", True, id="star matches one whole label",
    ),
    pytest.param(
        "*.kubernetes.io", "kubernetes.io/app", False,
        id="label count must be equal: *.kubernetes.io does not match kubernetes.io",
    ),
    pytest.param(
        "*kubernetes.io", "kubernetes.io/app", True, id="star may match the empty string",
    ),
    pytest.param(
        "*kubernetes.io", "a.kubernetes.io/app", False, id="star never crosses a dot",
    ),
    pytest.param("*.io", "a.b.io/app", False, id="one star is one label, not several"),
    pytest.param(
        "*.*.registry.io", "a.b.registry.io/app", True, id="two stars need exactly four labels",
    ),
    pytest.param(
        "*.*.registry.io", "b.registry.io/app", False, id="two stars do not match three labels",
    ),
    pytest.param("*", "localhost/app", True, id="lone star matches a one-label host"),
    pytest.param("*", "quay.io/app", False, id="lone star does not match a two-label host"),
    pytest.param("*-good.example.com", "very-good.example.com/app", True, id="suffix glob"),
    pytest.param("*-good.example.com", "bad.example.com/app", False, id="suffix glob misses"),
    pytest.param("k*.io", "k8s.io/app", True, id="prefix glob"),
    pytest.param("prefix.docker.*", "prefix.docker.io/app", True, id="glob in the TLD"),
    pytest.param("prefix.docker.*", "prefix.docker.com/app", True, id="glob in the TLD again"),
    pytest.param("q?ay.io", "quay.io/app", False, id="question mark in a key cuts the URL"),
    pytest.param("qua\\y.io", "quay.io/app", False, id="backslash in a host fails to parse"),
    # ports
    pytest.param(
        "quay.io", "quay.io:5000/app", False, id="key without port never matches a port",
    ),
    pytest.param(
        "quay.io:5000", "quay.io/app", False, id="key with port never matches no port",
    ),
    pytest.param("quay.io:5000", "quay.io:5000/app", True, id="equal ports"),
    pytest.param("quay.io:5000", "quay.io:5001/app", False, id="different ports"),
    pytest.param("quay.io:05000", "quay.io:5000/app", False, id="ports compare as strings"),
    pytest.param("quay.io:", "quay.io/app", True, id="empty port equals no port"),
    pytest.param("*.registry.io:8080", "a.registry.io:8080/app", True, id="glob with port"),
    pytest.param("*.registry.io:8080", "a.registry.io/app", False, id="glob needs the port"),
    pytest.param("localhost", "localhost:5000/app", False, id="localhost without port"),
    pytest.param("*:5000", "localhost:5000/app", True, id="star host with port"),
    pytest.param("[::1]:5000", "[::1]:5000/app", True, id="IPv6 host and port"),
    pytest.param("[::1]", "[::1]:5000/app", False, id="IPv6 without port vs with port"),
    # paths
    pytest.param(
        "bar.example.com/pong", "bar.example.com/pongz", True,
        id="path prefix is not segment-bounded: /pong matches /pongz",
    ),
    pytest.param(
        "bar.example.com/pong", "bar.example.com/pong/app", True, id="path prefix at a slash",
    ),
    pytest.param(
        "bar.example.com/pong", "bar.example.com/po", False, id="longer key path misses",
    ),
    pytest.param(
        "quay.io/team/", "quay.io/team", False, id="key path with trailing slash needs it",
    ),
    pytest.param("quay.io/team", "quay.io/other/team", False, id="path prefix is anchored"),
    pytest.param("quay.io/t*", "quay.io/team", False, id="no globs in the path"),
    pytest.param("quay.io/%41", "quay.io/A", True, id="key path escapes are decoded"),
    pytest.param("quay.io/team", "quay.io", False, id="key path against no path"),
]
# fmt: on


@pytest.mark.parametrize(("pattern", "target", "expected"), URL_MATCHES)
def test_urls_match(pattern: str, target: str, expected: bool) -> None:
    assert urls_match(pattern, target) is expected


@pytest.mark.parametrize(
    ("pattern", "target"),
    [
        pytest.param("q[a-z]ay.io", "quay.io/app", id="class inside a host label never matches"),
        pytest.param("*.[a-z]o", "quay.io/app", id="class in the TLD never matches"),
        pytest.param("[::*]:5000", "[::1]:5000/app", id="glob inside IPv6 brackets never matches"),
    ],
)  # fmt: skip
def test_bracket_glob_in_a_key_host_never_matches(pattern: str, target: str) -> None:
    assert urls_match(pattern, target) is False


# --------------------------------------------------------------------------------------------
# filepath.Match on one label
# --------------------------------------------------------------------------------------------

# fmt: off
GLOBS = [
    pytest.param("*", "", True, id="star matches empty"),
    pytest.param("*", "abc", True, id="star matches anything"),
    pytest.param("**", "abc", True, id="double star is a star"),
    pytest.param("?", "", False, id="question mark needs one character"),
    pytest.param("?", "a", True, id="question mark matches one character"),
    pytest.param("??", "a", False, id="two question marks need two characters"),
    pytest.param("?", "\u00e9", True, id="question mark matches one non-ASCII character"),
    pytest.param("a*b", "ab", True, id="inner star may be empty"),
    pytest.param("a*b", "axxb", True, id="inner star spans characters"),
    pytest.param("a*b", "axxc", False, id="inner star with wrong suffix"),
    pytest.param("a*b*c", "abxbc", True, id="two stars backtrack"),
    pytest.param("A*", "abc", False, id="case-sensitive"),
    pytest.param("[a-c]", "b", True, id="range class"),
    pytest.param("[a-c]", "d", False, id="range class misses"),
    pytest.param("[abc]x", "bx", True, id="set class"),
    pytest.param("[^a-c]", "d", True, id="caret negates a class"),
    pytest.param("[^a-c]", "b", False, id="negated class misses"),
    pytest.param("[!a]", "!", True, id="exclamation mark is a literal, not negation"),
    pytest.param("[!a]", "b", False, id="exclamation class does not negate"),
    pytest.param("[z-a]", "m", False, id="reversed range is valid but empty"),
    pytest.param("\\*", "*", True, id="escaped star is literal"),
    pytest.param("\\*", "a", False, id="escaped star does not glob"),
    pytest.param("[\\]]", "]", True, id="escaped bracket inside a class"),
    pytest.param("[a\\-z]", "-", True, id="escaped dash inside a class is literal"),
    pytest.param("[a\\-z]", "m", False, id="escaped dash is not a range"),
    # malformed patterns match nothing
    pytest.param("[", "[", False, id="unclosed bracket"),
    pytest.param("[a", "a", False, id="unclosed class"),
    pytest.param("[]a]", "a", False, id="empty class start"),
    pytest.param("[]", "", False, id="empty class"),
    pytest.param("[^]", "a", False, id="empty negated class"),
    pytest.param("[a-]", "a", False, id="unfinished range"),
    pytest.param("[-a]", "a", False, id="range without start"),
    pytest.param("a\\", "a", False, id="trailing backslash"),
    pytest.param("*[", "a", False, id="star then unclosed bracket"),
]
# fmt: on


@pytest.mark.parametrize(("pattern", "name", "expected"), GLOBS)
def test_glob_match_is_go_filepath_match(pattern: str, name: str, expected: bool) -> None:
    assert glob_match(pattern, name) is expected


# fmt: off
GLOB_VALIDITY = [
    pytest.param("*", True, id="star"),
    pytest.param("a?c", True, id="question mark"),
    pytest.param("[a-z]*", True, id="range class"),
    pytest.param("[^a-z]", True, id="negated class"),
    pytest.param("[z-a]", True, id="reversed range"),
    pytest.param("\\*", True, id="escaped star"),
    pytest.param("[\\]]", True, id="escaped bracket in class"),
    pytest.param("plain-label", True, id="no wildcard"),
    pytest.param("[", False, id="lone bracket"),
    pytest.param("[a", False, id="unclosed class"),
    pytest.param("[]", False, id="empty class"),
    pytest.param("[^]", False, id="empty negated class"),
    pytest.param("[a-", False, id="unfinished range at end"),
    pytest.param("[a-]", False, id="unfinished range"),
    pytest.param("[-a]", False, id="range without start"),
    pytest.param("\\", False, id="lone backslash"),
    pytest.param("a[b", False, id="bracket in the middle"),
]
# fmt: on


@pytest.mark.parametrize(("pattern", "valid"), GLOB_VALIDITY)
def test_is_valid_glob(pattern: str, valid: bool) -> None:
    assert is_valid_glob(pattern) is valid


# --------------------------------------------------------------------------------------------
# isDefaultRegistryMatch
# --------------------------------------------------------------------------------------------

# fmt: off
DEFAULT_REGISTRY = [
    pytest.param("", False, id="empty string is not Hub"),
    pytest.param("/foo", False, id="empty first part is not Hub"),
    pytest.param("ubuntu", True, id="no slash is Hub"),
    pytest.param("docker.io", True, id="docker.io alone has no slash so it is Hub"),
    pytest.param("library/ubuntu", True, id="dotless first part is Hub"),
    pytest.param("docker.io/library/ubuntu", True, id="docker.io first part is Hub"),
    pytest.param("index.docker.io/library/ubuntu", True, id="index.docker.io first part is Hub"),
    pytest.param("Foo/bar", True, id="uppercase dotless first part counts as Hub here"),
    pytest.param("localhost/app", True, id="quirk: localhost without port counts as Hub"),
    pytest.param("quay.io/app", False, id="dotted first part is a registry"),
    pytest.param("registry:5000/app", False, id="first part with a colon is a registry"),
    pytest.param("localhost:5000/app", False, id="localhost with port is a registry"),
    pytest.param("registry-1.docker.io/app", False, id="other docker.io hosts are registries"),
]
# fmt: on


@pytest.mark.parametrize(("repository", "expected"), DEFAULT_REGISTRY)
def test_is_default_registry_match(repository: str, expected: bool) -> None:
    assert is_default_registry_match(repository) is expected


# --------------------------------------------------------------------------------------------
# Lookup: which keys, in which order
# --------------------------------------------------------------------------------------------

HUB = "docker.io/library/nginx"

# fmt: off
LOOKUPS = [
    pytest.param(["quay.io"], "quay.io/team/app", ["quay.io"], id="one matching key"),
    pytest.param([], "quay.io/team/app", [], id="no keys"),
    pytest.param(["gcr.io"], "quay.io/team/app", [], id="no matching key"),
    pytest.param(
        ["*.io", "quay.io", "quay.io/team", "gcr.io"], "quay.io/team/app",
        ["quay.io/team", "quay.io", "*.io"],
        id="every matching key contributes in reverse lexicographic order",
    ),
    pytest.param(
        ["bar.example.com", "bar.example.com/pong"], "bar.example.com/pongz",
        ["bar.example.com/pong", "bar.example.com"],
        id="longer path first for one host, prefix not segment-bounded",
    ),
    pytest.param(
        ["*.example.com/foo/bar", "registry.example.com"], "registry.example.com/foo/bar/x",
        ["registry.example.com", "*.example.com/foo/bar"],
        id="order is lexicographic, not most specific: r sorts after *",
    ),
    pytest.param(
        ["quay.*", "quay.io"], "quay.io/app", ["quay.io", "quay.*"],
        id="literal label before a wildcard label with the same prefix",
    ),
    pytest.param(
        ["quay.io", "https://quay.io/team"], "quay.io/team/app",
        ["https://quay.io/team", "quay.io"],
        id="order uses the normalised key, not the raw key",
    ),
    pytest.param(
        ["https://quay.io/v1/", "quay.io", "http://quay.io"], "quay.io/app",
        ["https://quay.io/v1/", "quay.io", "http://quay.io"],
        id="keys normalising to the same string all contribute in input order",
    ),
    pytest.param(
        ["quay.io", "quay.io"], "quay.io/app", ["quay.io", "quay.io"],
        id="the same key in two secrets contributes twice",
    ),
    pytest.param(
        ["quay.io:abc", "quay.io/%zz", "quay.io"], "quay.io/app", ["quay.io"],
        id="keys that do not parse are skipped",
    ),
    pytest.param(["quay.io"], "quay.io:443/app", [], id="port mismatch excludes a key"),
    pytest.param(
        ["*.kubernetes.io"], "kubernetes.io/app", [], id="label count mismatch excludes a key",
    ),
    # Docker Hub fallback
    pytest.param(
        ["index.docker.io"], HUB, ["index.docker.io"],
        id="Hub credentials come from the fallback: docker.io never matches index.docker.io",
    ),
    pytest.param(
        ["https://index.docker.io/v1/"], HUB, ["https://index.docker.io/v1/"],
        id="docker login's Hub key is used through the fallback",
    ),
    pytest.param(
        ["index.docker.io/v1/", "https://index.docker.io"], HUB,
        ["index.docker.io/v1/", "https://index.docker.io"],
        id="all keys normalising to index.docker.io are returned by the fallback",
    ),
    pytest.param(
        ["index.docker.io", "*.io"], HUB, ["*.io"],
        id="a matching wildcard key blocks the Hub fallback",
    ),
    pytest.param(
        ["index.docker.io", "docker.io"], HUB, ["docker.io"],
        id="a docker.io key matches directly and blocks the fallback",
    ),
    pytest.param(
        ["index.docker.io", "docker.io/library"], HUB, ["docker.io/library"],
        id="a docker.io path key blocks the fallback",
    ),
    pytest.param(
        ["index.docker.io", "docker.io/other", "quay.io"], HUB, ["index.docker.io"],
        id="non-matching keys do not block the fallback",
    ),
    pytest.param(
        ["https://docker.io/v1/"], HUB, ["https://docker.io/v1/"],
        id="a docker.io key with version path matches directly",
    ),
    pytest.param(
        ["index.docker.io/library"], HUB, [],
        id="fallback needs exactly index.docker.io, not a path under it",
    ),
    pytest.param(["index.docker.io"], "quay.io/app", [], id="no fallback for other registries"),
    pytest.param(
        ["index.docker.io"], "localhost:5000/app", [], id="no fallback for localhost with port",
    ),
    pytest.param(
        ["index.docker.io"], "localhost/app", ["index.docker.io"],
        id="quirk: localhost without port gets the Hub fallback",
    ),
    pytest.param(
        ["index.docker.io"], "index.docker.io/library/nginx", ["index.docker.io"],
        id="legacy Hub repository string gets the fallback",
    ),
]
# fmt: on


@pytest.mark.parametrize(("keys", "repository", "expected"), LOOKUPS)
def test_lookup(keys: list[str], repository: str, expected: list[str]) -> None:
    assert lookup(keys, repository) == expected


@pytest.mark.parametrize(
    ("keys", "repository", "expected"),
    [
        pytest.param(
            ["q[a-z]ay.io", "quay.io"], "quay.io/app", ["quay.io"],
            id="bracket-class key is skipped by the kubelet",
        ),
        pytest.param(
            ["quay.io#%zz"], "quay.io/app", [], id="key with a bad fragment escape is skipped",
        ),
        pytest.param(
            ["fake user@quay.io"], "quay.io/app", [], id="key with bad userinfo is skipped",
        ),
        pytest.param(
            ["[::*]:5000"], "[::1]:5000/app", [], id="bracketed glob key is skipped",
        ),
    ],
)  # fmt: skip
def test_lookup_skips_keys_go_cannot_parse(
    keys: list[str], repository: str, expected: list[str]
) -> None:
    assert lookup(keys, repository) == expected


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)
_port = st.one_of(st.just(""), st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}"))
_segment = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("v1", "v2")
)
_path = st.one_of(
    st.just(""), st.lists(_segment, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
)


@settings(max_examples=300, deadline=None)
@given(host=_host, port=_port, path=_path)
def test_glob_free_key_matches_itself(host: str, port: str, path: str) -> None:
    key = host + port + path

    assert urls_match(key, key)
    assert urls_match(key, key + "/app")
    assert normalize_key(key) == key
    assert normalize_key("https://" + key + "/") == key + ("/" if path else "")
    assert lookup([key], key + "/app") == [key]


@settings(max_examples=200, deadline=None)
@given(host=_host, port=_port, path=_path)
def test_port_must_be_equal(host: str, port: str, path: str) -> None:
    other_port = ":1" if port != ":1" else ":2"

    assert not urls_match(host + port + path, host + other_port + path + "/app")
    assert not urls_match(host + other_port + path, host + port + path + "/app")
