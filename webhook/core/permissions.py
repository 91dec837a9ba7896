"""What each component needs the API server to allow, for a given policy, and how to fix a gap.

Least privilege is derived from the policy when the chart is rendered; a live edit of the
policy ConfigMap can then ask for more than the release grants (a new source namespace, a
new copy name, a rule that backfills ServiceAccounts). Instead of failing quietly, every such
gap is named exactly: which component lacks which verbs on which resource, which rules need
it, and what to change. The same list serves two edges: the running components report the
permissions their refused watches needed (admission warning, Event, metric), and
``validate-policy --cluster`` asks the API server about every one of them before an edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from webhook.core.policy import Policy

__all__ = [
    "Component",
    "Need",
    "copy_need",
    "needs",
    "source_namespace_need",
    "source_secret_need",
]

Component = Literal["webhook", "controller"]

READ = ("get", "list", "watch")

_SOURCE_FIX = (
    "helm upgrade with this policy in the chart's values (the chart grants read access in "
    "every source namespace the policy names; with existingPolicyConfigMap, add the "
    "namespace to rbac.extraSourceNamespaces)"
)
_COPY_FIX = (
    "helm upgrade with this policy in the chart's values (copy names become the RBAC "
    "resourceNames), or add the name to rbac.managedSecretNames"
)


@dataclass(frozen=True, slots=True)
class Need:
    """One permission a component needs, and why."""

    component: Component
    verbs: tuple[str, ...]
    resource: str
    namespace: str = ""
    """``""``: in every namespace (a cluster-wide request)."""
    name: str = ""
    """``""``: any object (not limited to one name)."""
    group: str = ""
    rules: tuple[str, ...] = ()
    """Policy rules that need it (empty: the product itself)."""
    fix: str = ""

    @property
    def permission(self) -> str:
        """``get/list/watch secrets "corp-pull" in namespace pull-secrets``."""
        what = self.resource if not self.group else f"{self.resource}.{self.group}"
        named = f' "{self.name}"' if self.name else ""
        where = f"in namespace {self.namespace}" if self.namespace else "in all namespaces"
        return f"{'/'.join(self.verbs)} {what}{named} {where}"

    def describe(self) -> str:
        """The sentence operators see in Events and logs: what, for whom, and the fix."""
        rules = f" (needed by rule {', '.join(self.rules)})" if self.rules else ""
        return f"the {self.component} may not {self.permission}{rules}; fix: {self.fix}"

    def brief(self) -> str:
        """The same, short enough for an admission warning (256 characters in all)."""
        return (
            f"the {self.component} may not {self.permission} (RBAC: see the PermissionMissing "
            "Event on the policy ConfigMap)"
        )


def source_namespace_need(policy: Policy, component: Component, namespace: str) -> Need:
    """Reading every Secret of a source namespace: a new source secret works at once."""
    return Need(
        component,
        READ,
        "secrets",
        namespace=namespace,
        rules=_rules_reading(policy, namespace),
        fix=_SOURCE_FIX,
    )


def source_secret_need(policy: Policy, component: Component, namespace: str, name: str) -> Need:
    """Reading one source Secret (namespaces where the chart grants names only)."""
    return Need(
        component,
        READ,
        "secrets",
        namespace=namespace,
        name=name,
        rules=_rules_reading(policy, namespace, name),
        fix=_SOURCE_FIX,
    )


def copy_need(policy: Policy, component: Component, name: str) -> Need:
    """Watching the copies called ``name`` in every namespace (and, for the controller, keeping
    them true: update, patch and delete, by name)."""
    verbs = READ if component == "webhook" else (*READ, "update", "patch", "delete")
    rules = tuple(r.name for r in policy.rules if any(s.target_name == name for s in r.secrets))
    return Need(component, verbs, "secrets", name=name, rules=rules, fix=_COPY_FIX)


def needs(policy: Policy, component: Component) -> list[Need]:
    """Every permission ``component`` needs for ``policy`` beyond its fixed ones (the policy
    ConfigMap, namespaces, Events, its Lease), in the order an operator would fix them."""
    out: list[Need] = []
    for namespace in sorted(policy.source_namespaces()):
        out.append(source_namespace_need(policy, component, namespace))
    out.extend(copy_need(policy, component, name) for name in sorted(policy.managed_names()))
    if component == "webhook":
        out.append(Need(component, ("create",), "secrets", fix="set webhook.writeCopies=true"))
        return out
    out.append(Need(component, ("create",), "secrets", fix="keep rbac.create=true"))
    backfill = tuple(r.name for r in policy.rules if r.service_accounts.backfill)
    if backfill:
        out.append(
            Need(
                component,
                (*READ, "patch"),
                "serviceaccounts",
                rules=backfill,
                fix="set rbac.serviceAccountBackfill=true (or helm upgrade with this policy in "
                "the chart's values)",
            )
        )
    if policy.image_puller_grants:
        out.append(
            Need(
                component,
                (*READ, "create", "delete"),
                "rolebindings",
                group="rbac.authorization.k8s.io",
                rules=tuple(g.name for g in policy.image_puller_grants),
                fix="set rbac.openshiftImagePuller=true",
            )
        )
    return out


def _rules_reading(policy: Policy, namespace: str, name: str = "") -> tuple[str, ...]:
    return tuple(
        rule.name
        for rule in policy.rules
        if any(s.namespace == namespace and (not name or s.name == name) for s in rule.secrets)
    )
