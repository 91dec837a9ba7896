"""Which of a policy's rules can reach a namespace, without trying every rule on it.

The controller decides the copies of every namespace on every pass, and the webhook decides
them for each namespace it has not seen: trying 2,000 rules' globs on each of 50,000
namespaces is 100 million glob matches a pass, which held the controller's interpreter
(and the GIL its writers need) for minutes at a time. Rules are mostly scoped by name
(``team-a-*``, ``payments``), and a name glob only matches names that start with its
literal prefix (the text before its first wildcard). So each rule is filed under the
prefixes of its include globs, and a namespace's candidates are the rules filed under one
of its own prefixes: at most 64 dictionary look-ups, then the full test on those few.

(``webhook.core.matcher.RuleIndex`` is the other half: rules by the images they cover.)
The index only narrows; ``NamespaceScope.matches`` still decides, so answers are exactly
those of trying every rule, in policy order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from webhook.core.policy import Policy, Rule
from webhook.core.registry import glob_literal_prefix

__all__ = ["NamespaceIndex", "namespace_index"]


@dataclass(frozen=True, slots=True)
class NamespaceIndex:
    """A policy's rules filed by the literal prefixes of their include globs."""

    rules: tuple[Rule, ...]
    by_prefix: Mapping[str, tuple[int, ...]]
    """Prefix -> positions (in ``rules``) of the rules with an include glob starting so."""
    longest: int

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> NamespaceIndex:
        filed: dict[str, set[int]] = {}
        for position, rule in enumerate(rules):
            for pattern in rule.namespaces.include:
                prefix = glob_literal_prefix(pattern)
                if prefix is not None:  # a malformed glob matches no namespace
                    filed.setdefault(prefix, set()).add(position)
        return cls(
            rules,
            {prefix: tuple(sorted(positions)) for prefix, positions in filed.items()},
            max(map(len, filed), default=0),
        )

    def candidates(self, namespace: str) -> list[Rule]:
        """Every rule that may reach ``namespace`` (a superset of those that do), in order."""
        positions: set[int] = set()
        for end in range(min(len(namespace), self.longest) + 1):
            filed = self.by_prefix.get(namespace[:end])
            if filed is not None:
                positions.update(filed)
        return [self.rules[position] for position in sorted(positions)]


_latest: list[tuple[Policy, NamespaceIndex]] = []
"""The last policy's index: a one-slot list, replaced whole (one atomic store)."""


def namespace_index(policy: Policy) -> NamespaceIndex:
    """The index of ``policy``'s rules, built once per policy in force.

    One policy is in force at a time, so the last one's index is kept (by identity: two
    equal policies from different reloads simply build it twice).
    """
    for known, index in _latest[:1]:
        if known is policy:
            return index
    index = NamespaceIndex.of(policy.rules)
    _latest[:] = [(policy, index)]
    return index
