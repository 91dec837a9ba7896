"""``pullsecret-injector``: the command line.

Exit codes are part of the interface: 0 success, 1 the policy (or the object) fails — an
invalid policy, a denied object — and 2 unusable input (unreadable files, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except BrokenPipeError:  # `| head`
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullsecret-injector",
        description="Give every Pod and ServiceAccount exactly the image pull secrets it needs.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    validate = sub.add_parser(
        "validate-policy", help="check a policy file; print every located error"
    )
    validate.add_argument("policy", type=Path, help="policy YAML file")
    validate.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: what the policy implies for RBAC (source namespaces and secrets, copy "
        "names, backfill, image-puller grants), the facts the Helm chart derives its Roles from",
    )
    validate.set_defaults(command=_validate_policy)

    explain = sub.add_parser(
        "explain", help="show what the webhook would do with an object, and why (offline)"
    )
    explain.add_argument("object", type=Path, help="Pod, ServiceAccount or workload YAML")
    explain.add_argument("--policy", type=Path, required=True, help="policy YAML file")
    explain.add_argument("--namespace", default="", help="namespace of the object")
    explain.add_argument(
        "--namespace-labels",
        action="append",
        default=[],
        metavar="K=V[,K=V]",
        help="labels of that namespace (for rules with selectors)",
    )
    explain.add_argument(
        "--secret",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Secret manifest(s) of the source namespace (repeatable)",
    )
    explain.add_argument("--output", choices=("text", "json"), default="text")
    explain.set_defaults(command=_explain)

    from webhook import commands  # noqa: PLC0415 - keeps `--help` fast

    commands.register(sub)
    return parser


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


class _UsageError(Exception):
    pass


def _validate_policy(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from webhook.core.policy import PolicyInvalid, load_policy  # noqa: PLC0415
    from webhook.core.policyfacts import policy_facts  # noqa: PLC0415

    try:
        policy = load_policy(_read(args.policy))
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyInvalid as exc:
        if args.output == "json":
            errors = [{"path": e.path, "message": e.message} for e in exc.errors]
            print(json.dumps({"valid": False, "errors": errors}, indent=2))
        print(f"{args.policy}: {len(exc.errors)} error(s)", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_FAILED
    facts = policy_facts(policy)
    if args.output == "json":
        print(json.dumps({"valid": True, **facts.to_json()}, indent=2))
        return EXIT_OK
    print(
        f"{args.policy}: valid, {facts.rules} rule(s); "
        f"source namespaces: {', '.join(facts.source_namespaces) or 'none'}; "
        f"managed secret names: {', '.join(facts.managed_names) or 'none'}"
    )
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from webhook.core import explain  # noqa: PLC0415
    from webhook.core.policy import PolicyInvalid, load_policy  # noqa: PLC0415

    try:
        policy = load_policy(_read(args.policy))
        objects = explain.load_documents(_read(args.object), str(args.object))
        secrets = [
            doc for path in args.secret for doc in explain.load_documents(_read(path), str(path))
        ]
        labels = explain.parse_labels(args.namespace_labels)
        if len(objects) != 1:
            raise _UsageError(f"{args.object}: expected exactly one object, found {len(objects)}")
        result = explain.explain(
            policy,
            objects[0],
            namespace=args.namespace,
            namespace_labels=labels,
            secrets=secrets,
        )
    except PolicyInvalid as exc:
        print(f"{args.policy}: invalid policy", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_USAGE
    except (_UsageError, explain.ExplainInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    render = explain.render_json if args.output == "json" else explain.render_text
    sys.stdout.write(render(result))
    return EXIT_FAILED if result.plan.deny else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
