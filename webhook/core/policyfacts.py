"""What a policy implies for the permissions it needs: the reference the chart is checked against.

The Helm chart has to derive RBAC at render time, so it carries its own reading of the policy
(the ``pullsecret-injector.policyFacts`` helper). That is a second copy of policy logic, and a
copy drifts. These facts are the first copy: computed from the *parsed* ``Policy`` (so the
defaults, the ``- name`` shorthand and ``targetName`` are applied exactly as the webhook applies
them), printed by ``pullsecret-injector validate-policy --output json``, and compared with the
chart's rendered RBAC for every valid policy fixture in the repository (``tests/chart``).

Keys are camelCase on purpose: they are the names the chart's helper uses, so the comparison
reads one vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from webhook.core.policy import ImagePullerGrant, Policy
from webhook.core.selectors import NamespaceScope

__all__ = ["PolicyFacts", "policy_facts"]


class _Requirement(TypedDict):
    key: str
    operator: str
    values: list[str]


class _Scope(TypedDict):
    include: list[str]
    exclude: list[str]
    selector: list[_Requirement] | None


class _Grant(TypedDict):
    name: str
    imageProjects: list[str]
    pullers: _Scope
    serviceAccount: str | None


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """The permissions-relevant consequences of a policy, sorted so that output is stable."""

    rules: int
    """Number of rules (for the human summary)."""
    source_namespaces: tuple[str, ...]
    """Namespaces the source Secrets are read from (each needs a read-only Role)."""
    source_secrets: Mapping[str, tuple[str, ...]]
    """Source Secret names per source namespace (the Role's ``resourceNames`` where the chart
    grants by name)."""
    managed_names: tuple[str, ...]
    """Copy names in target namespaces: the only Secrets the components may watch and write
    outside the source namespaces."""
    backfill: bool
    """Some rule backfills existing ServiceAccounts: the controller needs to list, watch and
    patch them."""
    image_puller_grants: tuple[ImagePullerGrant, ...]
    """OpenShift image-puller grants: the controller needs to manage RoleBindings."""

    def to_json(self) -> dict[str, Any]:
        """The document ``validate-policy --output json`` prints."""
        return {
            "rules": self.rules,
            "sourceNamespaces": list(self.source_namespaces),
            "sourceSecrets": {ns: list(names) for ns, names in self.source_secrets.items()},
            "managedNames": list(self.managed_names),
            "backfill": self.backfill,
            "imagePullerGrants": [_grant(g) for g in self.image_puller_grants],
        }


def policy_facts(policy: Policy) -> PolicyFacts:
    """Derive the facts from a validated policy (pure; no cluster needed)."""
    by_namespace: dict[str, set[str]] = {}
    for namespace, name in policy.source_refs():
        by_namespace.setdefault(namespace, set()).add(name)
    return PolicyFacts(
        rules=len(policy.rules),
        source_namespaces=tuple(sorted(policy.source_namespaces())),
        source_secrets={ns: tuple(sorted(names)) for ns, names in sorted(by_namespace.items())},
        managed_names=tuple(sorted(policy.managed_names())),
        backfill=any(rule.service_accounts.backfill for rule in policy.rules),
        image_puller_grants=tuple(sorted(policy.image_puller_grants, key=lambda g: g.name)),
    )


def _grant(grant: ImagePullerGrant) -> _Grant:
    return {
        "name": grant.name,
        "imageProjects": list(grant.image_projects),
        "pullers": _scope(grant.pullers),
        "serviceAccount": grant.service_account,
    }


def _scope(scope: NamespaceScope) -> _Scope:
    selector = None
    if scope.selector is not None:
        selector = [
            _Requirement(key=r.key, operator=r.operator, values=sorted(r.values))
            for r in scope.selector.requirements
        ]
    return {"include": list(scope.include), "exclude": list(scope.exclude), "selector": selector}
