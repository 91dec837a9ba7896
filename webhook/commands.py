"""Subcommands beyond the offline policy tools (each imports its module lazily)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from webhook.core.secretcreate import Built

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
    _register_secret(sub)
    _register_cleanup(sub)


def _controller(args: argparse.Namespace) -> int:
    del args
    from webhook.k8s.controller import run  # noqa: PLC0415 - not the CLI's path
    from webhook.settings import Settings  # noqa: PLC0415

    return run(Settings.from_env())


# -- cleanup --------------------------------------------------------------------------------

_CLEANUP_EPILOG = """\
After `helm uninstall`: copies stay so that running pods can still pull. This removes what
pullsecret-injector made, found by its managed-by label and the controller's Lease: every copy
(never a Secret another copy names as its source), the ServiceAccount entries naming those
copies (other entries stay, in order), the image-puller RoleBindings, the Lease and the
certificate Secrets. Deletes carry the uid they were decided on; nothing else is touched.

exit codes: 0 done (or nothing to do); 1 some action failed; 2 cannot read the cluster.
"""


def _register_cleanup(sub: Any) -> None:
    cleanup = sub.add_parser(
        "cleanup",
        help="remove every copy, ServiceAccount entry and RoleBinding we made (after uninstall)",
        epilog=_CLEANUP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cleanup.add_argument("--dry-run", action="store_true", help="print, change nothing")
    cleanup.add_argument("--kubeconfig", help="kubeconfig file")
    cleanup.add_argument("--context", help="kubeconfig context")
    cleanup.set_defaults(command=_cleanup)


def _cleanup(args: argparse.Namespace) -> int:
    from webhook.k8s.cleanup import CleanupError, apply_cleanup, read_cleanup  # noqa: PLC0415
    from webhook.k8s.secretcreate import ApplyError, connect  # noqa: PLC0415

    try:
        cluster = connect(args.kubeconfig, args.context)
        plan = read_cleanup(cluster.api)
        for line in plan.kept:
            print(line)
        if args.dry_run:
            for action in plan.actions:
                print(f"{action} (dry run)")
            return _EXIT_OK
        lines = apply_cleanup(cluster.api, plan)
    except (ApplyError, CleanupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    for line in lines:
        print(line)
    if not plan.actions:
        print("nothing of pullsecret-injector's is left")
    return _EXIT_FAILED if any(": failed" in line for line in lines) else _EXIT_OK


# -- secret create ----------------------------------------------------------------------------

_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE = 0, 1, 2  # as in webhook.cli

_CREATE_EPILOG = """\
sources (exactly one):
  --docker-config FILE    a config.json (Docker, Podman auth.json) or legacy .dockercfg;
                          '-' reads standard input. Registries whose credentials are in
                          credHelpers/credsStore (not in the file) are skipped with a warning.
  --server/--username     one registry; the password from --password-stdin (preferred),
                          a prompt on a terminal, or --password.

--registry keeps only part of a file (repeatable), as a policy's credentialSubset does: an
entry inside the pattern keeps its key; an entry broader than the pattern (quay.io for
quay.io/team) is re-keyed to the pattern, so the Secret only works for what was asked.

