"""Kubernetes label selectors and namespace-name globs, evaluated in memory.

The policy decides which namespaces a rule reaches with the same selector language operators
already use in ``namespaceSelector`` fields, so its semantics must be exactly Kubernetes':
``matchLabels`` and every ``matchExpressions`` entry must all hold, ``NotIn`` and
``DoesNotExist`` hold when the key is absent, and an empty selector selects everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from webhook.core.registry import glob_match

__all__ = ["LabelSelector", "NamespaceScope", "Requirement"]

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in self.values
        return present if self.operator == "In" else not present


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``matchLabels`` folded into ``In`` requirements: one list, one evaluation rule."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)


@dataclass(frozen=True, slots=True)
class NamespaceScope:
    """Which namespaces a rule reaches: name globs and a label selector, all must agree."""

    include: tuple[str, ...] = ("*",)
    """Namespace name globs (``*``, ``?``, ``[a-z]``); at least one must match."""
    exclude: tuple[str, ...] = ()
    """Namespace name globs that are never reached, whatever else matches."""
    selector: LabelSelector | None = None
    """Namespace label selector; ``None`` means labels do not matter."""

    @property
    def needs_labels(self) -> bool:
        return self.selector is not None and bool(self.selector.requirements)

    def reads_only(self, key: str) -> bool:
        """Does the selector look at no label but ``key`` (or at none)?"""
        return self.selector is None or all(r.key == key for r in self.selector.requirements)

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if any(glob_match(pattern, namespace) for pattern in self.exclude):
            return False
        if not any(glob_match(pattern, namespace) for pattern in self.include):
            return False
        return self.selector is None or self.selector.matches(labels)
