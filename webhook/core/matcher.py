"""Which rules cover an image repository: the kubelet's key matching, indexed.

A rule's patterns behave exactly as the same strings would as keys in a pull secret
(``registry.lookup`` semantics, including the Docker Hub fallback to ``index.docker.io``); a
rule without ``registries`` uses its secrets' own ``auths`` keys as patterns.

Scanning 1,000 rules per image would cost milliseconds, so patterns are bucketed by what a
match requires anyway (same port, same number of host labels) and by their first and last
host labels where those are literal (a glob there stands in as a wildcard, so an image is
looked up in at most four buckets); only a bucket's few candidates are checked, and answers
are memoised per repository.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from webhook.core.clusterview import ClusterView
from webhook.core.policy import Policy, Rule
from webhook.core.registry import (
    DEFAULT_REGISTRY_KEY,
    BucketKey,
    ParsedURL,
    bucket_key,
    candidate_buckets,
    is_default_registry_match,
    normalize_key,
    parse_schemeless,
    patterns_match,
)

__all__ = ["RuleIndex", "RuleMatch"]

Via = Literal["registries", "auths"]
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that covers an image, and the patterns (normalised keys) that made it match."""

    rule: Rule
    via: Via
    patterns: tuple[str, ...]
    """Normalised patterns in kubelet order; ``index.docker.io`` alone for the Hub fallback."""


@dataclass(frozen=True, slots=True)
class _Entry:
    rule_position: int
    normalized: str
    parsed: ParsedURL


class RuleIndex:
    """Immutable index of one policy against one state of the source secrets."""

    def __init__(self, policy: Policy, view: ClusterView) -> None:
        self.policy = policy
        self._buckets: dict[BucketKey, list[_Entry]] = defaultdict(list)
        self._hub_fallback: list[int] = []
        self._via: list[Via] = []
        for position, rule in enumerate(policy.rules):
            patterns = rule.registries or _auths_keys(rule, view)
            self._via.append("registries" if rule.registries else "auths")
            for normalized in sorted({n for p in patterns if (n := normalize_key(p))}):
                parsed = parse_schemeless(normalized)
                if parsed is None:
                    continue
                if normalized == DEFAULT_REGISTRY_KEY:
                    self._hub_fallback.append(position)
                self._buckets[bucket_key(parsed)].append(_Entry(position, normalized, parsed))
        self._memo: dict[str, tuple[RuleMatch, ...]] = {}
        self._memo_lock = threading.Lock()

    def match(self, repository: str) -> tuple[RuleMatch, ...]:
        """Rules covering ``repository`` (an ``ImageRef.repository``), in policy order."""
        cached = self._memo.get(repository)
        if cached is not None:
            return cached
        result = self._match(repository)
        with self._memo_lock:
            if len(self._memo) >= _CACHE_LIMIT:
                self._memo.clear()
            self._memo[repository] = result
        return result

    def _match(self, repository: str) -> tuple[RuleMatch, ...]:
        target = parse_schemeless(repository)
        if target is None:
            return ()
        found: dict[int, list[str]] = defaultdict(list)
        for key in candidate_buckets(target):
            for entry in self._buckets.get(key, ()):
                if patterns_match(entry.parsed, target):
                    found[entry.rule_position].append(entry.normalized)
        if is_default_registry_match(repository):
            for position in self._hub_fallback:
                found.setdefault(position, [DEFAULT_REGISTRY_KEY])
        return tuple(
            RuleMatch(
                rule=self.policy.rules[position],
                via=self._via[position],
                patterns=tuple(sorted(found[position], reverse=True)),
            )
            for position in sorted(found)
        )


def _auths_keys(rule: Rule, view: ClusterView) -> Sequence[str]:
    keys: list[str] = []
    for ref in rule.secrets:
        source = view.source_secret(ref.namespace, ref.name)
        if source is not None and source.config is not None:
            keys.extend(source.config.keys)
    return keys
