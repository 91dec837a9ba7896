"""The policy: one versioned YAML document, parsed into frozen dataclasses or a list of errors.

This module is the single source of truth for the policy schema. Parsing is strict (unknown
fields are errors: a misspelt ``registires`` must not silently widen or narrow a rule) and
collects *every* problem with its location (``rules[2].registries[0]: ...``), so an operator
fixes a broken edit in one pass. A policy with any error is never applied; the caller keeps
serving the last good one.

Example::

    apiVersion: pullsecret-injector.io/v1
    kind: PullSecretPolicy
    defaults:
      sourceNamespace: pull-secrets
    rules:
      - name: corp
        registries: [registry.example.com, "*.dkr.ecr.*.amazonaws.com"]
        secrets: [{name: corp-pull}]
        namespaces: {include: ["team-*"], selector: {matchLabels: {pulls: corp}}}
        serviceAccounts: {names: [default]}
        credentialSubset: true
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import yaml

from webhook.core.names import DNS1123_LABEL, DNS1123_SUBDOMAIN, is_label_key, is_label_value
from webhook.core.registry import InvalidPattern, check_pattern, glob_match, is_valid_glob
from webhook.core.scope import Exclusions
from webhook.core.selectors import OPERATORS, LabelSelector, NamespaceScope, Operator, Requirement
from webhook.core.validation import Located, PolicyError, join_path, kind_of

__all__ = [
    "API_VERSION",
    "FIELDS",
    "KIND",
    "OPENSHIFT_INTERNAL_REGISTRY",
    "ImagePullerGrant",
    "Policy",
    "PolicyError",
    "PolicyInvalid",
    "Rule",
    "SecretRef",
    "ServiceAccountScope",
    "load_policy",
    "parse_policy",
    "trust_warnings",
]

API_VERSION = "pullsecret-injector.io/v1"
KIND = "PullSecretPolicy"

FailureAction = Literal["Warn", "Deny"]

FIELDS: Mapping[str, tuple[str, ...]] = {
    "policy": ("apiVersion", "kind", "defaults", "rules", "imagePullerGrants"),
    "defaults": ("sourceNamespace", "namespaces", "internalRegistry"),
    "rule": (
        "name",
        "registries",
        "secrets",
        "namespaces",
        "serviceAccounts",
        "credentialSubset",
        "onFailure",
    ),
    "secret": ("name", "namespace", "targetName"),
    "namespaces": ("include", "exclude", "selector"),
    "selector": ("matchLabels", "matchExpressions"),
    "matchExpression": ("key", "operator", "values"),
    "serviceAccounts": ("names", "backfill"),
    "imagePullerGrant": ("name", "imageProjects", "pullers", "serviceAccount"),
}
"""Every object of the schema and the keys it allows, declared once (docs and chart tests
read this table; unknown keys are errors)."""


class PolicyInvalid(ValueError):
    """Raised by ``load_policy``; carries every problem found."""

    def __init__(self, errors: Sequence[PolicyError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A source pull secret and the name its copies get in target namespaces."""

    name: str
    """Source Secret name."""
    namespace: str
    """Source namespace (the rule's, or ``defaults.sourceNamespace``)."""
    target_name: str
    """Name of the copy in each target namespace (defaults to ``name``)."""

    @property
    def source(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServiceAccountScope:
    """Which ServiceAccounts get the rule's secrets, like ``secrets link --for=pull``."""

    names: tuple[str, ...] = ()
    """ServiceAccount name globs patched at creation; empty: none."""
    backfill: bool = False
    """Also append to existing ServiceAccounts (done by the sync controller)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Images from ``registries`` in ``namespaces`` get ``secrets``."""

    name: str
    """Unique rule name; appears in logs, metrics and warnings."""
    secrets: tuple[SecretRef, ...]
    """Injected together: several credentials for one registry (the kubelet tries each key in
    its order until the registry accepts one)."""
    registries: tuple[str, ...] = ()
    """Kubelet key syntax patterns. Empty: match with the secrets' own ``auths`` keys."""
    namespaces: NamespaceScope = field(default_factory=NamespaceScope)
    service_accounts: ServiceAccountScope = field(default_factory=ServiceAccountScope)
    credential_subset: bool = False
    """Copies carry only the ``auths`` entries ``registries`` grant."""
    on_failure: FailureAction = "Warn"
    """``Deny`` rejects a pod whose matched image cannot get its secret; ``Warn`` admits it."""

    @property
    def matches_from_auths(self) -> bool:
        return not self.registries


OPENSHIFT_INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"


@dataclass(frozen=True, slots=True)
class ImagePullerGrant:
    """Lets pullers' ServiceAccounts pull images kept in other projects' internal registry
    namespaces (OpenShift's ``system:image-puller`` role, bound for them by the controller)."""

    name: str
    image_projects: tuple[str, ...]
    """Name globs of the projects whose internal-registry images may be pulled."""
    pullers: NamespaceScope
    """Projects whose ServiceAccounts may pull them."""
    service_account: str | None = None
    """Only this ServiceAccount of each puller project (default: all of them)."""

    def allows(
        self, image_project: str, namespace: str, labels: Mapping[str, str], account: str
    ) -> bool:
        return (
            any(glob_match(pattern, image_project) for pattern in self.image_projects)
            and self.pullers.matches(namespace, labels)
            and (self.service_account is None or self.service_account == account)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``generation`` identifies it in metrics and logs."""

    rules: tuple[Rule, ...] = ()
    generation: str = ""
    """Opaque identifier of the source (ConfigMap resourceVersion, file hash)."""
    image_puller_grants: tuple[ImagePullerGrant, ...] = ()
    internal_registry: str = OPENSHIFT_INTERNAL_REGISTRY
    """host:port of the cluster's internal registry (images there are pulled by project)."""
    checks_internal_registry: bool = False
    """Warn about cross-project internal-registry pulls without a grant (set when the policy
    declares grants or names the internal registry)."""
    exclusions: Exclusions = field(default_factory=Exclusions)
    """Where no rule ever reaches: part of the policy in force, so that every decision (the
    webhook's, the controller's, ``explain``'s) obeys the same rule. Set by the deployment
    (release namespace, ``excludeNamespaces``), not by the policy text."""

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)

    def source_namespaces(self) -> frozenset[str]:
        return frozenset(s.namespace for r in self.rules for s in r.secrets)

    def source_refs(self) -> frozenset[tuple[str, str]]:
        """(namespace, name) of every source Secret the policy names."""
        return frozenset((s.namespace, s.name) for r in self.rules for s in r.secrets)

    def managed_names(self) -> frozenset[str]:
        """Names of copies the policy manages (RBAC ``resourceNames`` must cover these)."""
        return frozenset(s.target_name for r in self.rules for s in r.secrets)


def trust_warnings(policy: Policy) -> list[str]:
    """Rules whose reach anyone who may label namespaces could extend to themselves.

    A selector-only rule (``include: ['*']``) gives its credentials to every namespace with
    the label: a tenant with ``patch`` on its own namespace, or one who may create namespaces,
    can set it. The policy is valid; the operator should know what it trusts.
    """
    warnings = []
    for rule in policy.rules:
        scope = rule.namespaces
        if scope.needs_labels and scope.include == ("*",):
            warnings.append(
                f"rule {rule.name}: reaches namespaces by label alone; whoever may label or "
                "create namespaces can receive its secrets (add include globs, or guard the "
                "label: README, Security)"
            )
    for grant in policy.image_puller_grants:
        if grant.pullers.needs_labels and grant.pullers.include == ("*",):
            warnings.append(
                f"imagePullerGrants {grant.name}: pullers are chosen by label alone; whoever "
                "may label or create namespaces can pull those projects' images"
            )
    return warnings


MAX_YAML_DEPTH = 64
"""Deepest nesting a policy document may have (a valid one is five levels deep)."""


class _TooDeep(Exception):
    pass


def _yaml_document(text: str) -> object:
    """The document, through libyaml when PyYAML has it.

    Why: the pure-Python loader took 1.4 s of CPU for a 2,000-rule policy, in the view keeper on
    every edit and in the controller at start, on the cores admission needs; libyaml's takes
    0.3 s. But its composer recurses in C and crashes the process on deep nesting (the pure
    loader raises ``RecursionError``), so the depth is checked first on libyaml's event stream,
    which is iterative and cheap (0.08 s for the same policy).
    """
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return yaml.safe_load(text)
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _TooDeep
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader


def load_policy(text: str, generation: str = "", exclusions: Exclusions | None = None) -> Policy:
    """Parse YAML text into a ``Policy`` or raise ``PolicyInvalid`` with every problem."""
    try:
        document = _yaml_document(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyInvalid([PolicyError("(yaml)", f"{where}{problem}")]) from None
    except (RecursionError, _TooDeep):
        raise PolicyInvalid([PolicyError("(yaml)", "nesting is too deep")]) from None
    policy, errors = parse_policy(document, generation)
    if errors or policy is None:
        raise PolicyInvalid(errors)
    return policy if exclusions is None else replace(policy, exclusions=exclusions)


def parse_policy(document: object, generation: str = "") -> tuple[Policy | None, list[PolicyError]]:
    """Validate a decoded document; return the policy (only when error-free) and the errors."""
    checker = _PolicyWalk()
    policy = checker.policy(document, generation)
    return (policy if not checker.errors else None), checker.errors


class _PolicyWalk(Located):
    """Walks the document once, recording errors and building dataclasses as it goes."""

    def policy(self, document: object, generation: str) -> Policy:
        if document is None:
            self.error("(root)", "the policy is empty")
            return Policy(generation=generation)
        top = self.mapping(document, "", FIELDS["policy"])
        if not top and isinstance(document, Mapping):
            self.error("(root)", "the policy is empty")
        if isinstance(document, Mapping):
            if top.get("apiVersion") != API_VERSION:
                self.error("apiVersion", f"must be {API_VERSION!r}, got {top.get('apiVersion')!r}")
            if top.get("kind") != KIND:
                self.error("kind", f"must be {KIND!r}, got {top.get('kind')!r}")
        defaults = self.mapping(top.get("defaults"), "defaults", FIELDS["defaults"])
        internal_registry = OPENSHIFT_INTERNAL_REGISTRY
        if defaults.get("internalRegistry") is not None:
            checked = self.registry_pattern_value(
                defaults["internalRegistry"], "defaults.internalRegistry"
            )
            internal_registry = checked or internal_registry
        default_source = None
        if defaults.get("sourceNamespace") is not None:
            # "" (not None) when given but invalid: reported once here, not for every secret.
            default_source = (
                self.string(
                    defaults["sourceNamespace"],
                    "defaults.sourceNamespace",
                    DNS1123_LABEL,
                    "namespace name",
                    63,
                )
                or ""
            )
        default_scope = self.scope(defaults.get("namespaces"), "defaults.namespaces")
        rules: list[tuple[int, Rule]] = []
        if "rules" not in top and isinstance(document, Mapping):
            self.error("rules", "is required (an empty list disables injection)")
        for index, raw in enumerate(self.sequence(top.get("rules"), "rules")):
            rule = self.rule(raw, f"rules[{index}]", default_source, default_scope)
            if rule is not None:
                rules.append((index, rule))
        self.cross_rule_checks(rules)
        grants = self.grants(top.get("imagePullerGrants"), "imagePullerGrants")
        return Policy(
            rules=tuple(rule for _, rule in rules),
            generation=generation,
            image_puller_grants=grants,
            internal_registry=internal_registry,
            checks_internal_registry=bool(grants) or "internalRegistry" in defaults,
        )

    def registry_pattern_value(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.error(path, "must be a non-empty string (host:port)")
            return None
        return self.registry_pattern(value, path)

    def grants(self, value: object, path: str) -> tuple[ImagePullerGrant, ...]:
        out: list[ImagePullerGrant] = []
        names: set[str] = set()
        for index, raw in enumerate(self.sequence(value, path)):
            item = f"{path}[{index}]"
            body = self.mapping(raw, item, FIELDS["imagePullerGrant"])
            if not isinstance(raw, Mapping):
                continue
            before = len(self.errors)
            name = self.string(
                body.get("name"),
                join_path(item, "name"),
                DNS1123_LABEL,
                "grant name (a DNS label)",
                63,
            )
            projects = self.strings(
                body.get("imageProjects"), join_path(item, "imageProjects"), self.name_glob
            )
            if not projects:
                self.error(
                    join_path(item, "imageProjects"), "at least one project (name glob) is required"
                )
            if body.get("pullers") is None:
                self.error(join_path(item, "pullers"), "is required: which projects may pull")
            pullers = self.scope(body.get("pullers"), join_path(item, "pullers"))
            account = None
            if body.get("serviceAccount") is not None:
                account = self.string(
                    body["serviceAccount"],
                    join_path(item, "serviceAccount"),
                    DNS1123_SUBDOMAIN,
                    "ServiceAccount name",
                )
            if name in names:
                self.error(join_path(item, "name"), f"duplicate grant name {name!r}")
            if len(self.errors) == before and name is not None:
                names.add(name)
                out.append(ImagePullerGrant(name, projects, pullers, account))
        return tuple(out)

    def rule(
        self, raw: object, path: str, default_source: str | None, default_scope: NamespaceScope
    ) -> Rule | None:
        body = self.mapping(raw, path, FIELDS["rule"])
        if not isinstance(raw, Mapping):
            return None
        errors_before = len(self.errors)
        name = self.string(
            body.get("name"), join_path(path, "name"), DNS1123_LABEL, "rule name (a DNS label)", 63
        )
        registries = self.strings(
            body.get("registries"), join_path(path, "registries"), self.registry_pattern
        )
        secrets = self.secrets(body.get("secrets"), join_path(path, "secrets"), default_source)
        scope = (
            self.scope(body["namespaces"], join_path(path, "namespaces"))
            if body.get("namespaces") is not None
            else default_scope
        )
        accounts = self.service_accounts(
            body.get("serviceAccounts"), join_path(path, "serviceAccounts")
        )
        subset = self.boolean(
            body.get("credentialSubset"), join_path(path, "credentialSubset"), False
        )
        if subset and not registries and "registries" not in body:
            self.error(
                join_path(path, "credentialSubset"),
                "needs registries: without them every auths entry is granted",
            )
        raw_failure = body.get("onFailure") or "Warn"
        on_failure: FailureAction = "Deny" if raw_failure == "Deny" else "Warn"
        if raw_failure not in ("Warn", "Deny"):
            self.error(join_path(path, "onFailure"), f"must be Warn or Deny, got {raw_failure!r}")
        if "registries" in body and not registries and len(self.errors) == errors_before:
            self.error(
                join_path(path, "registries"),
                "is empty; omit it to match with the secrets' own auths keys",
            )
        if len(self.errors) != errors_before or name is None:
            return None
        return Rule(
            name=name,
            secrets=secrets,
            registries=registries,
            namespaces=scope,
            service_accounts=accounts,
            credential_subset=subset,
            on_failure=on_failure,
        )

    def registry_pattern(self, value: str, path: str) -> str | None:
        try:
            check_pattern(value)
        except InvalidPattern as exc:
            self.error(path, str(exc))
            return None
        return value  # kept as written: explain and metrics show the operator's own text

    def secrets(
        self, value: object, path: str, default_source: str | None
    ) -> tuple[SecretRef, ...]:
        items = self.sequence(value, path)
        if value is None or (isinstance(value, list) and not items):
            self.error(path, "at least one secret is required")
        refs: list[SecretRef] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            raw = {"name": item} if isinstance(item, str) else item  # "- corp-pull" shorthand
            body = self.mapping(raw, item_path, FIELDS["secret"])
            if not isinstance(raw, Mapping):
                continue
            name = self.string(
                body.get("name"), join_path(item_path, "name"), DNS1123_SUBDOMAIN, "Secret name"
            )
            namespace = default_source
            if body.get("namespace") is not None:
                namespace = self.string(
                    body["namespace"],
                    join_path(item_path, "namespace"),
                    DNS1123_LABEL,
                    "namespace name",
                    63,
                )
            elif default_source is None:
                self.error(
                    join_path(item_path, "namespace"),
                    "is required when defaults.sourceNamespace is not set",
                )
            target = name
            if body.get("targetName") is not None:
                target = self.string(
                    body["targetName"],
                    join_path(item_path, "targetName"),
                    DNS1123_SUBDOMAIN,
                    "Secret name",
                )
            if name and namespace and target:
                refs.append(SecretRef(name=name, namespace=namespace, target_name=target))
        return tuple(refs)

    def scope(self, value: object, path: str) -> NamespaceScope:
        body = self.mapping(value, path, FIELDS["namespaces"])
        include = self.strings(body.get("include"), join_path(path, "include"), self.name_glob)
        if body.get("include") == []:
            self.error(join_path(path, "include"), "is empty, so the rule reaches no namespace")
        exclude = self.strings(body.get("exclude"), join_path(path, "exclude"), self.name_glob)
        selector = None
        if body.get("selector") is not None:
            selector = self.selector(body["selector"], join_path(path, "selector"))
        return NamespaceScope(include=include or ("*",), exclude=exclude, selector=selector)

    def name_glob(self, value: str, path: str) -> str | None:
        if not is_valid_glob(value):
            self.error(path, f"{value!r} is not a valid glob")
            return None
        return value

    def selector(self, value: object, path: str) -> LabelSelector:
        body = self.selector_body(value, path)
        requirements: list[Requirement] = []
        labels = self.mapping(body.get("matchLabels"), join_path(path, "matchLabels"), None)
        for key, label_value in labels.items():
            key_path = join_path(join_path(path, "matchLabels"), str(key))
            if self.label_key(key, key_path) and self.label_value(label_value, key_path):
                requirements.append(Requirement(str(key), "In", frozenset({str(label_value)})))
        for index, raw in enumerate(
            self.sequence(body.get("matchExpressions"), join_path(path, "matchExpressions"))
        ):
            expr_path = f"{join_path(path, 'matchExpressions')}[{index}]"
            expr = self.mapping(raw, expr_path, FIELDS["matchExpression"])
            if not isinstance(raw, Mapping):
                continue
            expr_key = expr.get("key")
            operator = _operator(expr.get("operator"))
            values = self.sequence(expr.get("values"), join_path(expr_path, "values"))
            ok = self.label_key(expr_key, join_path(expr_path, "key"))
            if operator is None:
                self.error(
                    join_path(expr_path, "operator"),
                    f"must be one of {', '.join(OPERATORS)}, got {expr.get('operator')!r}",
                )
                ok = False
            elif operator in ("In", "NotIn") and not values:
                self.error(join_path(expr_path, "values"), f"must be non-empty for {operator}")
                ok = False
            elif operator in ("Exists", "DoesNotExist") and values:
                self.error(join_path(expr_path, "values"), f"must be empty for {operator}")
                ok = False
            for value_index, item in enumerate(values):
                ok = (
                    self.label_value(item, f"{join_path(expr_path, 'values')}[{value_index}]")
                    and ok
                )
            if ok and operator is not None:
                requirements.append(
                    Requirement(str(expr_key), operator, frozenset(str(v) for v in values))
                )
        return LabelSelector(tuple(requirements))

    def selector_body(self, value: object, path: str) -> Mapping[str, Any]:
        """A selector, with a hint when labels were written where ``matchLabels`` belongs."""
        allowed = FIELDS["selector"]
        looks_like_labels = (
            isinstance(value, Mapping)
            and bool(value)
            and not any(key in allowed for key in value)
            and all(isinstance(v, str | int) for v in value.values())
        )
        if isinstance(value, Mapping) and looks_like_labels:
            example = ", ".join(f"{k}: {v}" for k, v in list(value.items())[:2])
            for key in value:
                self.error(
                    join_path(path, str(key)),
                    f"unknown field (did you mean matchLabels: {{{example}}}?)",
                )
            return {}
        return self.mapping(value, path, allowed)

    def label_key(self, key: object, path: str) -> bool:
        if not isinstance(key, str) or not key:
            self.error(path, "label key must be a non-empty string")
            return False
        if not is_label_key(key):
            self.error(path, f"{key!r} is not a valid label key")
            return False
        return True

    def label_value(self, value: object, path: str) -> bool:
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.error(path, f"label value must be a string, not {kind_of(value)}")
            return False
        text = str(value)
        if not is_label_value(text):
            self.error(path, f"{text!r} is not a valid label value")
            return False
        return True

    def service_accounts(self, value: object, path: str) -> ServiceAccountScope:
        body = self.mapping(value, path, FIELDS["serviceAccounts"])
        names = self.strings(body.get("names"), join_path(path, "names"), self.name_glob)
        backfill = self.boolean(body.get("backfill"), join_path(path, "backfill"), False)
        if backfill and not names:
            self.error(
                join_path(path, "backfill"), "needs names: which ServiceAccounts to backfill"
            )
        return ServiceAccountScope(names=names, backfill=backfill)

    def cross_rule_checks(self, rules: Sequence[tuple[int, Rule]]) -> None:
        """Checks across rules; ``rules`` pairs each rule with its index in the document."""
        seen: set[str] = set()
        targets: dict[str, SecretRef] = {}
        for index, rule in rules:
            if rule.name in seen:
                self.error(f"rules[{index}].name", f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
            for position, ref in enumerate(rule.secrets):
                other = targets.setdefault(ref.target_name, ref)
                if (other.namespace, other.name) != (ref.namespace, ref.name):
                    self.error(
                        f"rules[{index}].secrets[{position}]",
                        f"copy name {ref.target_name!r} would come from both {other.source} and "
                        f"{ref.source}; give one of them a different targetName",
                    )


def _operator(value: object) -> Operator | None:
    return next((op for op in OPERATORS if op == value), None)
