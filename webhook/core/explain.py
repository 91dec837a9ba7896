"""``explain``: what the webhook would do with an object, and why.

Reads the same policy, the same Secrets and the same object the webhook would see — from
files an operator has on disk, or read from the cluster by the command line — runs the very
``plan`` the webhook runs, and prints each image's normalised repository, the rules and keys
that matched (or why none covers it here), the patch, the ``imagePullSecrets`` the object
ends up with, the copies and the warnings.

Whatever ``explain`` was given but did not use is said in a note, never dropped silently: a
Secret file outside the policy's source namespaces, ``spec.ephemeralContainers`` in a pod
being created (the API server refuses them there).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonpatch
import yaml

from webhook.core.clusterview import ClusterStore, source_from_object, target_from_object
from webhook.core.matcher import RuleIndex
from webhook.core.plan import ImageDecision, Plan, plan
from webhook.core.policy import Policy
from webhook.core.reach import Miss, WebhookScope, rule_miss, webhook_exclusion
from webhook.core.review import AdmissionRequest

__all__ = [
    "DEBUG_CONTAINER",
    "ExplainInputError",
    "Explanation",
    "Operation",
    "SecretInput",
    "Uncovered",
    "explain",
    "load_documents",
    "parse_labels",
    "render_json",
    "render_text",
    "resource_kind",
    "with_debug_container",
]

_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

_RESOURCES = {
    "Pod": ("pod", "pods", "po"),
    "ServiceAccount": ("serviceaccount", "serviceaccounts", "sa"),
    "Deployment": ("deployment", "deployments", "deploy"),
    "StatefulSet": ("statefulset", "statefulsets", "sts"),
    "DaemonSet": ("daemonset", "daemonsets", "ds"),
    "ReplicaSet": ("replicaset", "replicasets", "rs"),
    "Job": ("job", "jobs"),
    "CronJob": ("cronjob", "cronjobs", "cj"),
}
"""Kinds ``explain`` reads from the cluster, by the names kubectl accepts for them."""

Operation = Literal["create", "ephemeral"]
"""``create``: the object being created; ``ephemeral``: ``kubectl debug`` adding ephemeral
containers to a running pod (an UPDATE of ``pods/ephemeralcontainers``)."""

DEBUG_CONTAINER = "debugger"
"""Name of the ephemeral container ``with_debug_container`` adds (``kubectl debug``'s prefix)."""


class ExplainInputError(ValueError):
    """An input that is not what ``explain`` needs; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SecretInput:
    """A Secret manifest given to ``explain``, and where it came from (named in notes)."""

    document: Mapping[str, Any]
    origin: str
    """A file name, or ``cluster``."""


@dataclass(frozen=True, slots=True)
class Uncovered:
    """Why no rule covers an image in this namespace."""

    matching: tuple[Miss, ...]
    """Rules whose patterns match the image but that do not reach the namespace, and why;
    empty when no rule's pattern matches the image at all."""
    unchecked: tuple[str, ...] = ()
    """Rules that match by their secrets' ``auths`` keys but whose secrets were not given."""


@dataclass(frozen=True)
class Explanation:
    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    plan: Plan
    policy: Policy
    operation: Operation = "create"
    image_pull_secrets: tuple[str, ...] = ()
    """The object's ``imagePullSecrets`` once the patch is applied (unchanged without one)."""
    uncovered: Mapping[str, Uncovered] = field(default_factory=dict)
    """By image field (``spec.containers[1]``): why no rule covers that image."""
    notes: tuple[str, ...] = ()
    """What was given but not used, and why."""


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """YAML/JSON documents from a file, with ``kind: List`` flattened."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ExplainInputError(f"{source}: not valid YAML: {exc}") from None
    out: list[dict[str, Any]] = []
    for document in documents:
        if not isinstance(document, dict):
            raise ExplainInputError(f"{source}: each document must be a mapping")
        if document.get("kind") == "List" or str(document.get("kind", "")).endswith("List"):
            out.extend(i for i in document.get("items") or [] if isinstance(i, dict))
        else:
            out.append(document)
    return out


def resource_kind(resource: str) -> str | None:
    """The kind a kubectl resource name means (``po``, ``pods``, ``pod.v1`` -> ``Pod``)."""
    name = resource.lower().split(".", 1)[0]
    return next((kind for kind, names in _RESOURCES.items() if name in names), None)


def with_debug_container(
    pod: Mapping[str, Any], image: str, name: str = DEBUG_CONTAINER
) -> dict[str, Any]:
    """``pod`` as ``kubectl debug --image IMAGE`` would send it: one ephemeral container more."""
    spec = dict(pod.get("spec") or {})
    existing = [c for c in spec.get("ephemeralContainers") or [] if isinstance(c, Mapping)]
    taken = {c.get("name") for c in existing}
    unique, suffix = name, 1
    while unique in taken:
        suffix += 1
        unique = f"{name}-{suffix}"
    spec["ephemeralContainers"] = [*existing, {"name": unique, "image": image}]
    return {**pod, "spec": spec}


def explain(
    policy: Policy,
    obj: Mapping[str, Any],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    secrets: Iterable[SecretInput] = (),
    operation: Operation = "create",
    old_object: Mapping[str, Any] | None = None,
    webhook: WebhookScope | None = None,
    notes: Sequence[str] = (),
) -> Explanation:
    """Plan ``obj`` (a Pod, ServiceAccount or workload with a pod template) as the webhook would.

    ``operation="ephemeral"`` explains adding ``obj``'s ephemeral containers to a running pod:
    ``old_object`` is that pod as it runs (default: ``obj`` without ephemeral containers).
    ``webhook``, when known, is the webhook configuration's namespace scope; ``notes`` are the
    caller's own (what it could not read).
    """
    kind, target = _target(obj, operation)
    metadata = obj.get("metadata") or {}
    namespace = namespace or str(metadata.get("namespace") or "default")
    labels = {"kubernetes.io/metadata.name": namespace, **namespace_labels}
    noted = list(notes)
    store = _store(policy, namespace, labels, secrets, noted)
    if webhook is not None:
        excluded = webhook_exclusion(webhook, namespace, labels)
        if excluded is not None:
            noted.append(
                f"namespace {namespace} is {excluded}: the API server never calls the webhook "
                "for it; what follows is what the webhook would answer a review posted anyway"
            )
    if operation == "ephemeral":
        request = _ephemeral_request(target, old_object, namespace)
    else:
        target = _without_ephemeral_containers(target, noted)
        request = AdmissionRequest(
            kind=kind, operation="CREATE", namespace=namespace, object=target
        )
    decided = plan(policy, request, store)
    return Explanation(
        kind=kind,
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        namespace=namespace,
        labels=labels,
        plan=decided,
        policy=policy,
        operation=operation,
        image_pull_secrets=_after_patch(kind, target, decided),
        uncovered=_uncovered(policy, store, decided.images, namespace, labels),
        notes=tuple(noted),
    )


def _target(obj: Mapping[str, Any], operation: Operation) -> tuple[str, Mapping[str, Any]]:
    """The object the webhook is asked about: a workload stands for its pod template."""
    kind = str(obj.get("kind", ""))
    target: Mapping[str, Any] = obj
    if kind in _TEMPLATE_PATHS:
        if operation == "ephemeral":
            raise ExplainInputError(
                f"ephemeral containers are added to a running Pod, not to a {kind}"
            )
        for key in _TEMPLATE_PATHS[kind]:
            target = target.get(key) or {}
        kind = "Pod"
    if kind not in ("Pod", "ServiceAccount"):
        raise ExplainInputError(
            f"cannot explain a {kind or 'document without kind'}: "
            "expected a Pod, ServiceAccount or a workload with a pod template"
        )
    if operation == "ephemeral" and kind != "Pod":
        raise ExplainInputError("ephemeral containers are added to a running Pod only")
    return kind, target


def _store(
    policy: Policy,
    namespace: str,
    labels: Mapping[str, str],
    secrets: Iterable[SecretInput],
    notes: list[str],
) -> ClusterStore:
    """The view the decision reads, with a note for every Secret it cannot use."""
    store = ClusterStore()
    store.put_namespace(namespace, labels)
    refs = policy.source_refs()
    source_namespaces = policy.source_namespaces()
    managed = policy.managed_names()
    for given in secrets:
        secret_meta = given.document.get("metadata") or {}
        name = str(secret_meta.get("name") or "")
        secret_namespace = secret_meta.get("namespace")
        if secret_namespace is None:
            named = sorted(ns for ns, ref_name in refs if ref_name == name)
            secret_namespace = named[0] if named else None
            if secret_namespace is None:
                notes.append(
                    f"{given.origin}: Secret {name} ignored: it has no namespace and no rule "
                    "names a source secret of that name"
                )
                continue
        used = False
        if secret_namespace in source_namespaces:
            metadata = {**secret_meta, "namespace": secret_namespace}
            store.put_source(source_from_object({**given.document, "metadata": metadata}))
            used = (secret_namespace, name) in refs
        if secret_namespace == namespace and name in managed:
            store.put_target(target_from_object(given.document))
            used = True
        if not used:
            notes.append(f"{given.origin}: {_ignored(policy, secret_namespace, name, namespace)}")
    return store


def _ignored(policy: Policy, secret_namespace: str, name: str, namespace: str) -> str:
    where = f"Secret {secret_namespace}/{name} ignored"
    sources = ", ".join(sorted(policy.source_namespaces())) or "none"
    if secret_namespace in policy.source_namespaces():
        named = sorted(ref for ns, ref in policy.source_refs() if ns == secret_namespace)
        return f"{where}: no rule names it as a source (sources in {secret_namespace}: " + (
            ", ".join(named) + ")"
        )
    if secret_namespace == namespace:
        return f"{where}: {name} is not a copy name the policy manages"
    return (
        f"{where}: {secret_namespace} is not a source namespace of the policy (source "
        f"namespaces: {sources}) nor the namespace explained ({namespace})"
    )


def _without_ephemeral_containers(pod: Mapping[str, Any], notes: list[str]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    if not isinstance(spec, Mapping) or not spec.get("ephemeralContainers"):
        return pod
    notes.append(
        "spec.ephemeralContainers ignored: the API server refuses them when a pod is created; "
        "to explain adding them to a running pod (kubectl debug), use --ephemeral"
    )
    return {**pod, "spec": {k: v for k, v in spec.items() if k != "ephemeralContainers"}}


def _ephemeral_request(
    pod: Mapping[str, Any], old_object: Mapping[str, Any] | None, namespace: str
) -> AdmissionRequest:
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    if old_object is None:
        old_spec = {k: v for k, v in (spec or {}).items() if k != "ephemeralContainers"}
        old_object = {**pod, "spec": old_spec}
    old_names = {
        c.get("name")
        for c in (old_object.get("spec") or {}).get("ephemeralContainers") or []
        if isinstance(c, Mapping)
    }
    added = [
        c
        for c in (spec or {}).get("ephemeralContainers") or []
        if isinstance(c, Mapping) and c.get("name") not in old_names
    ]
    if not added:
        raise ExplainInputError(
            "nothing to explain as an ephemeral-container update: the pod adds no ephemeral "
            "container (give spec.ephemeralContainers, or --debug-image IMAGE)"
        )
    return AdmissionRequest(
        kind="Pod",
        operation="UPDATE",
        sub_resource="ephemeralcontainers",
        namespace=namespace,
        object=pod,
        old_object=old_object,
    )


def _after_patch(kind: str, target: Mapping[str, Any], decided: Plan) -> tuple[str, ...]:
    """Apply the patch, as the API server will, and read the list it leaves."""
    patched = jsonpatch.apply_patch(copy.deepcopy(dict(target)), [dict(op) for op in decided.ops])
    holder = patched if kind == "ServiceAccount" else patched.get("spec") or {}
    entries = holder.get("imagePullSecrets") if isinstance(holder, Mapping) else None
    return tuple(
        str(entry["name"])
        for entry in entries or []
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    )


def _uncovered(
    policy: Policy,
    store: ClusterStore,
    images: Sequence[ImageDecision],
    namespace: str,
    labels: Mapping[str, str],
) -> dict[str, Uncovered]:
    """For each image no rule covers here: does a rule match it elsewhere, and why not here?"""
    index = RuleIndex(policy, store)
    unchecked = tuple(
        rule.name
        for rule in policy.rules
        if rule.matches_from_auths
        and not any(store.source_secret(s.namespace, s.name) for s in rule.secrets)
    )
    out: dict[str, Uncovered] = {}
    for image in images:
        if image.repository is None or image.matches:
            continue
        misses = tuple(
            miss
            for rule_match in index.match(image.repository)
            if (miss := rule_miss(rule_match.rule, namespace, labels)) is not None
        )
        out[image.field] = Uncovered(misses, unchecked)
    return out


# -- rendering ---------------------------------------------------------------------------------


def render_text(explanation: Explanation) -> str:
    decided = explanation.plan
    doing = ": adding ephemeral containers (kubectl debug)"
    lines = [
        f"{explanation.kind} {explanation.name or '(unnamed)'} in namespace "
        f"{explanation.namespace} (labels: {_labels(explanation.labels)})"
        + (doing if explanation.operation == "ephemeral" else ""),
        f"policy: {len(explanation.policy.rules)} rule(s)",
    ]
    if explanation.notes:
        lines.append("notes:")
        lines.extend(f"  {note}" for note in explanation.notes)
    lines.append("")
    for image in decided.images:
        lines.append(f"{image.field} ({image.container}): {image.image}")
        if image.error:
            lines.append(f"  invalid: {image.error}")
            continue
        lines.append(f"  repository: {image.repository}")
        if image.field in explanation.uncovered:
            lines.extend(_uncovered_lines(explanation, image))
        for match in image.matches:
            via = "its registries" if match.via == "registries" else "its secrets' auths keys"
            lines.append(
                f"  rule {match.rule.name}: matched {', '.join(match.patterns)} (from {via})"
            )
        if image.secrets:
            lines.append(f"  secrets: {', '.join(image.secrets)}")
            keys = ", ".join(image.kubelet_keys) or "none"
            if len(image.kubelet_keys) > 1:
                lines.append(
                    "  kubelet would try auths keys, in this order, the next only if the "
                    f"registry refuses one: {keys}"
                )
            else:
                lines.append(f"  kubelet would try auths keys: {keys}")
    if explanation.kind == "ServiceAccount":
        lines.append(
            "serviceaccount rules: " + (", ".join(i.rule for i in decided.injections) or "none")
        )
    lines.append("")
    lines.append("patch:" if decided.ops else "patch: none (object admitted unchanged)")
    lines.extend(f"  {json.dumps(op)}" for op in decided.ops)
    lines.append(
        "imagePullSecrets after admission: " + (", ".join(explanation.image_pull_secrets) or "none")
    )
    if decided.copies:
        lines.append("copies to ensure in the namespace:")
        for spec in decided.copies:
            content = (
                "verbatim"
                if spec.subset is None
                else "only "
                + ", ".join(f"{old}->{new}" if old != new else old for old, new in spec.subset)
            )
            lines.append(f"  {spec.namespace}/{spec.name} <- {spec.source} ({content})")
    if decided.warnings:
        lines.append("warnings:")
        lines.extend(f"  {warning}" for warning in decided.warnings)
    if decided.deny:
        lines.append(f"DENIED: {decided.deny}")
    return "\n".join(lines) + "\n"


def _uncovered_lines(explanation: Explanation, image: ImageDecision) -> list[str]:
    why = explanation.uncovered[image.field]
    if not why.matching:
        lines = [f"  no rule covers this image here: no rule matches {image.repository}"]
    else:
        lines = ["  no rule covers this image here:"]
        lines.extend(
            f"    rule {miss.rule} matches it but does not reach namespace "
            f"{explanation.namespace}: {miss.summary} ({miss.detail})"
            for miss in why.matching
        )
    if why.unchecked:
        lines.append(
            f"    not checked: {', '.join(why.unchecked)} match(es) by their secrets' auths "
            "keys, and those secrets were not given (--secret)"
        )
    return lines


def render_json(explanation: Explanation) -> str:
    decided = explanation.plan
    document = {
        "kind": explanation.kind,
        "name": explanation.name,
        "namespace": explanation.namespace,
        "operation": explanation.operation,
        "allowed": decided.deny is None,
        "deny": decided.deny,
        "notes": list(explanation.notes),
        "images": [_image_json(explanation, image) for image in decided.images],
        "patch": list(decided.ops),
        "imagePullSecrets": list(explanation.image_pull_secrets),
        "copies": [
            {
                "namespace": c.namespace,
                "name": c.name,
                "source": c.source,
                "subset": None if c.subset is None else [list(p) for p in c.subset],
            }
            for c in decided.copies
        ],
        "warnings": list(decided.warnings),
    }
    return json.dumps(document, indent=2) + "\n"


def _image_json(explanation: Explanation, image: ImageDecision) -> dict[str, Any]:
    why = explanation.uncovered.get(image.field)
    return {
        "field": image.field,
        "container": image.container,
        "image": image.image,
        "repository": image.repository,
        "error": image.error,
        "rules": [
            {"rule": m.rule.name, "via": m.via, "patterns": list(m.patterns)} for m in image.matches
        ],
        "uncovered": None
        if why is None
        else {
            "notReaching": [
                {"rule": m.rule, "reason": m.kind, "detail": m.detail} for m in why.matching
            ],
            "unchecked": list(why.unchecked),
        },
        "secrets": list(image.secrets),
        "kubeletKeys": list(image.kubelet_keys),
    }


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``k=v[,k=v]`` arguments into labels; the error names the pair that is not ``k=v``."""
    labels: dict[str, str] = {}
    for pair in pairs:
        for item in pair.split(","):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ExplainInputError(f"label {item!r} must be key=value")
            labels[key] = value
    return labels
