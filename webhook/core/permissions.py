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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from webhook.core.policy import Policy

__all__ = [
    "AccessCheck",
    "Component",
    "Identity",
    "Missing",
    "Need",
    "check_document",
    "copy_need",
    "count_needs",
    "needs",
    "render_check",
    "source_namespace_need",
    "source_secret_need",
    "upgrade_command",
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


# -- a policy file checked against a running release (validate-policy --cluster) -------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A ServiceAccount the release runs a component as (read from its Deployment)."""

    component: Component
    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True, slots=True)
class Missing:
    """A permission the policy needs that the identity lacks (or a write that is refused)."""

    need: Need
    verbs: tuple[str, ...]
    """The verbs refused (a subset of ``need.verbs``, or ``create`` for a refused write)."""
    detail: str = ""
    """The API server's own words, when it gave some (an admission policy's refusal)."""

    @property
    def permission(self) -> str:
        """The permission as refused: only the verbs the API server said no to."""
        return replace(self.need, verbs=self.verbs).permission

    def __str__(self) -> str:
        rules = f" (needed by rule {', '.join(self.need.rules)})" if self.need.rules else ""
        why = f": {self.detail}" if self.detail else ""
        return f"the {self.need.component} may not {self.permission}{rules}{why}"


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """What ``validate-policy --cluster`` found: the release asked about, and every gap."""

    release: str
    """The Helm release name (``""`` when its objects carry no instance label)."""
    namespace: str
    identities: tuple[Identity, ...]
    checked: int
    """How many permissions were asked about (all components together)."""
    missing: tuple[Missing, ...] = ()

    @property
    def ok(self) -> bool:
        """Every permission held: the policy can be applied live."""
        return not self.missing


def upgrade_command(check: AccessCheck) -> str:
    """The ``helm upgrade`` that grants what is missing: the chart derives RBAC and the
    admission policy from its ``policy`` value, so the edited policy goes into the values
    (README, "Which policy edits are live")."""
    release = check.release or "<release>"
    return (
        f"helm upgrade {release} charts/pullsecret-injector --namespace {check.namespace} "
        "--reuse-values -f values.yaml"
    )


def render_check(check: AccessCheck) -> str:
    """The text report, after the offline summary line: who was asked about, then each
    missing permission with the rules that need it and its fix."""
    who = ", ".join(f"{i.component} as {i.user}" for i in check.identities)
    release = f"release {check.release}" if check.release else "the release"
    lines = [f"{release} in namespace {check.namespace} ({who}):"]
    if check.ok:
        lines.append(f"  every permission the policy needs is held ({check.checked} checked)")
        return "\n".join(lines) + "\n"
    lines.append(
        f"  {len(check.missing)} of {check.checked} permission(s) the policy needs are missing:"
    )
    for missing in check.missing:
        lines.append(f"  - {missing}")
        lines.append(f"    fix: {missing.need.fix}")
    lines.append(
        "to grant them, put this policy under `policy:` in the release's values.yaml and run:"
    )
    lines.append(f"  {upgrade_command(check)}")
    return "\n".join(lines) + "\n"


def check_document(check: AccessCheck) -> dict[str, Any]:
    """The ``cluster`` member of ``validate-policy --cluster --output json``."""
    return {
        "release": check.release,
        "namespace": check.namespace,
        "identities": {i.component: i.user for i in check.identities},
        "checked": check.checked,
        "ok": check.ok,
        "missing": [_missing_document(m) for m in check.missing],
        "upgrade": "" if check.ok else upgrade_command(check),
    }


def _missing_document(missing: Missing) -> dict[str, Any]:
    need = missing.need
    return {
        "component": need.component,
        "verbs": list(missing.verbs),
        "resource": need.resource,
        "group": need.group,
        "namespace": need.namespace,
        "name": need.name,
        "rules": list(need.rules),
        "permission": missing.permission,
        "detail": missing.detail,
        "fix": need.fix,
    }


def count_needs(policy: Policy, components: Sequence[Component]) -> int:
    """How many permissions ``validate-policy --cluster`` asks about for ``components``."""
    return sum(len(needs(policy, c)) for c in components)
