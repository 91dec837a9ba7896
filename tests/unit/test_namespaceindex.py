"""The rule index narrows which rules are tried on a namespace and never changes the answer.

Equivalence is checked exhaustively over the glob oracle's alphabet (stars, '?', classes,
negation, escapes, malformed patterns) against trying every rule, and on the policy shapes
operators write (team prefixes, exact names, several includes, excludes, selectors).
"""

from __future__ import annotations

import itertools

import pytest

from webhook.core.copies import applicable_rules
from webhook.core.namespaceindex import NamespaceIndex, namespace_index
from webhook.core.policy import Policy, Rule, SecretRef
from webhook.core.registry import glob_literal_prefix
from webhook.core.selectors import LabelSelector, NamespaceScope, Requirement

PATTERN_PARTS = ["a", "b", "*", "?", "[a-b]", "[^a]", "\\*", "\\", "["]
NAME_CHARS = "ab*"


def _rule(name: str, include: tuple[str, ...], **scope: object) -> Rule:
    return Rule(
        name=name,
        secrets=(SecretRef(name="src", namespace="infra", target_name="pull"),),
        namespaces=NamespaceScope(include=include, **scope),  # type: ignore[arg-type]
    )


def _every_rule(rules: tuple[Rule, ...], namespace: str) -> list[str]:
    return [r.name for r in rules if r.namespaces.matches(namespace, {})]


def _indexed(index: NamespaceIndex, namespace: str) -> list[str]:
    return [r.name for r in index.candidates(namespace) if r.namespaces.matches(namespace, {})]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("team-a-*", "team-a-"),
        ("payments", "payments"),
        ("*", ""),
        ("t?-x", "t"),
        ("t[0-9]*", "t"),
        ("a\\*b*", "a*b"),  # an escaped star is a literal
        ("a[", None),  # malformed: matches nothing, filed nowhere
        ("a\\", None),
    ],
)
def test_literal_prefix(pattern: str, prefix: str | None) -> None:
    assert glob_literal_prefix(pattern) == prefix


def test_same_answers_as_trying_every_rule_exhaustively() -> None:
    patterns = sorted(
        {"".join(p) for size in range(4) for p in itertools.product(PATTERN_PARTS, repeat=size)}
    )
    rules = tuple(_rule(f"r{i}", (p,)) for i, p in enumerate(patterns))
    index = NamespaceIndex.of(rules)
    names = ["".join(c) for size in range(5) for c in itertools.product(NAME_CHARS, repeat=size)]
    differing = [n for n in names if _indexed(index, n) != _every_rule(rules, n)]
    assert differing == []


SHAPES = (
    _rule("team-a", ("team-a-*",)),
    _rule("team-ab", ("team-ab-*",)),
    _rule("exact", ("payments",)),
    _rule("two", ("blue-*", "green-?")),
    _rule("everywhere-but", ("*",), exclude=("kube-*", "team-a-secret")),
    _rule("classes", ("t[0-9]-*",)),
    _rule(
        "labelled",
        ("team-*",),
        selector=LabelSelector((Requirement("tier", "In", frozenset({"gold"})),)),
    ),
)


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        ("team-a-1", {}, ["team-a", "everywhere-but"]),
        ("team-ab-1", {}, ["team-ab", "everywhere-but"]),  # team-a-* does not match team-ab-1
        ("team-a-secret", {}, ["team-a"]),
        ("team-a-1", {"tier": "gold"}, ["team-a", "everywhere-but", "labelled"]),
        ("payments", {}, ["exact", "everywhere-but"]),
        ("payments-2", {}, ["everywhere-but"]),
        ("green-1", {}, ["two", "everywhere-but"]),
        ("green-12", {}, ["everywhere-but"]),
        ("t7-x", {}, ["everywhere-but", "classes"]),
        ("kube-system", {}, []),
        ("kube-flannel", {}, []),
    ],
)
def test_policy_shapes_in_policy_order(
    namespace: str, labels: dict[str, str], expected: list[str]
) -> None:
    policy = Policy(rules=SHAPES)
    assert [r.name for r in applicable_rules(policy, namespace, labels)] == expected


def test_unknown_labels_still_reach_name_only_rules() -> None:
    policy = Policy(rules=SHAPES)
    assert [r.name for r in applicable_rules(policy, "team-a-1", None)] == [
        "team-a",
        "everywhere-but",
    ]


def test_narrows_a_team_per_rule_policy_to_the_team() -> None:
    rules = tuple(_rule(f"r{t}", (f"t{t}-*",)) for t in range(2000))
    index = NamespaceIndex.of(rules)
    assert [r.name for r in index.candidates("t1234-3")] == ["r1234"]  # not 2,000 tried
    assert [r.name for r in index.candidates("t12345-3")] == []


def test_built_once_per_policy_in_force() -> None:
    first, second = Policy(rules=SHAPES, generation="1"), Policy(rules=SHAPES[:1], generation="2")
    assert namespace_index(first) is namespace_index(first)
    assert [r.name for r in namespace_index(second).rules] == ["team-a"]
    assert len(namespace_index(first).rules) == len(SHAPES)