exit codes: 0 done; 1 the API server refused or failed (--apply); 2 unusable input.
"""


def _register_secret(sub: Any) -> None:
    secret = sub.add_parser("secret", help="pull-secret tooling")
    secret_sub = secret.add_subparsers(required=True, metavar="ACTION")
    create = secret_sub.add_parser(
        "create",
        help="build a kubernetes.io/dockerconfigjson (or dockercfg) Secret; print or apply it",
        description="Build a pull Secret the kubelet accepts (checked by the webhook's own\n"
        "decoder) from a Docker config file or from one registry's credentials, and print\n"
        "it (YAML or JSON) or apply it.",
        epilog=_CREATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("--name", required=True, help="Secret name")
    create.add_argument(
        "--namespace",
        help="Secret namespace (printing: omitted when not given; --apply: default from "
        "the kubeconfig context, else 'default')",
    )
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--docker-config",
        metavar="FILE",
        help="Docker config file (config.json or .dockercfg); '-' for standard input",
    )
    source.add_argument("--server", help="registry (host[:port][/path]) the credentials are for")
    create.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="HOST[/PATH]",
        help="with --docker-config: keep only this registry (repeatable)",
    )
    create.add_argument("--username", help="with --server: user name")
    password = create.add_mutually_exclusive_group()
    password.add_argument(
        "--password-stdin", action="store_true", help="with --server: read the password from stdin"
    )
    password.add_argument(
        "--password", help="with --server: the password (visible to other users; avoid)"
    )
    create.add_argument("--email", help="with --server: e-mail address (optional)")
    create.add_argument(
        "--type",
        choices=("dockerconfigjson", "dockercfg"),
        default="dockerconfigjson",
        help="kubernetes.io/dockerconfigjson (default) or the legacy kubernetes.io/dockercfg",
    )
    output = create.add_mutually_exclusive_group()
    output.add_argument(
        "-o", "--output", choices=("yaml", "json"), default="yaml", help="print format"
    )
    output.add_argument(
        "--apply", action="store_true", help="create or replace the Secret in the cluster"
    )
    create.add_argument("--kubeconfig", help="with --apply: kubeconfig file")
    create.add_argument("--context", help="with --apply: kubeconfig context")
    create.set_defaults(command=_secret_create)


class _Usage(Exception):
    pass


def _secret_create(args: argparse.Namespace) -> int:
    from webhook.core import secretcreate  # noqa: PLC0415 - fast --help

    try:
        _check_combinations(args)
        if args.docker_config is not None:
            label = "<stdin>" if args.docker_config == "-" else args.docker_config
            content = _read_source(args.docker_config)
            source = secretcreate.parse_docker_config_file(content, label)
            built = secretcreate.from_docker_config(
                source,
                args.registry,
                name=args.name,
                namespace=args.namespace,
                secret_format=args.type,
                label=label,
            )
        else:
            built = secretcreate.from_credentials(
                args.server,
                args.username,
                _password(args),
                args.email,
                name=args.name,
                namespace=args.namespace,
                secret_format=args.type,
            )
    except secretcreate.SecretCreateError as exc:
        _warn(exc.warnings)
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except _Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    _warn(built.warnings)
    if args.apply:
        return _apply(args, built)
    if args.output == "json":
        sys.stdout.write(json.dumps(built.manifest, indent=2) + "\n")
    else:
        import yaml  # noqa: PLC0415

        sys.stdout.write(yaml.safe_dump(built.manifest, sort_keys=False))
    return _EXIT_OK


def _check_combinations(args: argparse.Namespace) -> None:
    if args.docker_config is not None:
        extra = [
            flag
            for flag, value in (
                ("--username", args.username),
                ("--password", args.password),
                ("--password-stdin", args.password_stdin),
                ("--email", args.email),
            )
            if value
        ]
        if extra:
            raise _Usage(f"{', '.join(extra)}: only with --server, not with --docker-config")
    else:
        if args.registry:
            raise _Usage("--registry: only with --docker-config (it filters the file)")
        if not args.username:
            raise _Usage("--server needs --username")
    if not args.apply and (args.kubeconfig or args.context):
        raise _Usage("--kubeconfig, --context: only with --apply")


def _read_source(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from None


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        value: str = sys.stdin.read()
        # as `docker login --password-stdin`: one trailing newline is not part of it
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            raise _Usage("missing password: standard input was empty")
        return value
    if args.password is not None:
        print(
            "warning: --password is visible to other users of this machine and kept in "
            "shell history; prefer --password-stdin",
            file=sys.stderr,
        )
        if not args.password:
            raise _Usage("missing password: --password is empty")
        return str(args.password)
    if sys.stdin.isatty():
        value = getpass.getpass(f"Password for {args.username} at {args.server}: ")
        if value:
            return value
    raise _Usage("missing password: give it on standard input with --password-stdin")


def _warn(warnings: Iterable[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _apply(args: argparse.Namespace, built: Built) -> int:
    from webhook.k8s.secretcreate import ApplyError, apply_secret, connect  # noqa: PLC0415

    try:
        cluster = connect(args.kubeconfig, args.context)
        manifest = dict(built.manifest)
        manifest["metadata"] = {
            **manifest["metadata"],
            "namespace": args.namespace or cluster.namespace,
        }
        outcome = apply_secret(cluster.api, manifest, built.secret_strings())
    except ApplyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE if exc.usage else _EXIT_FAILED
    namespace = manifest["metadata"]["namespace"]
    keys = ", ".join(built.keys)
    secret_type = built.manifest["type"]
    print(f"secret/{args.name} {outcome} in namespace {namespace} ({secret_type}; {keys})")
    return _EXIT_OK
