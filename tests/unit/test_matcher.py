"""RuleIndex: bucketing and memoisation must not change a single answer.

The reference is the definition: a rule covers a repository exactly when the kubelet's lookup
over the rule's patterns (its ``registries``, or its secrets' ``auths`` keys) finds a key.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.factories import cluster, pull_secret
from webhook.core.clusterview import ClusterStore
from webhook.core.matcher import RuleIndex
from webhook.core.policy import Policy, Rule, SecretRef
from webhook.core.registry import lookup, normalize_key

PS = "pull-secrets"

LITERAL_LABELS = ["quay", "io", "example", "com", "registry", "docker", "index", "gcr", "a"]
GLOB_LABELS = ["*", "q*", "*y", "?o", "[a-m]*", "*-x", "[^a]*", "re*ry", "ex?mple", "\\io"]
PORTS = ["", ":5000", ":443"]
PATTERN_PATHS = ["", "/team", "/te", "/team/app", "/other", "/library", "/"]
SPECIAL_PATTERNS = [
    "index.docker.io",
    "https://index.docker.io/v1/",
    "docker.io",
    "docker.io/library",
    "*.io",
    "https://quay.io/v2/team",
    "http://registry.example.com:5000/",
]

label = st.one_of(st.sampled_from(LITERAL_LABELS), st.sampled_from(GLOB_LABELS))
host_pattern = st.lists(label, min_size=1, max_size=4).map(".".join)
generated_pattern = st.builds(
    lambda scheme, host, port, path: scheme + host + port + path,
    st.sampled_from(["", "", "https://"]),
    host_pattern,
    st.sampled_from(PORTS),
    st.sampled_from(PATTERN_PATHS),
)
pattern = st.one_of(generated_pattern, st.sampled_from(SPECIAL_PATTERNS))

domain = st.one_of(
    st.just("docker.io"),
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(st.sampled_from([*LITERAL_LABELS, "my-x", "ry"]), min_size=1, max_size=4),
        st.sampled_from(PORTS),
    ),
)
repository = st.builds(
    lambda d, parts: d + "/" + "/".join(parts),
    domain,
    st.lists(
        st.sampled_from(["team", "app", "library", "nginx", "other", "teamz", "te"]),
        min_size=1,
        max_size=3,
    ),
)

# A rule is (use_registries, patterns): registries, or the auths keys of its one secret.
rule_spec = st.tuples(st.booleans(), st.lists(pattern, min_size=1, max_size=3, unique=True))


def build(specs: Sequence[tuple[bool, list[str]]]) -> tuple[Policy, ClusterStore]:
    rules = []
    sources = []
    for position, (use_registries, patterns) in enumerate(specs):
        secret = f"s{position}"
        rules.append(
            Rule(
                name=f"r{position}",
                secrets=(SecretRef(name=secret, namespace=PS, target_name=secret),),
                registries=tuple(patterns) if use_registries else (),
            )
        )
        sources.append(pull_secret(secret, PS, [] if use_registries else patterns))
    return Policy(rules=tuple(rules)), cluster(sources=sources)


def reference(specs: Sequence[tuple[bool, list[str]]], repo: str) -> list[tuple[str, list[str]]]:
    """(rule name, normalised keys the kubelet would use, in its order) for covering rules."""
    out = []
    for position, (_, patterns) in enumerate(specs):
        keys = lookup(patterns, repo)
        if keys:
            normalized = [n for k in keys if (n := normalize_key(k)) is not None]
            out.append((f"r{position}", list(dict.fromkeys(normalized))))
    return out


@settings(max_examples=400, deadline=None)
@given(
    specs=st.lists(rule_spec, min_size=1, max_size=6),
    repos=st.lists(repository, min_size=1, max_size=8),
)
def test_index_agrees_with_brute_force_lookup(
    specs: list[tuple[bool, list[str]]], repos: list[str]
) -> None:
    policy, view = build(specs)
    index = RuleIndex(policy, view)
    for repo in repos:
        got = index.match(repo)
        assert [(m.rule.name, list(m.patterns)) for m in got] == reference(specs, repo), repo
        for m in got:
            use_registries = specs[int(m.rule.name[1:])][0]
            assert m.via == ("registries" if use_registries else "auths")
        assert index.match(repo) == got  # the memo gives the same answer


def index_of(*rules: tuple[str, Sequence[str]]) -> RuleIndex:
    """Rules given as (name, registries)."""
    policy = Policy(
        rules=tuple(
            Rule(name=name, secrets=(SecretRef("s", PS, "s"),), registries=tuple(registries))
            for name, registries in rules
        )
    )
    return RuleIndex(policy, ClusterStore())


EXPLICIT = [
    pytest.param(
        ["*.dkr.ecr.*.amazonaws.com"],
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app",
        ("*.dkr.ecr.*.amazonaws.com",),
        id="a glob in two labels",
    ),
    pytest.param(
        ["*.dkr.ecr.*.amazonaws.com"],
        "dkr.ecr.eu-west-1.amazonaws.com/app",
        (),
        id="one label short",
    ),
    pytest.param(["*.example.com"], "example.com/app", (), id="a star label cannot vanish"),
    pytest.param(["*example.com"], "example.com/app", ("*example.com",), id="a star matches empty"),
    pytest.param(["prefix.docker.*"], "prefix.docker.io/x", ("prefix.docker.*",), id="a TLD glob"),
    pytest.param(["quay.io/team"], "quay.io/teamz/app", ("quay.io/team",), id="path string prefix"),
    pytest.param(["quay.io/team"], "quay.io/other/app", (), id="another path"),
    pytest.param(["quay.io:443"], "quay.io/app", (), id="a port never matches no port"),
    pytest.param(["quay.io"], "quay.io:443/app", (), id="no port never matches a port"),
    pytest.param(
        ["https://index.docker.io/v1/"],
        "docker.io/library/nginx",
        ("index.docker.io",),
        id="the Hub fallback",
    ),
    pytest.param(
        ["https://index.docker.io/v1/", "*.io"],
        "docker.io/library/nginx",
        ("*.io",),
        id="another matching key blocks the Hub fallback",
    ),
    pytest.param(
        ["index.docker.io"], "quay.io/library/nginx", (), id="no Hub fallback for other hosts"
    ),
    pytest.param(
        ["registry.example.com", "registry.example.com/team", "*.example.com"],
        "registry.example.com/team/app",
        ("registry.example.com/team", "registry.example.com", "*.example.com"),
        id="all matching keys in reverse lexicographic order",
    ),
    pytest.param(["Quay.io"], "quay.io/app", (), id="globs are case-sensitive"),
]


@pytest.mark.parametrize(("registries", "repo", "patterns"), EXPLICIT)
def test_explicit_matches(registries: list[str], repo: str, patterns: tuple[str, ...]) -> None:
    matches = index_of(("r", registries)).match(repo)
    assert tuple(m.patterns for m in matches) == ((patterns,) if patterns else ())


def test_matches_come_back_in_policy_order() -> None:
    index = index_of(("zulu", ["*.io"]), ("alpha", ["quay.io"]), ("none", ["gcr.io"]))
    assert [m.rule.name for m in index.match("quay.io/x")] == ["zulu", "alpha"]


def test_a_rule_without_registries_uses_its_secrets_keys() -> None:
    policy = Policy(
        rules=(
            Rule(name="r", secrets=(SecretRef("a", PS, "a"), SecretRef("b", PS, "b"))),
            Rule(name="missing", secrets=(SecretRef("gone", PS, "gone"),)),
        )
    )
    view = cluster(
        sources=[pull_secret("a", PS, ["quay.io"]), pull_secret("b", PS, ["https://gcr.io/v1/"])]
    )
    index = RuleIndex(policy, view)
    (quay,) = index.match("quay.io/team/app")
    (gcr,) = index.match("gcr.io/p/app")
    assert (quay.rule.name, quay.via, quay.patterns) == ("r", "auths", ("quay.io",))
    assert (gcr.rule.name, gcr.patterns) == ("r", ("gcr.io",))
    assert index.match("docker.io/library/nginx") == ()


def test_an_unparseable_repository_matches_nothing() -> None:
    assert index_of(("r", ["*"])).match("bad host/x") == ()


def test_the_memo_survives_its_limit() -> None:
    index = index_of(("r", ["quay.io"]))
    for n in range(5000):
        index.match(f"quay.io/app{n}")
    assert [m.rule.name for m in index.match("quay.io/app0")] == ["r"]
    assert index.match("gcr.io/app0") == ()
