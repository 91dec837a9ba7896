"""Subcommands beyond the offline policy tools (each imports its module lazily)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the operational subcommands to ``sub`` (an argparse subparsers action)."""
    from certs.cli import register as register_certs  # noqa: PLC0415 - fast --help

    register_certs(sub)
    controller = sub.add_parser(
        "controller",
        help="run the leader-elected sync controller (settings from PSI_* environment)",
    )
    controller.set_defaults(command=_controller)


def _controller(args: argparse.Namespace) -> int:
    del args
    from webhook.k8s.controller import run  # noqa: PLC0415 - pulls in the Kubernetes client
    from webhook.settings import Settings  # noqa: PLC0415

    return run(Settings.from_env())
