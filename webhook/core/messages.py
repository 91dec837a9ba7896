"""Admission warnings as the API server will show them: prefixed, bounded, de-duplicated.

The API server truncates a warning over 256 characters and a client prints every one of them,
so each warning is cut here (with an ellipsis, not mid-sentence by someone else) and a review
carries at most ``MAX_WARNINGS``: a pod with 200 broken images gets 20 lines, not 200.
"""

from __future__ import annotations

from collections.abc import Sequence

from webhook.core.conventions import WARNING_PREFIX

__all__ = ["MAX_WARNINGS", "MAX_WARNING_LENGTH", "add_warning", "denial", "shorten"]

MAX_WARNING_LENGTH = 256
"""The API server truncates longer admission warnings."""
MAX_WARNINGS = 20


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_warning(warnings: list[str], message: str) -> None:
    """Append ``message`` as a prefixed warning unless it is already there or the list is full."""
    text = shorten(WARNING_PREFIX + message, MAX_WARNING_LENGTH)
    if text not in warnings and len(warnings) < MAX_WARNINGS:
        warnings.append(text)


def denial(reasons: Sequence[str]) -> str | None:
    """One denial message from every reason (in order, once each), or ``None`` for none."""
    if not reasons:
        return None
    return WARNING_PREFIX + "; ".join(dict.fromkeys(reasons))
