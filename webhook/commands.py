"""Subcommands beyond the offline policy tools (each imports its module lazily)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the operational subcommands to ``sub`` (an argparse subparsers action)."""
    del sub

