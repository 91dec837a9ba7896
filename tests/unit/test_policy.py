"""Policy parsing: every problem is reported with its location, and valid input parses fully."""

from __future__ import annotations

import pytest
import yaml

from webhook.core.policy import (
    MAX_YAML_DEPTH,
    Policy,
    PolicyError,
    PolicyInvalid,
    Rule,
    SecretRef,
    ServiceAccountScope,
    load_policy,
    parse_policy,
)
from webhook.core.selectors import LabelSelector, NamespaceScope, Operator, Requirement

HEAD = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"
WITH_DEFAULT = HEAD + "defaults: {sourceNamespace: pull-secrets}\n"


def rule(body: str) -> str:
    """A policy with one rule (flow-style body) and a default source namespace."""
    return WITH_DEFAULT + "rules:\n  - {" + body + "}\n"


def selector(body: str) -> str:
    return rule("name: r, secrets: [s], namespaces: {selector: {" + body + "}}")


def expressions(*items: str) -> str:
    return selector("matchExpressions: [" + ", ".join(items) + "]")


INVALID = [
    # -- the document ----------------------------------------------------------------------
    pytest.param(
        "rules: [\n  - a: b\n",
        ["(yaml): line 2, column 3: did not find expected node content"],
        id="a YAML syntax error says where",
    ),
    pytest.param(
        HEAD + "rules:\n  - name: a\n   registries: [x]\n",
        ["(yaml): line 5, column 4: "],
        id="a YAML indentation error says where",
    ),
    pytest.param("", ["(root): the policy is empty"], id="an empty document"),
    pytest.param("# just a comment\n", ["(root): the policy is empty"], id="a comment only"),
    pytest.param(
        "{}",
        [
            "(root): the policy is empty",
            "apiVersion: must be 'pullsecret-injector.io/v1', got None",
            "kind: must be 'PullSecretPolicy', got None",
            "rules: is required",
        ],
        id="an empty mapping",
    ),
    pytest.param("- a\n", ["(root): must be a mapping, not a list"], id="a list document"),
    pytest.param("hello", ["(root): must be a mapping, not a string"], id="a scalar document"),
    pytest.param(
        "apiVersion: v1\nkind: ConfigMap\nrules: []\n",
        [
            "apiVersion: must be 'pullsecret-injector.io/v1', got 'v1'",
            "kind: must be 'PullSecretPolicy', got 'ConfigMap'",
        ],
        id="wrong apiVersion and kind",
    ),
    pytest.param(
        HEAD,
        ["rules: is required (an empty list disables injection)"],
        id="missing rules",
    ),
    pytest.param(
        HEAD + "rule: []\n",
        ["rule: unknown field (did you mean 'rules'?)", "rules: is required"],
        id="an unknown top-level field with a suggestion",
    ),
    pytest.param(
        HEAD + "rules: []\nspec: {}\n",
        ["spec: unknown field"],
        id="an unknown field without a close match",
    ),
    pytest.param(
        HEAD + "defaults: {sourceNamespaces: ps}\nrules: []\n",
        ["defaults.sourceNamespaces: unknown field (did you mean 'sourceNamespace'?)"],
        id="an unknown field in defaults",
    ),
    pytest.param(
        HEAD + "defaults: [pull-secrets]\nrules: []\n",
        ["defaults: must be a mapping, not a list"],
        id="defaults as a list",
    ),
    pytest.param(
        HEAD + "defaults: {sourceNamespace: 5}\nrules: {name: a}\n",
        [
            "defaults.sourceNamespace: must be a string, not a number",
            "rules: must be a list, not a mapping",
        ],
        id="a number for a namespace and a mapping for rules",
    ),
    pytest.param(
        HEAD + "defaults: {sourceNamespace: Pull_Secrets}\nrules: []\n",
        ["defaults.sourceNamespace: 'Pull_Secrets' is not a valid namespace name"],
        id="an invalid default source namespace",
    ),
    # -- a rule ----------------------------------------------------------------------------
    pytest.param(
        WITH_DEFAULT + "rules: [corp]\n",
        ["rules[0]: must be a mapping, not a string"],
        id="a rule that is a string",
    ),
    pytest.param(
        rule("name: corp, registires: [quay.io], secrets: [s]"),
        ["rules[0].registires: unknown field (did you mean 'registries'?)"],
        id="a misspelt rule field with a suggestion",
    ),
    pytest.param(
        rule("secrets: [s]"),
        ["rules[0].name: must be a non-empty string"],
        id="a rule without a name",
    ),
    pytest.param(
        rule("name: Corp_Pull, secrets: [s]"),
        ["rules[0].name: 'Corp_Pull' is not a valid rule name (a DNS label)"],
        id="a rule name that is not a DNS label",
    ),
    pytest.param(
        rule("name: " + "a" * 64 + ", secrets: [s]"),
        ["rules[0].name: must be at most 63 characters"],
        id="a rule name that is too long",
    ),
    pytest.param(
        rule("name: 7, secrets: [s]"),
        ["rules[0].name: must be a string, not a number"],
        id="a rule name that is a number",
    ),
    pytest.param(
        WITH_DEFAULT
        + "rules:\n  - {name: a, secrets: [s]}\n  - {name: b, secrets: [s]}\n"
        + "  - {name: a, secrets: [s]}\n",
        ["rules[2].name: duplicate rule name 'a'"],
        id="duplicate rule names point at the second one",
    ),
    pytest.param(
        rule("name: a, registries: [], secrets: [s]"),
        ["rules[0].registries: is empty; omit it to match with the secrets' own auths keys"],
        id="an empty registries list",
    ),
    pytest.param(
        rule("name: a, registries: quay.io, secrets: [s]"),
        ["rules[0].registries: must be a list, not a string"],
        id="registries as a string",
    ),
    pytest.param(
        rule("name: a, registries: [5, ''], secrets: [s]"),
        [
            "rules[0].registries[0]: must be a non-empty string",
            "rules[0].registries[1]: must be a non-empty string",
        ],
        id="registry entries that are not strings",
    ),
    pytest.param(
        rule("name: a, registries: ['quay.io:abc', 'x y', 'a..b', '[fc00::1'], secrets: [s]"),
        [
            "rules[0].registries[0]: 'quay.io:abc' is not a registry pattern (host[:port][/path])",
            "rules[0].registries[1]: 'x y' is not a registry pattern",
            "rules[0].registries[2]: 'a..b' is not a registry pattern",
            "rules[0].registries[3]: '[fc00::1' is not a registry pattern",
        ],
        id="invalid registry patterns",
    ),
    pytest.param(
        rule("name: a, registries: ['quay.io/team-*', 'quay.io/[a-z]*'], secrets: [s]"),
        [
            "rules[0].registries[0]: 'quay.io/team-*': globs are only allowed in the host, "
            "not the path (the kubelet matches the path as a plain prefix)",
            "rules[0].registries[1]: 'quay.io/[a-z]*': globs are only allowed in the host",
        ],
        id="a glob in the path",
    ),
    pytest.param(
        rule("name: a, registries: ['registry[.example.com', 'r.[a-.io'], secrets: [s]"),
        [
            "rules[0].registries[0]: 'registry[.example.com': brackets may only enclose an "
            "IPv6 address",
            "rules[0].registries[1]: 'r.[a-.io': brackets may only enclose an IPv6 address",
        ],
        id="a malformed host glob",
    ),
    pytest.param(
        rule("name: a, registries: [quay.io]"),
        ["rules[0].secrets: at least one secret is required"],
        id="missing secrets",
    ),
    pytest.param(
        rule("name: a, registries: [quay.io], secrets: []"),
        ["rules[0].secrets: at least one secret is required"],
        id="an empty secrets list",
    ),
    pytest.param(
        rule("name: a, secrets: {name: s}"),
        ["rules[0].secrets: must be a list, not a mapping"],
        id="secrets as a mapping",
    ),
    pytest.param(
        HEAD + "rules:\n  - {name: a, secrets: [corp-pull]}\n",
        ["rules[0].secrets[0].namespace: is required when defaults.sourceNamespace is not set"],
        id="a secret namespace missing without defaults",
    ),
    pytest.param(
        rule("name: a, secrets: [[x], {name: 5}, '', {nme: s}]"),
        [
            "rules[0].secrets[0]: must be a mapping, not a list",
            "rules[0].secrets[1].name: must be a string, not a number",
            "rules[0].secrets[2].name: must be a non-empty string",
            "rules[0].secrets[3].nme: unknown field (did you mean 'name'?)",
            "rules[0].secrets[3].name: must be a non-empty string",
        ],
        id="malformed secret entries",
    ),
    pytest.param(
        rule("name: a, secrets: [{name: Corp, namespace: Pull_NS, targetName: 'x/y'}]"),
        [
            "rules[0].secrets[0].name: 'Corp' is not a valid Secret name",
            "rules[0].secrets[0].namespace: 'Pull_NS' is not a valid namespace name",
            "rules[0].secrets[0].targetName: 'x/y' is not a valid Secret name",
        ],
        id="invalid secret, namespace and target names",
    ),
    pytest.param(
        WITH_DEFAULT
        + "rules:\n  - {name: a, secrets: [corp]}\n"
        + "  - {name: b, secrets: [{name: other, targetName: corp}]}\n",
        [
            "rules[1].secrets[0]: copy name 'corp' would come from both pull-secrets/corp and "
            "pull-secrets/other; give one of them a different targetName"
        ],
        id="a targetName collision from two sources",
    ),
    pytest.param(
        rule("name: a, secrets: [{name: s, namespace: n1}, {name: s, namespace: n2}]"),
        ["rules[0].secrets[1]: copy name 's' would come from both n1/s and n2/s"],
        id="two namespaces' secrets with the same name in one rule",
    ),
    pytest.param(
        rule("name: a, secrets: [s], credentialSubset: true"),
        ["rules[0].credentialSubset: needs registries: without them every auths entry is granted"],
        id="credentialSubset without registries",
    ),
    pytest.param(
        rule("name: a, registries: [quay.io], secrets: [s], credentialSubset: 'true'"),
        ["rules[0].credentialSubset: must be true or false, not a string"],
        id="credentialSubset as a string",
    ),
    pytest.param(
        rule("name: a, secrets: [s], onFailure: deny"),
        ["rules[0].onFailure: must be Warn or Deny, got 'deny'"],
        id="onFailure in the wrong case",
    ),
    pytest.param(
        rule("name: a, secrets: [s], onFailure: [Deny]"),
        ["rules[0].onFailure: must be Warn or Deny, got ['Deny']"],
        id="onFailure as a list",
    ),
    # -- service accounts ------------------------------------------------------------------
    pytest.param(
        rule("name: a, secrets: [s], serviceAccounts: {backfill: true}"),
        ["rules[0].serviceAccounts.backfill: needs names: which ServiceAccounts to backfill"],
        id="backfill without names",
    ),
    pytest.param(
        rule("name: a, secrets: [s], serviceAccounts: {names: default, backfill: 'yes'}"),
        [
            "rules[0].serviceAccounts.names: must be a list, not a string",
            "rules[0].serviceAccounts.backfill: must be true or false, not a string",
        ],
        id="wrong types in serviceAccounts",
    ),
    pytest.param(
        rule("name: a, secrets: [s], serviceAccounts: {names: ['[']}"),
        ["rules[0].serviceAccounts.names[0]: '[' is not a valid glob"],
        id="an invalid ServiceAccount glob",
    ),
    pytest.param(
        rule("name: a, secrets: [s], serviceAccounts: [default]"),
        ["rules[0].serviceAccounts: must be a mapping, not a list"],
        id="serviceAccounts as a list",
    ),
    # -- namespaces ------------------------------------------------------------------------
    pytest.param(
        rule("name: a, secrets: [s], namespaces: [team-a]"),
        ["rules[0].namespaces: must be a mapping, not a list"],
        id="namespaces as a list",
    ),
    pytest.param(
        rule("name: a, secrets: [s], namespaces: {include: [], exclude: ['['], inclde: [x]}"),
        [
            "rules[0].namespaces.inclde: unknown field (did you mean 'include'?)",
            "rules[0].namespaces.include: is empty, so the rule reaches no namespace",
            "rules[0].namespaces.exclude[0]: '[' is not a valid glob",
        ],
        id="empty include, bad exclude glob and a typo in namespaces",
    ),
    pytest.param(
        HEAD + "defaults: {namespaces: {include: ['[a-']}}\nrules: []\n",
        [
            "defaults.namespaces.include[0]: '[a-' is not a valid glob",
        ],
        id="a bad glob in default namespaces",
    ),
    pytest.param(
        selector("matchLabel: {a: b}"),
        [
            "rules[0].namespaces.selector.matchLabel: unknown field (did you mean 'matchLabels'?)",
        ],
        id="a misspelt selector field",
    ),
    pytest.param(
        rule("name: a, secrets: [s], namespaces: {selector: {team: payments}}"),
        [
            "rules[0].namespaces.selector.team: unknown field "
            "(did you mean matchLabels: {team: payments}?)",
        ],
        id="labels written straight under selector point at matchLabels",
    ),
    pytest.param(
        rule("name: a, secrets: [s], namespaces: {selector: [x]}"),
        ["rules[0].namespaces.selector: must be a mapping, not a list"],
        id="a selector that is a list",
    ),
    pytest.param(
        selector("matchLabels: [x], matchExpressions: {a: b}"),
        [
            "rules[0].namespaces.selector.matchLabels: must be a mapping, not a list",
            "rules[0].namespaces.selector.matchExpressions: must be a list, not a mapping",
        ],
        id="matchLabels and matchExpressions of the wrong type",
    ),
    pytest.param(
        expressions("{key: env, operator: In}"),
        ["rules[0].namespaces.selector.matchExpressions[0].values: must be non-empty for In"],
        id="In with no values",
    ),
    pytest.param(
        expressions("{key: env, operator: NotIn, values: []}"),
        ["rules[0].namespaces.selector.matchExpressions[0].values: must be non-empty for NotIn"],
        id="NotIn with an empty values list",
    ),
    pytest.param(
        expressions("{key: env, operator: Exists, values: [prod]}"),
        ["rules[0].namespaces.selector.matchExpressions[0].values: must be empty for Exists"],
        id="Exists with values",
    ),
    pytest.param(
        expressions("{key: env, operator: DoesNotExist, values: [prod]}"),
        ["rules[0].namespaces.selector.matchExpressions[0].values: must be empty for DoesNotExist"],
        id="DoesNotExist with values",
    ),
    pytest.param(
        expressions("{key: env, operator: Equals, values: [prod]}", "{key: env}"),
        [
            "rules[0].namespaces.selector.matchExpressions[0].operator: must be one of In, "
            "NotIn, Exists, DoesNotExist, got 'Equals'",
            "rules[0].namespaces.selector.matchExpressions[1].operator: must be one of In, "
            "NotIn, Exists, DoesNotExist, got None",
        ],
        id="an unknown or missing operator",
    ),
    pytest.param(
        expressions("x", "{operator: Exists}", "{key: env, operator: In, values: [prod], x: 1}"),
        [
            "rules[0].namespaces.selector.matchExpressions[0]: must be a mapping, not a string",
            "rules[0].namespaces.selector.matchExpressions[1].key: label key must be a "
            "non-empty string",
            "rules[0].namespaces.selector.matchExpressions[2].x: unknown field",
        ],
        id="malformed match expressions",
    ),
    pytest.param(
        expressions("{key: env, operator: In, values: prod}"),
        [
            "rules[0].namespaces.selector.matchExpressions[0].values: must be a list, not a string",
            "rules[0].namespaces.selector.matchExpressions[0].values: must be non-empty for In",
        ],
        id="values as a string",
    ),
    pytest.param(
        expressions("{key: env, operator: In, values: ['bad value', [x], '" + "v" * 64 + "']}"),
        [
            "rules[0].namespaces.selector.matchExpressions[0].values[0]: 'bad value' is not a "
            "valid label value",
            "rules[0].namespaces.selector.matchExpressions[0].values[1]: label value must be a "
            "string, not a list",
            "rules[0].namespaces.selector.matchExpressions[0].values[2]: '" + "v" * 64 + "' is "
            "not a valid label value",
        ],
        id="bad label values in an expression",
    ),
    pytest.param(
        selector(
            "matchLabels: {'-bad': x, 'Example.com/x': y, 'a/b/c': z, '/x': w, '"
            + "k" * 64
            + "': v}"
        ),
        [
            "rules[0].namespaces.selector.matchLabels.-bad: '-bad' is not a valid label key",
            "rules[0].namespaces.selector.matchLabels.Example.com/x: 'Example.com/x' is not a "
            "valid label key",
            "rules[0].namespaces.selector.matchLabels.a/b/c: 'a/b/c' is not a valid label key",
            "rules[0].namespaces.selector.matchLabels./x: '/x' is not a valid label key",
            "is not a valid label key",
        ],
        id="bad label keys",
    ),
    pytest.param(
        selector("matchLabels: {a: '-bad-', b: [1], c: true, d: 1.5, e: '" + "v" * 64 + "'}"),
        [
            "rules[0].namespaces.selector.matchLabels.a: '-bad-' is not a valid label value",
            "rules[0].namespaces.selector.matchLabels.b: label value must be a string, not a list",
            "rules[0].namespaces.selector.matchLabels.c: label value must be a string, not a "
            "boolean",
            "rules[0].namespaces.selector.matchLabels.d: label value must be a string, not a "
            "number",
            "rules[0].namespaces.selector.matchLabels.e: '" + "v" * 64 + "' is not a valid label "
            "value",
        ],
        id="bad label values",
    ),
    pytest.param(
        WITH_DEFAULT
        + "rules:\n  - {name: a, registries: [quay.io]}\n"
        + "  - {name: b, secrets: [s], onFailure: Maybe}\n",
        [
            "rules[0].secrets: at least one secret is required",
            "rules[1].onFailure: must be Warn or Deny, got 'Maybe'",
        ],
        id="errors in several rules are all reported",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID)
def test_invalid_policy_reports_every_error_with_its_location(
    text: str, expected: list[str]
) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(text)
    errors = [str(e) for e in caught.value.errors]
    assert len(errors) == len(expected), errors
    for error, want in zip(errors, expected, strict=True):
        assert want in error, (want, errors)
    assert str(caught.value) == "; ".join(errors)


def _is_yaml(text: object) -> bool:
    try:
        yaml.safe_load(str(text))
    except yaml.YAMLError:
        return False
    return True


@pytest.mark.parametrize(("text", "expected"), [p for p in INVALID if _is_yaml(p.values[0])])
def test_parse_policy_never_returns_a_policy_with_errors(text: str, expected: list[str]) -> None:
    policy, errors = parse_policy(yaml.safe_load(text), generation="g1")
    assert policy is None
    assert len(errors) == len(expected)
    for error, want in zip(errors, expected, strict=True):
        assert isinstance(error, PolicyError)
        assert want in str(error)


def test_yaml_errors_are_a_single_located_error() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy("rules:\n  - name: a\n    secrets: [unclosed\n")
    (error,) = caught.value.errors
    assert error.path == "(yaml)"
    assert error.message.startswith("line ")


@pytest.mark.parametrize("levels", [MAX_YAML_DEPTH, 5000, 200_000])
@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_absurdly_nested_yaml_is_an_invalid_policy_not_a_crash(opener: str, levels: int) -> None:
    # libyaml's composer would overflow the C stack (a crash, not an exception) at 200,000.
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    text = "rules:\n  " + opener * levels + "x" + closer * levels + "\n"
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(text)
    (error,) = caught.value.errors
    assert str(error) == "(yaml): nesting is too deep"


def test_an_error_in_one_rule_keeps_the_other_rules_from_being_applied() -> None:
    text = WITH_DEFAULT + "rules:\n  - {name: good, secrets: [s]}\n  - {name: Bad, secrets: [s]}\n"
    policy, errors = parse_policy(yaml.safe_load(text))
    assert policy is None
    assert [str(e) for e in errors] == [
        "rules[1].name: 'Bad' is not a valid rule name (a DNS label)"
    ]


def test_each_duplicate_rule_name_is_located() -> None:
    text = WITH_DEFAULT + "rules:\n" + "  - {name: a, secrets: [s]}\n" * 3
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(text)
    assert [str(e) for e in caught.value.errors] == [
        "rules[1].name: duplicate rule name 'a'",
        "rules[2].name: duplicate rule name 'a'",
    ]


@pytest.mark.parametrize(
    "pattern",
    ["quay.io/t?am", "quay.io/team?x=1", "quay.io/team#x", "r?gistry.example.com"],
)
def test_a_query_or_fragment_in_a_registry_pattern_is_rejected(pattern: str) -> None:
    with pytest.raises(PolicyInvalid, match=r"rules\[0\]\.registries\[0\]"):
        load_policy(rule(f"name: a, registries: ['{pattern}'], secrets: [s]"))


def test_an_invalid_default_namespace_is_reported_where_it_is() -> None:
    text = HEAD + "defaults: {sourceNamespace: Bad}\nrules:\n  - {name: a, secrets: [s]}\n"
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(text)
    errors = [str(e) for e in caught.value.errors]
    # Reported once, where it is: not again for every secret that would have used it.
    assert errors == ["defaults.sourceNamespace: 'Bad' is not a valid namespace name"]


# -- valid policies -------------------------------------------------------------------------

FULL = """\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: pull-secrets
  namespaces:
    exclude: [kube-*]
rules:
  - name: corp
    registries: [registry.example.com, "*.dkr.ecr.*.amazonaws.com", "quay.io/team"]
    secrets:
      - corp-pull
      - {name: ecr-pull, namespace: aws-creds, targetName: ecr-copy}
    namespaces:
      include: ["team-*"]
      exclude: [team-legacy]
      selector:
        matchLabels: {pulls: corp, tier: 1}
        matchExpressions:
          - {key: env, operator: NotIn, values: [prod, staging]}
          - {key: example.com/owner, operator: Exists}
    serviceAccounts: {names: [default, "builder-*"], backfill: true}
    credentialSubset: true
    onFailure: Deny
  - name: hub
    secrets: [hub-pull]
"""


def test_a_full_policy_parses_into_dataclasses() -> None:
    policy = load_policy(FULL, generation="rv-42")
    assert policy == Policy(
        generation="rv-42",
        rules=(
            Rule(
                name="corp",
                secrets=(
                    SecretRef(name="corp-pull", namespace="pull-secrets", target_name="corp-pull"),
                    SecretRef(name="ecr-pull", namespace="aws-creds", target_name="ecr-copy"),
                ),
                registries=("registry.example.com", "*.dkr.ecr.*.amazonaws.com", "quay.io/team"),
                namespaces=NamespaceScope(
                    include=("team-*",),
                    exclude=("team-legacy",),
                    selector=LabelSelector(
                        (
                            Requirement("pulls", "In", frozenset({"corp"})),
                            Requirement("tier", "In", frozenset({"1"})),
                            Requirement("env", "NotIn", frozenset({"prod", "staging"})),
                            Requirement("example.com/owner", "Exists", frozenset()),
                        )
                    ),
                ),
                service_accounts=ServiceAccountScope(names=("default", "builder-*"), backfill=True),
                credential_subset=True,
                on_failure="Deny",
            ),
            Rule(
                name="hub",
                secrets=(
                    SecretRef(name="hub-pull", namespace="pull-secrets", target_name="hub-pull"),
                ),
                registries=(),
                namespaces=NamespaceScope(include=("*",), exclude=("kube-*",), selector=None),
                service_accounts=ServiceAccountScope(names=(), backfill=False),
                credential_subset=False,
                on_failure="Warn",
            ),
        ),
    )
    assert policy.rule("hub").matches_from_auths
    assert not policy.rule("corp").matches_from_auths
    assert policy.source_namespaces() == frozenset({"pull-secrets", "aws-creds"})
    assert policy.managed_names() == frozenset({"corp-pull", "ecr-copy", "hub-pull"})
    assert policy.rule("corp").secrets[1].source == "aws-creds/ecr-pull"


def test_defaults_are_applied_to_a_minimal_rule() -> None:
    policy = load_policy(HEAD + "rules:\n  - {name: r, secrets: [{name: s, namespace: creds}]}\n")
    (only,) = policy.rules
    assert only == Rule(name="r", secrets=(SecretRef("s", "creds", "s"),), registries=())
    assert only.namespaces == NamespaceScope(include=("*",), exclude=(), selector=None)
    assert only.service_accounts == ServiceAccountScope(names=(), backfill=False)
    assert (only.credential_subset, only.on_failure) == (False, "Warn")
    assert policy.generation == ""


def test_a_rule_namespace_overrides_the_default_and_defaults_namespaces_fill_in() -> None:
    text = (
        WITH_DEFAULT.replace("}", ", namespaces: {include: ['team-*']}}")
        + "rules:\n"
        + "  - {name: a, secrets: [s]}\n"
        + "  - {name: b, secrets: [{name: t, namespace: other}], namespaces: {exclude: [x]}}\n"
    )
    a, b = load_policy(text).rules
    assert a.namespaces == NamespaceScope(include=("team-*",))
    assert a.secrets == (SecretRef("s", "pull-secrets", "s"),)
    assert b.namespaces == NamespaceScope(include=("*",), exclude=("x",))
    assert b.secrets == (SecretRef("t", "other", "t"),)


def test_an_empty_selector_is_kept_and_selects_everything() -> None:
    (only,) = load_policy(selector("")).rules
    assert only.namespaces.selector == LabelSelector(())
    assert not only.namespaces.needs_labels
    assert only.namespaces.matches("anything", {})


def test_an_empty_or_null_rules_list_disables_injection() -> None:
    assert load_policy(HEAD + "rules: []\n").rules == ()
    assert load_policy(HEAD + "rules:\n").rules == ()


def test_the_same_source_under_the_same_copy_name_in_two_rules_is_fine() -> None:
    text = WITH_DEFAULT + "rules:\n  - {name: a, secrets: [s]}\n  - {name: b, secrets: [s]}\n"
    assert [r.name for r in load_policy(text).rules] == ["a", "b"]


@pytest.mark.parametrize(
    "pattern",
    [
        "registry.example.com",
        "registry.example.com:5000",
        "registry.example.com:5000/team/app",
        "https://quay.io/v2/",
        "*.dkr.ecr.*.amazonaws.com",
        "prefix.docker.*",
        "localhost:5000",
        "[::1]:5000",
        "docker.io/myorg",
    ],
)
def test_valid_registry_patterns_are_kept_as_written(pattern: str) -> None:
    text = rule(f"name: a, registries: ['{pattern}'], secrets: [s]")
    assert load_policy(text).rules[0].registries == (pattern,)


def test_policy_errors_render_as_path_and_message() -> None:
    error = PolicyError("rules[2].registries[0]", "bad")
    assert str(error) == "rules[2].registries[0]: bad"
    assert str(PolicyInvalid([error, PolicyError("kind", "x")])) == (
        "rules[2].registries[0]: bad; kind: x"
    )


# -- selector semantics (what a parsed selector means) -----------------------------------------


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        pytest.param("In", {"dev", "qa"}, {"env": "dev"}, True, id="In with a listed value"),
        pytest.param("In", {"dev"}, {"env": "prod"}, False, id="In with another value"),
        pytest.param("In", {"dev"}, {}, False, id="In without the key"),
        pytest.param("NotIn", {"prod"}, {"env": "dev"}, True, id="NotIn with another value"),
        pytest.param("NotIn", {"prod"}, {"env": "prod"}, False, id="NotIn with a listed value"),
        pytest.param("NotIn", {"prod"}, {}, True, id="NotIn without the key"),
        pytest.param("Exists", set(), {"env": ""}, True, id="Exists with an empty value"),
        pytest.param("Exists", set(), {"other": "x"}, False, id="Exists without the key"),
        pytest.param("DoesNotExist", set(), {}, True, id="DoesNotExist without the key"),
        pytest.param("DoesNotExist", set(), {"env": "x"}, False, id="DoesNotExist with it"),
    ],
)
def test_requirement_semantics(
    operator: Operator, values: set[str], labels: dict[str, str], expected: bool
) -> None:
    assert Requirement("env", operator, frozenset(values)).matches(labels) is expected


def test_a_selector_needs_every_requirement() -> None:
    body = "matchLabels: {team: a}, matchExpressions: [{key: env, operator: NotIn, values: [x]}]"
    (only,) = load_policy(selector(body)).rules
    scope = only.namespaces
    assert scope.needs_labels
    assert scope.matches("ns", {"team": "a", "env": "dev"})
    assert scope.matches("ns", {"team": "a"})
    assert not scope.matches("ns", {"team": "a", "env": "x"})
    assert not scope.matches("ns", {"env": "dev"})


def test_namespace_globs_exclude_first_then_include() -> None:
    scope = NamespaceScope(include=("team-*", "ci"), exclude=("team-legacy",))
    assert scope.matches("team-a", {})
    assert scope.matches("ci", {})
    assert not scope.matches("team-legacy", {})
    assert not scope.matches("teams", {})
    assert not scope.matches("default", {})
