"""What each namespace's copy of a pull secret should contain, and who owns it.

One function decides the desired copies of a namespace (``desired_copies``) and one renders
a copy (``render_copy``); the admission path and the sync controller both call them, so a
copy created at pod admission is byte-identical to the one the controller would write.

Credential subset: with ``credentialSubset: true`` a copy carries only the ``auths`` entries
the rule's ``registries`` grant. An entry whose key lies inside a granted pattern is kept as
is; an entry whose key is *broader* than a granted pattern (key ``quay.io``, grant
``quay.io/team``) is re-keyed to the pattern, so the kubelet uses it only for what was
granted; any other entry is dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.clusterview import ClusterView, SourceSecret
from webhook.core.conventions import (
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    NAMESPACE_NAME_LABEL,
    RULES_ANNOTATION,
    SOURCE_ANNOTATION,
)
from webhook.core.dockerconfig import encode_secret_data
from webhook.core.namespaceindex import namespace_index
from webhook.core.policy import Policy, Rule, SecretRef
from webhook.core.registry import DEFAULT_REGISTRY_KEY, normalize_key, urls_match

__all__ = [
    "CopiesEnsured",
    "CopySpec",
    "applicable_rules",
    "content_hash",
    "desired_copies",
    "grant_subset",
    "render_copy",
]


KeyMapping = tuple[tuple[str, str], ...]
"""(key in the source, key in the copy) pairs."""


@dataclass(frozen=True, slots=True)
class CopiesEnsured:
    """What creating a decision's missing copies came to."""

    warnings: tuple[str, ...] = ()
    refused: frozenset[str] = frozenset()
    """Copy names the API server refused outright (forbidden, invalid, quota): they are not
    injected, or the object would name a Secret that will not exist. A timeout or an
    unreachable API server is not a refusal: the name stays, the controller creates the copy
    within seconds, and the warning says so."""


@dataclass(frozen=True, slots=True)
class CopySpec:
    """The copy ``name`` that must exist in ``namespace``."""

    namespace: str
    name: str
    source_namespace: str
    source_name: str
    rules: tuple[str, ...]
    """Rules that want this copy here (informational annotation)."""
    subset: KeyMapping | None
    """``None``: a verbatim copy; otherwise which entries to carry, under which keys."""

    @property
    def source(self) -> str:
        return f"{self.source_namespace}/{self.source_name}"

    @property
    def is_source_itself(self) -> bool:
        """A pod in the source namespace uses the source secret directly: nothing to copy."""
        return (self.namespace, self.name) == (self.source_namespace, self.source_name)


def applicable_rules(
    policy: Policy, namespace: str, labels: Mapping[str, str] | None
) -> list[Rule]:
    """The rules that reach ``namespace``; ``labels`` is ``None`` when they are not known,
    and then a rule that selects by labels does not apply (its selector is never evaluated
    against guessed labels)."""
    if policy.exclusions.namespace(namespace, labels) is not None:
        return []
    candidates = namespace_index(policy).candidates(namespace)
    if labels is None:
        # The API server sets the name label on every namespace: that one is always known.
        name_only = {NAMESPACE_NAME_LABEL: namespace}
        return [
            rule
            for rule in candidates
            if rule.namespaces.reads_only(NAMESPACE_NAME_LABEL)
            and rule.namespaces.matches(namespace, name_only)
        ]
    return [rule for rule in candidates if rule.namespaces.matches(namespace, labels)]


def grant_subset(keys: Sequence[str], patterns: Sequence[str]) -> KeyMapping:
    """Which entries a copy restricted to ``patterns`` keeps, and under which key.

    Source keys are visited in the kubelet's own order (reverse lexicographic of the
    normalised key), so when two entries would land on the same key in the copy, the one the
    kubelet would have tried first on the source wins.
    """
    normalized = {key: normalize_key(key) for key in keys}
    ordered = sorted(
        (key for key in keys if normalized[key] is not None),
        key=lambda key: str(normalized[key]),
        reverse=True,
    )
    pairs: list[tuple[str, str]] = []
    for key in ordered:
        norm = str(normalized[key])
        if any(_within(norm, pattern) for pattern in patterns):
            pairs.append((key, key))
            continue
        pairs.extend((key, pattern) for pattern in patterns if _narrows(norm, pattern))
    return tuple(dict.fromkeys(pairs))


_HUB_HOSTS = frozenset({DEFAULT_REGISTRY_KEY, "docker.io"})


def _within(normalized_key: str, pattern: str) -> bool:
    """The key's scope lies inside the pattern's: keep the entry under its own key."""
    if urls_match(pattern, normalized_key):
        return True
    # Docker Hub credentials live under index.docker.io (used by the kubelet's fallback),
    # while patterns name the registry as images do (docker.io): the same registry.
    return normalized_key == DEFAULT_REGISTRY_KEY and normalize_key(pattern) in _HUB_HOSTS


def _narrows(normalized_key: str, pattern: str) -> bool:
    """The pattern lies inside the key's scope: re-key the entry to the pattern."""
    if urls_match(normalized_key, pattern):
        return True
    host, _, path = (normalize_key(pattern) or "").partition("/")
    return normalized_key == DEFAULT_REGISTRY_KEY and host in _HUB_HOSTS and bool(path)


def desired_copies(
    policy: Policy, namespace: str, labels: Mapping[str, str] | None, view: ClusterView
) -> dict[str, CopySpec]:
    """Every copy ``namespace`` should hold, by copy name, merged across its rules.

    Several rules may want the same copy (validation guarantees one source per copy name):
    a verbatim copy wins over subsets, and subsets are united.
    """
    wanted: dict[str, tuple[SecretRef, list[str], KeyMapping | None]] = {}
    for rule in applicable_rules(policy, namespace, labels):
        for ref in rule.secrets:
            subset: KeyMapping | None = None
            if rule.credential_subset:
                source = view.source_secret(ref.namespace, ref.name)
                keys = source.config.keys if source and source.config else ()
                subset = grant_subset(keys, rule.registries)
            if ref.target_name in wanted:
                _, rules, current = wanted[ref.target_name]
                rules.append(rule.name)
                if current is None or subset is None:
                    merged = None
                else:
                    merged = tuple(dict.fromkeys(current + subset))
                wanted[ref.target_name] = (ref, rules, merged)
            else:
                wanted[ref.target_name] = (ref, [rule.name], subset)
    return {
        name: CopySpec(
            namespace=namespace,
            name=name,
            source_namespace=ref.namespace,
            source_name=ref.name,
            rules=tuple(rules),
            subset=subset,
        )
        for name, (ref, rules, subset) in wanted.items()
    }


def render_copy(spec: CopySpec, source: SourceSecret) -> dict[str, Any]:
    """The Secret object for ``spec`` (raises ``ValueError`` if the source is unusable)."""
    if source.config is None:
        raise ValueError(f"source {spec.source} is not a usable pull secret: {source.problem}")
    if spec.subset is None:
        secret_type = source.secret_type
        data = {source.config.data_key(): source.data[source.config.data_key()]}
    else:
        subset = source.config.subset_pairs(spec.subset)
        secret_type = subset.secret_type()
        data = encode_secret_data(subset)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {
                SOURCE_ANNOTATION: spec.source,
                HASH_ANNOTATION: content_hash(secret_type, data),
                RULES_ANNOTATION: ",".join(sorted(spec.rules)),
            },
        },
        "data": data,
    }


def content_hash(secret_type: str, data: Mapping[str, str]) -> str:
    """Hash of what a copy carries: compares copies without keeping their data around."""
    canonical = json.dumps({"type": secret_type, "data": dict(data)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
