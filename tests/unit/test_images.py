"""parse_image must normalise exactly like distribution/reference ``ParseNormalizedNamed``.

Every expected value below was derived from the upstream grammar (regexp.go), its
normalisation (normalize.go, ``splitDockerDomain`` / ``familiarizeName``) and go-digest's
``Digest.Validate``; the cases are our own. The kubelet looks credentials up with
``ImageRef.repository``, so a wrong domain or path here means a wrong pull secret.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from webhook.core.images import ImageRef, InvalidImageReference, parse_image

HEX64 = "0123456789abcdef" * 4
HEX63 = HEX64[:63]
SHA256 = "sha256:" + "a" * 64
SHA384 = "sha384:" + "b" * 96
SHA512 = "sha512:" + "c" * 128


# --------------------------------------------------------------------------------------------
# Valid references: (input, domain, path, tag, digest)
# --------------------------------------------------------------------------------------------

# fmt: off
VALID = [
    # Docker Hub normalisation
    pytest.param(
        "nginx", "docker.io", "library/nginx", None, None,
        id="bare name is a Docker Hub official image under library/",
    ),
    pytest.param(
        "nginx:1.27", "docker.io", "library/nginx", "1.27", None,
        id="bare name with tag keeps the tag",
    ),
    pytest.param(
        "library/nginx", "docker.io", "library/nginx", None, None,
        id="explicit library/ is kept as is",
    ),
    pytest.param(
        "docker.io/nginx", "docker.io", "library/nginx", None, None,
        id="docker.io with a single component gets library/",
    ),
    pytest.param(
        "docker.io/library/nginx", "docker.io", "library/nginx", None, None,
        id="fully qualified official image is unchanged",
    ),
    pytest.param(
        "index.docker.io/nginx", "docker.io", "library/nginx", None, None,
        id="index.docker.io becomes docker.io and a single component gets library/",
    ),
    pytest.param(
        "index.docker.io/team/app", "docker.io", "team/app", None, None,
        id="index.docker.io becomes docker.io and a two-component path stays",
    ),
    pytest.param(
        "docker.io/library/foo/bar", "docker.io", "library/foo/bar", None, None,
        id="docker.io/library/foo/bar keeps its three components",
    ),
    pytest.param(
        "store/foo/bar", "docker.io", "store/foo/bar", None, None,
        id="multi-component Hub path does not get library/",
    ),
    pytest.param(
        "foo/bar", "docker.io", "foo/bar", None, None,
        id="first part without dot colon or uppercase is a Hub user, not a registry",
    ),
    pytest.param(
        "test_com/foo", "docker.io", "test_com/foo", None, None,
        id="underscore does not make the first part a domain",
    ),
    pytest.param(
        "localhost", "docker.io", "library/localhost", None, None,
        id="bare localhost without slash is a Hub name",
    ),
    pytest.param(
        "example.com", "docker.io", "library/example.com", None, None,
        id="bare host-like name without slash is a Hub name",
    ),
    pytest.param(
        "192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", None,
        id="bare ip:port without slash is a Hub name with a tag",
    ),
    pytest.param(
        "docker.io/" + HEX64, "docker.io", "library/" + HEX64, None, None,
        id="64-hex name is valid once a domain is given",
    ),
    pytest.param(
        HEX63, "docker.io", "library/" + HEX63, None, None,
        id="63-hex bare name is a valid name, not an image ID",
    ),
    # Domain heuristic
    pytest.param(
        "localhost/foo", "localhost", "foo", None, None,
        id="localhost before a slash is a domain and gets no library/",
    ),
    pytest.param(
        "localhost:5000/foo", "localhost:5000", "foo", None, None,
        id="localhost with port is a domain",
    ),
    pytest.param(
        "registry:5000/foo", "registry:5000", "foo", None, None,
        id="a colon makes a dotless first part a domain",
    ),
    pytest.param(
        "quay.io/team/app", "quay.io", "team/app", None, None,
        id="a dot makes the first part a domain",
    ),
    pytest.param(
        "quay.io/app", "quay.io", "app", None, None,
        id="other registries never get library/",
    ),
    pytest.param(
        "Foo/bar", "Foo", "bar", None, None,
        id="uppercase makes the first part a domain",
    ),
    pytest.param(
        "LOCALDOMAIN/debian", "LOCALDOMAIN", "debian", None, None,
        id="all-uppercase first part is a domain",
    ),
    pytest.param(
        "Asdf.com/foo", "Asdf.com", "foo", None, None,
        id="uppercase is allowed in the domain",
    ),
    pytest.param(
        "Registry.Example.com:5000/app", "Registry.Example.com:5000", "app", None, None,
        id="uppercase domain with port keeps its case",
    ),
    pytest.param(
        "my-registry.example.com/app", "my-registry.example.com", "app", None, None,
        id="inner hyphen in a domain label is allowed",
    ),
    pytest.param(
        "xn--bcher-kva.example/app", "xn--bcher-kva.example", "app", None, None,
        id="punycode domain label is allowed",
    ),
    pytest.param(
        "registry.example.com:443/app", "registry.example.com:443", "app", None, None,
        id="numeric port is part of the domain",
    ),
    # IPv6
    pytest.param(
        "[::1]:5000/repo", "[::1]:5000", "repo", None, None,
        id="bracketed IPv6 with port followed by a path",
    ),
    pytest.param(
        "[::1]/repo", "[::1]", "repo", None, None,
        id="bracketed IPv6 without port followed by a path",
    ),
    pytest.param(
        "[2001:db8::1]:5000/team/app:1.0", "[2001:db8::1]:5000", "team/app", "1.0", None,
        id="bracketed IPv6 with port, nested path and tag",
    ),
    # Path grammar
    pytest.param(
        "x.io/a.b", "x.io", "a.b", None, None,
        id="dot separator inside a component",
    ),
    pytest.param(
        "x.io/a_b", "x.io", "a_b", None, None,
        id="single underscore separator",
    ),
    pytest.param(
        "x.io/a__b", "x.io", "a__b", None, None,
        id="double underscore separator",
    ),
    pytest.param(
        "x.io/a-b", "x.io", "a-b", None, None,
        id="single dash separator",
    ),
    pytest.param(
        "x.io/a---b", "x.io", "a---b", None, None,
        id="a run of dashes is one separator",
    ),
    pytest.param(
        "x.io/a0.b1_c2__d3-e4--f5", "x.io", "a0.b1_c2__d3-e4--f5", None, None,
        id="every separator kind in one component",
    ),
    pytest.param(
        "x.io/a/b/c/d/e", "x.io", "a/b/c/d/e", None, None,
        id="many path components",
    ),
    pytest.param(
        "library/library/x", "docker.io", "library/library/x", None, None,
        id="library/ is never added twice",
    ),
    # Length: the path counts, the domain does not
    pytest.param(
        "example.com/" + "a" * 255, "example.com", "a" * 255, None, None,
        id="path of exactly 255 characters is valid and the domain does not count",
    ),
    pytest.param(
        "a" * 247, "docker.io", "library/" + "a" * 247, None, None,
        id="bare name of 247 characters fits because library/ makes 255",
    ),
    # Tags
    pytest.param(
        "lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None,
        id="uppercase is allowed in the tag",
    ),
    pytest.param(
        "x.io/a:v1.0-rc_1", "x.io", "a", "v1.0-rc_1", None,
        id="tag with dot dash and underscore",
    ),
    pytest.param(
        "x.io/a:_x", "x.io", "a", "_x", None,
        id="tag may start with an underscore",
    ),
    pytest.param(
        "x.io/a:" + "t" * 128, "x.io", "a", "t" * 128, None,
        id="tag of 128 characters is the maximum",
    ),
    pytest.param(
        "localhost:5000/foo:5000", "localhost:5000", "foo", "5000", None,
        id="colon after the path is a tag even when numeric",
    ),
    # Digests
    pytest.param(
        "x.io/a@" + SHA256, "x.io", "a", None, SHA256,
        id="sha256 digest with 64 lowercase hex",
    ),
    pytest.param(
        "x.io/a:1.0@" + SHA256, "x.io", "a", "1.0", SHA256,
        id="tag and digest together",
    ),
    pytest.param(
        "nginx@" + SHA256, "docker.io", "library/nginx", None, SHA256,
        id="Hub short name with digest",
    ),
    pytest.param(
        "x.io/a@" + SHA384, "x.io", "a", None, SHA384,
        id="sha384 digest is accepted because the kubelet binary links the hash",
    ),
    pytest.param(
        "x.io/a@" + SHA512, "x.io", "a", None, SHA512,
        id="sha512 digest is accepted because the kubelet binary links the hash",
    ),
]
# fmt: on


@pytest.mark.parametrize(("ref", "domain", "path", "tag", "digest"), VALID)
def test_valid_reference_normalises_like_the_runtime(
    ref: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_image(ref)

    assert parsed == ImageRef(domain=domain, path=path, tag=tag, digest=digest)
    assert parsed.repository == f"{domain}/{path}"


# --------------------------------------------------------------------------------------------
# Invalid references
# --------------------------------------------------------------------------------------------

# fmt: off
INVALID = [
    pytest.param("", id="empty string"),
    pytest.param(HEX64, id="bare 64-hex string is an image ID, not a name"),
    # Case
    pytest.param("docker/Docker", id="uppercase in a Hub path"),
    pytest.param("ROOT", id="uppercase bare name"),
    pytest.param("docker.io/Foo", id="uppercase path under docker.io"),
    pytest.param("index.docker.io/Foo", id="uppercase path under index.docker.io"),
    pytest.param("quay.io/Team/app", id="uppercase path under another registry"),
    pytest.param("localhost/Foo", id="uppercase path under localhost"),
    pytest.param("x.io/a@SHA256:" + "a" * 64, id="uppercase digest algorithm"),
    # Path grammar
    pytest.param("x.io/a..b", id="double dot separator"),
    pytest.param("x.io/a_.b", id="underscore followed by dot"),
    pytest.param("x.io/a-.b", id="dash followed by dot"),
    pytest.param("x.io/a.-b", id="dot followed by dash"),
    pytest.param("x.io/a-_b", id="dash followed by underscore"),
    pytest.param("x.io/a___b", id="triple underscore"),
    pytest.param("x.io/_a", id="component starting with underscore"),
    pytest.param("x.io/a_", id="component ending with underscore"),
    pytest.param("x.io/-a", id="component starting with dash"),
    pytest.param("x.io/a-", id="component ending with dash"),
    pytest.param("x.io/.a", id="component starting with dot"),
    pytest.param("x.io/a.", id="component ending with dot"),
    pytest.param("x.io/a/", id="trailing slash"),
    pytest.param("x.io//a", id="empty path component"),
    pytest.param("x.io/", id="domain without a path"),
    pytest.param("x.io/a b", id="space in the path"),
    pytest.param("nginx\n", id="trailing newline (Go's $ is end of text)"),
    pytest.param("x.io/a:t/x", id="slash inside the tag"),
    # Length
    pytest.param("example.com/" + "a" * 256, id="path of 256 characters is too long"),
    pytest.param("domain/" + "a" * 256, id="Hub path domain/ plus 256 characters is too long"),
    pytest.param("a" * 248, id="bare name of 248 characters is too long because library/ counts"),
    # Tags
    pytest.param("x.io/a:" + "t" * 129, id="tag of 129 characters"),
    pytest.param("x.io/a:-x", id="tag starting with a dash"),
    pytest.param("x.io/a:.x", id="tag starting with a dot"),
    pytest.param("x.io/a:", id="empty tag"),
    pytest.param("foo:bar:baz", id="two tags"),
    # Digests
    pytest.param("x.io/a@sha256:" + "a" * 63, id="sha256 digest with 63 hex"),
    pytest.param("x.io/a@sha256:" + "a" * 65, id="sha256 digest with 65 hex"),
    pytest.param("x.io/a@sha256:" + "A" * 64, id="sha256 digest with uppercase hex"),
    pytest.param("x.io/a@sha256:" + "g" * 64, id="sha256 digest with non-hex"),
    pytest.param("x.io/a@sha512:" + "a" * 64, id="sha512 digest with sha256 length"),
    pytest.param("x.io/a@sha384:" + "a" * 128, id="sha384 digest with sha512 length"),
    pytest.param("x.io/a@md5:" + "a" * 32, id="unregistered digest algorithm"),
    pytest.param("x.io/a@sha256:", id="digest without hex"),
    pytest.param("x.io/a@", id="empty digest"),
    pytest.param("x.io/a@foo", id="digest without algorithm separator"),
    pytest.param("x.io/a:1.0@sha256:abc", id="tag with a short digest"),
    # Hosts
    pytest.param("[fc00::1]", id="bare bracketed IPv6"),
    pytest.param("[fc00::1]:5000", id="bare bracketed IPv6 with port"),
    pytest.param("[fe80::1%eth0]:5000/repo", id="IPv6 zone id"),
    pytest.param("[::ffff:1.2.3.4]/repo", id="IPv6 with embedded IPv4"),
    pytest.param("fc00::1/repo", id="IPv6 without brackets"),
    pytest.param("x.io:abc/a", id="non-numeric port"),
    pytest.param("x.io:/a", id="empty port"),
    pytest.param("-x.io/a", id="domain label starting with a dash"),
    pytest.param("x-.io/a", id="domain label ending with a dash"),
    pytest.param("x_y.io:5000/a", id="underscore in a domain with port"),
]
# fmt: on


@pytest.mark.parametrize("ref", INVALID)
def test_invalid_reference_is_rejected(ref: str) -> None:
    with pytest.raises(InvalidImageReference):
        parse_image(ref)


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        pytest.param(
            "foo_bar.com/x",
            "foo_bar.com/x",
            id="underscore host without port parses with an empty domain upstream",
        ),
        pytest.param(
            "my_registry.example.com/team/app:1.0",
            "my_registry.example.com/team/app",
            id="underscore registry host with tag parses with an empty domain upstream",
        ),
    ],
)
def test_underscore_host_is_a_domainless_name_like_upstream(ref: str, name: str) -> None:
    parsed = parse_image(ref)

    assert parsed.repository == name
    assert str(parsed) == ref


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        pytest.param("", "empty", id="empty string says it is empty"),
        pytest.param(HEX64, "image ID", id="64-hex says it is an image ID"),
        pytest.param("docker/Docker", "lowercase", id="uppercase path says lowercase"),
        pytest.param("x.io/" + "a" * 256, "255", id="long path names the 255 limit"),
        pytest.param("x.io/a@md5:" + "a" * 32, "unsupported", id="unknown algorithm"),
    ],
)
def test_error_message_says_what_is_wrong(ref: str, message: str) -> None:
    with pytest.raises(InvalidImageReference, match=message):
        parse_image(ref)


@pytest.mark.parametrize(
    "value",
    [pytest.param(None, id="JSON null image"), pytest.param(42, id="JSON number image")],
)
def test_non_string_image_is_an_invalid_reference(value: object) -> None:
    with pytest.raises(InvalidImageReference, match="must be a string"):
        parse_image(value)  # type: ignore[arg-type]


def test_invalid_image_reference_is_a_value_error() -> None:
    assert issubclass(InvalidImageReference, ValueError)


# --------------------------------------------------------------------------------------------
# String forms
# --------------------------------------------------------------------------------------------

# fmt: off
FORMS = [
    pytest.param(
        "nginx", "docker.io/library/nginx", "nginx",
        id="official image: full form adds docker.io/library, familiar strips both",
    ),
    pytest.param(
        "library/nginx:1.27", "docker.io/library/nginx:1.27", "nginx:1.27",
        id="familiar form strips library/ and keeps the tag",
    ),
    pytest.param(
        "index.docker.io/team/app:1", "docker.io/team/app:1", "team/app:1",
        id="legacy Hub domain: familiar form strips docker.io only",
    ),
    pytest.param(
        "docker.io/library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar",
        id="library/ is kept in the familiar form of a multi-component path",
    ),
    pytest.param(
        "docker.io/library/library", "docker.io/library/library", "library",
        id="an official image named library",
    ),
    pytest.param(
        "team/app@" + SHA256, "docker.io/team/app@" + SHA256, "team/app@" + SHA256,
        id="digest is kept in both forms",
    ),
    pytest.param(
        "nginx:1@" + SHA256, "docker.io/library/nginx:1@" + SHA256, "nginx:1@" + SHA256,
        id="tag and digest are both kept in order",
    ),
    pytest.param(
        "quay.io/a/b:1", "quay.io/a/b:1", "quay.io/a/b:1",
        id="other registries keep their domain in the familiar form",
    ),
    pytest.param(
        "localhost/foo", "localhost/foo", "localhost/foo",
        id="localhost keeps its domain in the familiar form",
    ),
    pytest.param(
        "[::1]:5000/repo:1", "[::1]:5000/repo:1", "[::1]:5000/repo:1",
        id="IPv6 domain is kept with brackets",
    ),
]
# fmt: on


@pytest.mark.parametrize(("ref", "full", "familiar"), FORMS)
def test_full_and_familiar_forms(ref: str, full: str, familiar: str) -> None:
    parsed = parse_image(ref)

    assert str(parsed) == full
    assert parsed.familiar == familiar


@pytest.mark.parametrize(
    ("ref", "repository"),
    [
        pytest.param("nginx", "docker.io/library/nginx", id="Hub short name"),
        pytest.param(
            "nginx:1.27@" + SHA256,
            "docker.io/library/nginx",
            id="repository drops tag and digest",
        ),
        pytest.param(
            "localhost:5000/team/app:dev",
            "localhost:5000/team/app",
            id="repository keeps the port",
        ),
    ],
)
def test_repository_is_what_the_kubelet_looks_up(ref: str, repository: str) -> None:
    assert parse_image(ref).repository == repository


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_components(draw: st.DrawFn) -> str:
    """One component of the path grammar: alphanumeric runs joined by separators."""
    runs = draw(st.lists(_alnum, min_size=1, max_size=3))
    seps = draw(st.lists(_separator, min_size=len(runs) - 1, max_size=len(runs) - 1))
    out = runs[0]
    for sep, run in zip(seps, runs[1:], strict=True):
        out += sep + run
    return out


_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_port = st.one_of(st.just(""), st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}"))
_domains = st.one_of(
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(_label, min_size=2, max_size=3),
        _port,
    ),
    st.builds(lambda port: "localhost" + port, _port),
    st.builds(lambda label, port: label.lower() + port, _label, _port.filter(bool)),
    st.sampled_from(["docker.io", "[::1]", "[fd00::1]:5000"]),
)
_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
    lambda h: "sha256:" + h
)


@settings(max_examples=300, deadline=None)
@given(
    domain=st.one_of(st.none(), _domains),
    components=st.lists(path_components(), min_size=1, max_size=3),
    tag=st.one_of(st.none(), _tags),
    digest=st.one_of(st.none(), _digests),
)
def test_generated_references_round_trip(
    domain: str | None, components: list[str], tag: str | None, digest: str | None
) -> None:
    path = "/".join(components)
    if domain is None:
        # Without a domain the first component must not look like one, and a lone 64-hex
        # component is an image ID.
        assume(len(components) == 1 or ("." not in components[0] and components[0] != "localhost"))
        assume(not (len(path) == 64 and set(path) <= set("0123456789abcdef")))
    assume(domain is None or domain.lower() != "index.docker.io")
    text = (f"{domain}/" if domain else "") + path
    text += (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")

    ref = parse_image(text)

    expected_domain = domain or "docker.io"
    expected_path = path
    if expected_domain == "docker.io" and len(components) == 1:
        expected_path = "library/" + path
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (
        expected_domain,
        expected_path,
        tag,
        digest,
    )
    assert parse_image(str(ref)) == ref
    first = components[0]
    if not (expected_domain == "docker.io" and len(components) > 1 and _looks_like_domain(first)):
        assert parse_image(ref.familiar) == ref


def _looks_like_domain(component: str) -> bool:
    return "." in component or component == "localhost"


@pytest.mark.parametrize(
    ("ref", "familiar", "reparsed_domain"),
    [
        pytest.param(
            "docker.io/a.b/c", "a.b/c", "a.b",
            id="upstream quirk: Hub user with a dot has a familiar form naming a registry",
        ),
        pytest.param(
            "docker.io/localhost/x", "localhost/x", "localhost",
            id="upstream quirk: Hub user localhost has a familiar form naming localhost",
        ),
    ],
)  # fmt: skip
def test_familiar_form_is_ambiguous_when_the_hub_user_looks_like_a_domain(
    ref: str, familiar: str, reparsed_domain: str
) -> None:
    parsed = parse_image(ref)

    assert parsed.domain == "docker.io"
    assert parsed.familiar == familiar
    assert parse_image(familiar).domain == reparsed_domain
