"""Located validation: walk a decoded YAML document, collecting every problem with its path.

An operator fixing a broken policy edit wants every mistake at once, each with where it is
(``rules[2].registries[0]: ...``), and a misspelt key must be an error (a typo such as
``registires`` must not silently widen or narrow a rule). ``Located`` holds those generic
checks; ``webhook.core.policy`` is the schema walk built on them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Located", "PolicyError", "join_path", "kind_of"]


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One located validation problem."""

    path: str
    """Where: ``rules[2].registries[0]``; ``(yaml)`` for a syntax error."""
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Located:
    """Error collection plus the shape checks every schema walk needs."""

    def __init__(self) -> None:
        self.errors: list[PolicyError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(PolicyError(path or "(root)", message))

    # -- generic shape helpers -------------------------------------------------------------

    def mapping(self, value: object, path: str, allowed: Sequence[str] | None) -> Mapping[str, Any]:
        """``allowed=None`` accepts any keys (label maps); otherwise unknown keys are errors."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be a mapping, not {kind_of(value)}")
            return {}
        if allowed is None:
            return value
        for key in value:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                self.error(
                    join_path(path, str(key)),
                    "unknown field" + (f" (did you mean {hint!r}?)" if hint else ""),
                )
        return value

    def sequence(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {kind_of(value)}")
            return []
        return value

    def string(
        self,
        value: object,
        path: str,
        pattern: re.Pattern[str] | None = None,
        what: str = "",
        max_length: int = 253,
    ) -> str | None:
        if not isinstance(value, str) or value == "":
            self.error(
                path,
                "must be a non-empty string"
                if value in (None, "")
                else f"must be a string, not {kind_of(value)}",
            )
            return None
        if len(value) > max_length:
            self.error(path, f"must be at most {max_length} characters")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(path, f"{value!r} is not a valid {what}")
            return None
        return value

    def boolean(self, value: object, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, not {kind_of(value)}")
            return default
        return value

    def strings(
        self, value: object, path: str, check: Callable[[str, str], str | None]
    ) -> tuple[str, ...]:
        out: list[str] = []
        for index, item in enumerate(self.sequence(value, path)):
            item_path = f"{path}[{index}]"
            if not isinstance(item, str) or not item:
                self.error(item_path, "must be a non-empty string")
                continue
            checked = check(item, item_path)
            if checked is not None:
                out.append(checked)
        return tuple(out)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _closest(key: str, allowed: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None
