"""OpenShift cross-project pulls from the internal registry, decided purely.

``imagePullerGrants`` is ``oc policy add-role-to-group system:image-puller
system:serviceaccounts:<puller> -n <image project>`` done by policy: ``grant_actions`` returns
the RoleBindings to create for every (image project, puller project) pair the grants allow,
and ours to delete when a grant goes. Only bindings we labelled are ever deleted; the shell
(``webhook.k8s.grants``) performs each action as one API call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.policy import Policy
from webhook.core.registry import glob_match

__all__ = [
    "IMAGE_PULLER_ROLE",
    "BindImagePuller",
    "GrantAction",
    "RoleBindingState",
    "UnbindImagePuller",
    "grant_actions",
    "role_binding_state",
]


IMAGE_PULLER_ROLE = "system:image-puller"


@dataclass(frozen=True, slots=True)
class BindImagePuller:
    """RoleBinding in ``namespace`` (the image project) to ``system:image-puller``."""

    namespace: str
    name: str
    grant: str
    subject_kind: str
    """``Group`` (all of a project's ServiceAccounts) or ``ServiceAccount``."""
    subject_name: str
    subject_namespace: str = ""


@dataclass(frozen=True, slots=True)
class UnbindImagePuller:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class RoleBindingState:
    namespace: str
    name: str
    uid: str
    managed: bool
    subjects: tuple[tuple[str, str, str], ...]
    """(kind, name, namespace) of each subject."""


GrantAction = BindImagePuller | UnbindImagePuller


def grant_actions(
    policy: Policy,
    namespaces: Mapping[str, Mapping[str, str]],
    bindings: Iterable[RoleBindingState],
) -> list[GrantAction]:
    """RoleBindings that make ``policy.image_puller_grants`` true, and ours that must go.

    This is ``oc policy add-role-to-group system:image-puller system:serviceaccounts:<a>
    -n <b>`` done by policy: created for every (image project, puller project) pair the
    grants allow, deleted when the grant goes. Only bindings we labelled are ever deleted.
    """
    desired: dict[tuple[str, str], BindImagePuller] = {}
    for grant in policy.image_puller_grants:
        image_projects = [
            ns for ns in namespaces if any(glob_match(p, ns) for p in grant.image_projects)
        ]
        pullers = [ns for ns, labels in namespaces.items() if grant.pullers.matches(ns, labels)]
        for project in image_projects:
            for puller in pullers:
                if puller == project:
                    continue
                binding = _binding(grant.name, project, puller, grant.service_account)
                desired.setdefault((binding.namespace, binding.name), binding)
    actions: list[GrantAction] = []
    existing: dict[tuple[str, str], RoleBindingState] = {}
    for state in bindings:
        existing[(state.namespace, state.name)] = state
        wanted = desired.get((state.namespace, state.name))
        if not state.managed:
            continue
        if wanted is None or state.subjects != _subjects(wanted):
            actions.append(UnbindImagePuller(state.namespace, state.name, state.uid))
            if wanted is not None:
                actions.append(wanted)  # roleRef is immutable: recreate
    actions.extend(b for key, b in desired.items() if key not in existing)
    return actions


def _binding(grant: str, project: str, puller: str, account: str | None) -> BindImagePuller:
    suffix = f"{puller}-{account}" if account else puller
    name = f"pullsecret-injector-image-puller-{suffix}"
    if len(name) > 253:
        name = name[:240] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    if account:
        return BindImagePuller(project, name, grant, "ServiceAccount", account, puller)
    return BindImagePuller(project, name, grant, "Group", f"system:serviceaccounts:{puller}")


def _subjects(binding: BindImagePuller) -> tuple[tuple[str, str, str], ...]:
    return ((binding.subject_kind, binding.subject_name, binding.subject_namespace),)


def role_binding_state(obj: Mapping[str, object]) -> RoleBindingState:
    metadata = obj.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    raw_subjects = obj.get("subjects")
    subjects = tuple(
        (str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace", "") or ""))
        for s in (raw_subjects if isinstance(raw_subjects, list) else [])
        if isinstance(s, Mapping)
    )
    return RoleBindingState(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        managed=isinstance(labels, Mapping) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        subjects=subjects,
    )
