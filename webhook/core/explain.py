"""``explain``: what the webhook would do with an object, and why, offline.

Reads the same policy file, the same Secret manifests and the same object an operator has
on disk, runs the very ``plan`` the webhook runs, and prints each image's normalised
repository, the rules and keys that matched, the patch, the copies and the warnings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from webhook.core.clusterview import ClusterStore, source_from_object, target_from_object
from webhook.core.plan import Plan, plan
from webhook.core.policy import Policy
from webhook.core.review import AdmissionRequest

__all__ = [
    "ExplainInputError",
    "Explanation",
    "explain",
    "load_documents",
    "parse_labels",
    "render_json",
    "render_text",
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


class ExplainInputError(ValueError):
    """An input file that is not what ``explain`` needs; the message says which and why."""


@dataclass(frozen=True)
class Explanation:
    kind: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    plan: Plan
    policy: Policy


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


def explain(
    policy: Policy,
    obj: Mapping[str, Any],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    secrets: Iterable[Mapping[str, Any]] = (),
) -> Explanation:
    """Plan ``obj`` (a Pod, ServiceAccount or workload with a pod template) offline."""
    kind = str(obj.get("kind", ""))
    target: Mapping[str, Any] = obj
    if kind in _TEMPLATE_PATHS:
        for key in _TEMPLATE_PATHS[kind]:
            target = target.get(key) or {}
        kind = "Pod"
    if kind not in ("Pod", "ServiceAccount"):
        raise ExplainInputError(
            f"cannot explain a {kind or 'document without kind'}: "
            "expected a Pod, ServiceAccount or a workload with a pod template"
        )
    metadata = obj.get("metadata") or {}
    namespace = namespace or str(metadata.get("namespace") or "default")
    store = ClusterStore()
    labels = {"kubernetes.io/metadata.name": namespace, **namespace_labels}
    store.put_namespace(namespace, labels)
    source_namespaces = policy.source_namespaces()
    for secret in secrets:
        secret_meta = secret.get("metadata") or {}
        secret_namespace = secret_meta.get("namespace")
        if secret_namespace in source_namespaces or secret_namespace is None:
            ns = secret_namespace or next(iter(sorted(source_namespaces)), "default")
            normalised = {**secret, "metadata": {**secret_meta, "namespace": ns}}
            store.put_source(source_from_object(normalised))
        if secret_namespace == namespace:
            store.put_target(target_from_object(secret))
    request = AdmissionRequest(kind=kind, operation="CREATE", namespace=namespace, object=target)
    return Explanation(
        kind=kind,
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        namespace=namespace,
        labels=labels,
        plan=plan(policy, request, store),
        policy=policy,
    )


def render_text(explanation: Explanation) -> str:
    decided = explanation.plan
    lines = [
        f"{explanation.kind} {explanation.name or '(unnamed)'} in namespace "
        f"{explanation.namespace} (labels: {_labels(explanation.labels)})",
        f"policy: {len(explanation.policy.rules)} rule(s)",
        "",
    ]
    for image in decided.images:
        lines.append(f"{image.field} ({image.container}): {image.image}")
        if image.error:
            lines.append(f"  invalid: {image.error}")
            continue
        lines.append(f"  repository: {image.repository}")
        if not image.matches:
            lines.append("  no rule covers this image here")
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
    if decided.copies:
        lines.append("copies to ensure in the namespace:")
        for copy in decided.copies:
            content = (
                "verbatim"
                if copy.subset is None
                else "only "
                + ", ".join(f"{old}->{new}" if old != new else old for old, new in copy.subset)
            )
            lines.append(f"  {copy.namespace}/{copy.name} <- {copy.source} ({content})")
    if decided.warnings:
        lines.append("warnings:")
        lines.extend(f"  {warning}" for warning in decided.warnings)
    if decided.deny:
        lines.append(f"DENIED: {decided.deny}")
    return "\n".join(lines) + "\n"


def render_json(explanation: Explanation) -> str:
    decided = explanation.plan
    document = {
        "kind": explanation.kind,
        "name": explanation.name,
        "namespace": explanation.namespace,
        "allowed": decided.deny is None,
        "deny": decided.deny,
        "images": [
            {
                "field": image.field,
                "container": image.container,
                "image": image.image,
                "repository": image.repository,
                "error": image.error,
                "rules": [
                    {"rule": m.rule.name, "via": m.via, "patterns": list(m.patterns)}
                    for m in image.matches
                ],
                "secrets": list(image.secrets),
                "kubeletKeys": list(image.kubelet_keys),
            }
            for image in decided.images
        ],
        "patch": list(decided.ops),
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


def _labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
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
