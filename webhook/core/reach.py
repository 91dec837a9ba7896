"""Why a namespace is, or is not, reached: by the webhook configuration, and by each rule.

Two gates stand between a namespace and its pull secrets, and an operator asking "why not
this one?" needs to know which one closed:

* the MutatingWebhookConfiguration's ``namespaceSelector`` (the chart puts the release
  namespace, ``kube-system`` and ``admissionWebhook.excludeNamespaces`` there as a
  ``kubernetes.io/metadata.name NotIn`` expression, and the opt-out label
  ``pullsecret-injector.io/inject NotIn [false]``): the API server never calls the webhook
  for a namespace it excludes;
* each rule's ``namespaces`` (include and exclude globs, a label selector), which decide the
  copies a namespace should hold.

Both answers are given as ``Miss`` values that say which gate, which entry and why, so
``status`` and ``explain`` print the same reason. The deployment's exclusions themselves are
one rule, ``webhook.core.scope.Exclusions`` (the webhook, the controller and ``explain`` obey
it whether or not a request passed the selector); ``exclusions_of`` reads that rule back
from a release's webhook configuration, for tools that run outside the release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from webhook.core.conventions import NAMESPACE_NAME_LABEL, OPT_OUT_KEY, OPT_OUT_VALUE
from webhook.core.policy import Rule
from webhook.core.registry import glob_match
from webhook.core.scope import Exclusions
from webhook.core.selectors import OPERATORS, Requirement

__all__ = [
    "Miss",
    "MissKind",
    "WebhookScope",
    "describe_requirement",
    "exclusion_miss",
    "exclusions_of",
    "rule_miss",
    "webhook_exclusion",
    "webhook_scope",
]

MissKind = Literal["excluded-by-name", "not-included", "excluded-by-label", "opted-out", "no-rules"]


@dataclass(frozen=True, slots=True)
class Miss:
    """Why one gate does not let a namespace through."""

    kind: MissKind
    detail: str
    """One phrase naming the entry that decided (a glob, a selector expression)."""
    rule: str = ""
    """The rule that does not reach the namespace; empty for the other gates."""
    gate: str = "webhook configuration"
    """Which gate, when no rule: the webhook configuration, or the release's exclusions."""

    @property
    def summary(self) -> str:
        """The short form a table shows."""
        return {
            "excluded-by-name": "excluded by name",
            "not-included": "not included by name",
            "excluded-by-label": "excluded by label",
            "opted-out": "opted out",
            "no-rules": "the policy has no rules",
        }[self.kind]

    def __str__(self) -> str:
        if self.kind == "no-rules":
            return self.summary
        who = f"rule {self.rule}" if self.rule else self.gate
        return f"{self.summary} ({who}: {self.detail})"


@dataclass(frozen=True, slots=True)
class WebhookScope:
    """The ``namespaceSelector`` of the webhook entry that admits pods for us."""

    configuration: str
    """Name of the MutatingWebhookConfiguration it comes from."""
    requirements: tuple[Requirement, ...] = ()
    unreadable: tuple[str, ...] = ()
    """Expressions this reader does not understand (reported, never guessed at)."""


def webhook_scope(configuration: Mapping[str, Any]) -> WebhookScope:
    """Read the namespace selector of a MutatingWebhookConfiguration (its first webhook).

    The chart renders exactly one webhook entry; a configuration written by hand with several
    is read by its first, which is the one the chart's own name points at.
    """
    name = str((configuration.get("metadata") or {}).get("name") or "")
    webhooks = configuration.get("webhooks") or []
    entry = webhooks[0] if webhooks and isinstance(webhooks[0], Mapping) else {}
    selector = entry.get("namespaceSelector") or {}
    requirements: list[Requirement] = []
    unreadable: list[str] = []
    labels = selector.get("matchLabels") or {}
    if isinstance(labels, Mapping):
        for key, value in labels.items():
            requirements.append(Requirement(str(key), "In", frozenset({str(value)})))
    for expression in selector.get("matchExpressions") or []:
        operator = next((op for op in OPERATORS if op == expression.get("operator")), None)
        if operator is None or not expression.get("key"):
            unreadable.append(str(dict(expression)))
            continue
        values = frozenset(str(v) for v in expression.get("values") or [])
        requirements.append(Requirement(str(expression["key"]), operator, values))
    return WebhookScope(name, tuple(requirements), tuple(unreadable))


def exclusion_miss(
    exclusions: Exclusions, namespace: str, labels: Mapping[str, str]
) -> Miss | None:
    """Why the release's own exclusions keep every rule out of ``namespace``, or ``None``."""
    why = exclusions.namespace(namespace, labels)
    if why is None:
        return None
    kind: MissKind = "excluded-by-name" if namespace in exclusions.namespaces else "opted-out"
    return Miss(kind, why, gate="exclusions")


def exclusions_of(scope: WebhookScope, release_namespace: str) -> Exclusions:
    """The release's ``Exclusions``, as its webhook configuration states them."""
    names: list[str] = []
    opt_out = OPT_OUT_KEY
    for requirement in scope.requirements:
        if requirement.key == NAMESPACE_NAME_LABEL and requirement.operator == "NotIn":
            names.extend(sorted(requirement.values))
        elif _is_opt_out(requirement):
            opt_out = requirement.key
    return Exclusions.of(release_namespace, names, opt_out)


def webhook_exclusion(
    scope: WebhookScope, namespace: str, labels: Mapping[str, str]
) -> Miss | None:
    """Why the API server never calls the webhook for ``namespace``; ``None`` if it does."""
    labels = {NAMESPACE_NAME_LABEL: namespace, **labels}
    for requirement in scope.requirements:
        if requirement.matches(labels):
            continue
        if requirement.key == NAMESPACE_NAME_LABEL:
            return Miss("excluded-by-name", describe_requirement(requirement))
        if _is_opt_out(requirement) and labels.get(requirement.key) in requirement.values:
            return Miss("opted-out", f"label {requirement.key}={labels[requirement.key]}")
        return Miss("excluded-by-label", _unmet(requirement, labels))
    return None


def _is_opt_out(requirement: Requirement) -> bool:
    """The chart's opt-out expression: ``<optOutLabel> NotIn [false]`` (the key is a value)."""
    return requirement.operator == "NotIn" and (
        requirement.key == OPT_OUT_KEY or requirement.values == {OPT_OUT_VALUE}
    )


def rule_miss(rule: Rule, namespace: str, labels: Mapping[str, str]) -> Miss | None:
    """Why ``rule`` does not reach ``namespace``; ``None`` when it does.

    Checked in the order ``NamespaceScope.matches`` decides: exclusions win, then the include
    globs, then the selector.
    """
    scope = rule.namespaces
    excluded = next((p for p in scope.exclude if glob_match(p, namespace)), None)
    if excluded is not None:
        return Miss("excluded-by-name", f"exclude {excluded!r}", rule.name)
    if not any(glob_match(p, namespace) for p in scope.include):
        return Miss("not-included", f"include {_globs(scope.include)}", rule.name)
    if scope.selector is not None:
        for requirement in scope.selector.requirements:
            if not requirement.matches(labels):
                return Miss("excluded-by-label", _unmet(requirement, labels), rule.name)
    return None


def describe_requirement(requirement: Requirement) -> str:
    """A requirement as ``kubectl`` writes a selector: ``team in (payments)``, ``!env``."""
    values = ",".join(sorted(requirement.values))
    if requirement.operator == "In":
        return f"{requirement.key} in ({values})"
    if requirement.operator == "NotIn":
        return f"{requirement.key} notin ({values})"
    if requirement.operator == "Exists":
        return requirement.key
    return f"!{requirement.key}"


def _unmet(requirement: Requirement, labels: Mapping[str, str]) -> str:
    if requirement.key in labels:
        found = f"{requirement.key}={labels[requirement.key]}"
    else:
        found = f"no label {requirement.key}"
    return f"selector {describe_requirement(requirement)} not matched: {found}"


def _globs(patterns: Sequence[str]) -> str:
    return ", ".join(repr(p) for p in patterns)
