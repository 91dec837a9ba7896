"""``pullsecret-injector`` and ``kubectl pullsecret``: the command line.

Exit codes are part of the interface: 0 success, 1 the policy (or the object, or the
cluster) fails — an invalid policy, a denied object, a namespace missing its copy — and 2
unusable input or a question that cannot be asked (unreadable files, bad arguments, no
access to the cluster, an unreachable API server).

``kubectl-pullsecret`` is the same parser with the commands an operator runs against a
cluster (``status``, ``explain``, ``validate-policy``); both follow kubectl's conventions:
``-n/--namespace``, ``--kubeconfig``, ``--context``, ``-o``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["kubectl_main", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]

_DESCRIPTION = "Give every Pod and ServiceAccount exactly the image pull secrets it needs."


def main(argv: Sequence[str] | None = None) -> int:
    return _run(_parser("pullsecret-injector", operational=True), argv)


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """``kubectl pullsecret ...``: kubectl finds ``kubectl-pullsecret`` on PATH."""
    return _run(_parser("kubectl pullsecret", operational=False), argv)


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except BrokenPipeError:  # `| head`
        return EXIT_OK


def _parser(prog: str, *, operational: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_status(sub)
    _add_explain(sub)
    _add_validate_policy(sub)
    if operational:
        from webhook import commands  # noqa: PLC0415 - keeps `--help` fast

        commands.register(sub)
    return parser


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    """kubectl's connection flags, and how to find the release when discovery cannot."""
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--webhook-configuration",
        metavar="NAME",
        help="the release's MutatingWebhookConfiguration (default: the only one with a webhook "
        "named *.pullsecret-injector.io)",
    )
    parser.add_argument(
        "--release-namespace",
        metavar="NS",
        help="namespace the release runs in (default: its webhook Service's)",
    )
    parser.add_argument(
        "--policy-configmap",
        metavar="[NS/]NAME",
        help="policy ConfigMap (default: as the controller reports it, else <release>-policy)",
    )


_VALIDATE_EPILOG = """\
--cluster also asks the API server, before you apply the policy, whether the running
release may do everything it needs: SubjectAccessReviews for the ServiceAccounts its webhook
and controller Deployments run as, and a server-side dry-run create as the webhook for each
copy name (the chart's admission policy admits only the names it rendered). Needs: get/list
on mutatingwebhookconfigurations, configmaps and deployments, create subjectaccessreviews,
impersonate the webhook's ServiceAccount.

exit codes: 0 valid (and, with --cluster, every permission held); 1 invalid, or a permission
is missing (each is printed with the rules that need it and the fix); 2 unreadable file, or
the cluster cannot be asked (no access, unreachable, no release found).
"""


def _add_validate_policy(sub: Any) -> None:
    validate = sub.add_parser(
        "validate-policy",
        help="check a policy file; print every located error (--cluster: and every permission "
        "the running release lacks for it)",
        epilog=_VALIDATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("policy", type=Path, help="policy YAML file")
    validate.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: what the policy implies for RBAC (source namespaces and secrets, copy "
        "names, backfill, image-puller grants), the facts the Helm chart derives its Roles from",
    )
    validate.add_argument(
        "--cluster",
        action="store_true",
        help="also check the policy against the permissions of the release running in the "
        "cluster (live edit, or helm upgrade first?)",
    )
    validate.add_argument(
        "-n",
        "--namespace",
        dest="release_namespace",
        metavar="NS",
        help="with --cluster: the release namespace (as helm -n; default: its webhook Service's)",
    )
    _cluster_options(validate)
    validate.set_defaults(command=_validate_policy)


_STATUS_EPILOG = """\
Reads only (get/list): the webhook configuration, the status and policy ConfigMaps,
namespaces, the policy's source Secrets, Secrets with a managed name, ServiceAccounts.

exit codes: 0 all good; 1 something is wrong (a namespace lacks a copy, a copy is stale or
held by a Secret we do not own, a source is missing, the policy is invalid); 2 cannot ask
(no access, API server unreachable, no release found).
"""


def _add_status(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="the policy in force and every namespace's copies, read from the live cluster",
        description="The policy in force as the controller reports it, then one line per "
        "namespace: copies expected and present, stale copies, Secrets we do not own holding "
        "a managed name, ServiceAccounts lacking their secret, and why a namespace is out of "
        "scope.",
        epilog=_STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = status.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="only this namespace")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (the default)"
    )
    status.add_argument("-o", "--output", choices=("wide", "json", "yaml"), help="output format")
    _cluster_options(status)
    status.set_defaults(command=_status)


_EXPLAIN_EPILOG = """\
OBJECT is a file (Pod, ServiceAccount or workload YAML) or TYPE/NAME of a live object
(pod/web, sa/default, deploy/api): then the object, its namespace's labels, the policy
(unless --policy), its source Secrets and the copies present are read from the cluster.
A file without --policy also reads the policy and Secrets from the cluster.

exit codes: 0 admitted; 1 denied; 2 unusable input or cluster not readable.
"""


def _add_explain(sub: Any) -> None:
    explain = sub.add_parser(
        "explain",
        help="show what the webhook would do with an object, and why",
        epilog=_EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("object", metavar="OBJECT", help="a YAML file, or TYPE/NAME")
    explain.add_argument("--policy", type=Path, help="policy YAML file (offline)")
    explain.add_argument("-n", "--namespace", default="", help="namespace of the object")
    explain.add_argument(
        "--namespace-labels",
        action="append",
        default=[],
        type=_label_argument,
        metavar="K=V[,K=V]",
        help="labels of that namespace (for rules with selectors)",
    )
    explain.add_argument(
        "--secret",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="Secret manifest(s): sources, or copies already in the namespace (repeatable)",
    )
    ephemeral = explain.add_argument_group(
        "kubectl debug", "explain adding ephemeral containers to a running pod"
    )
    ephemeral.add_argument(
        "--ephemeral",
        action="store_true",
        help="the object's spec.ephemeralContainers are being added (pods/ephemeralcontainers "
        "UPDATE), not created with the pod",
    )
    ephemeral.add_argument(
        "--old-object",
        type=Path,
        metavar="FILE",
        help="with --ephemeral: the running pod (default: the object without them)",
    )
    ephemeral.add_argument(
        "--debug-image",
        metavar="IMAGE",
        help="as `kubectl debug --image IMAGE` on the pod (implies --ephemeral)",
    )
    explain.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    _cluster_options(explain)
    explain.set_defaults(command=_explain)


def _label_argument(value: str) -> str:
    """Checked where it is given, so the error names this argument, not the next one."""
    for item in value.split(","):
        key, sep, _ = item.partition("=")
        if item and (not sep or not key):
            raise argparse.ArgumentTypeError(
                f"label {item!r} must be key=value (e.g. --namespace-labels team=payments)"
            )
    return value


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


class _UsageError(Exception):
    pass


_CLUSTER_ONLY = ("kubeconfig", "context", "webhook_configuration", "release_namespace",
                 "policy_configmap")  # fmt: skip


def _validate_policy(args: argparse.Namespace) -> int:
    from webhook.core.permissions import check_document, render_check  # noqa: PLC0415
    from webhook.core.policy import PolicyInvalid, load_policy, trust_warnings  # noqa: PLC0415
    from webhook.core.policyfacts import policy_facts  # noqa: PLC0415

    given = [f"--{name.replace('_', '-')}" for name in _CLUSTER_ONLY if getattr(args, name)]
    if given and not args.cluster:
        print(f"error: {', '.join(given)}: only with --cluster", file=sys.stderr)
        return EXIT_USAGE
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
    for warning in trust_warnings(policy):
        print(f"warning: {warning}", file=sys.stderr)
    facts = policy_facts(policy)
    summary = (
        f"{args.policy}: valid, {facts.rules} rule(s); "
        f"source namespaces: {', '.join(facts.source_namespaces) or 'none'}; "
        f"managed secret names: {', '.join(facts.managed_names) or 'none'}"
    )
    if not args.cluster:
        if args.output == "json":
            print(json.dumps({"valid": True, **facts.to_json()}, indent=2))
        else:
            print(summary)
        return EXIT_OK
    if args.output == "text":
        print(summary, flush=True)
    try:
        check = _check_release(args, policy)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "json":
        document = {"valid": True, **facts.to_json(), "cluster": check_document(check)}
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(render_check(check))
    return EXIT_OK if check.ok else EXIT_FAILED


def _check_release(args: argparse.Namespace, policy: Any) -> Any:
    """Ask the cluster (the k8s shell does the I/O); anything unanswerable is a usage error."""
    from webhook.core.permissions import AccessCheck, count_needs  # noqa: PLC0415
    from webhook.k8s.access import AccessReviewFailed, check_release  # noqa: PLC0415
    from webhook.k8s.secretcreate import ApplyError, connect  # noqa: PLC0415
    from webhook.k8s.status import CannotAsk, locate, release_identities  # noqa: PLC0415

    try:
        cluster = connect(args.kubeconfig, args.context)
        installation = locate(
            cluster.api,
            webhook_configuration=args.webhook_configuration,
            release_namespace=args.release_namespace,
            policy_configmap=args.policy_configmap,
        )
        identities = release_identities(cluster.api, installation)
        missing = check_release(cluster.api, policy, identities)
    except (ApplyError, CannotAsk, AccessReviewFailed) as exc:
        raise _UsageError(str(exc)) from None
    return AccessCheck(
        release=installation.release,
        namespace=installation.namespace,
        identities=identities,
        checked=count_needs(policy, [i.component for i in identities]),
        missing=tuple(missing),
    )


# -- status ---------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from webhook.core.status import render_document, render_table  # noqa: PLC0415
    from webhook.k8s.secretcreate import ApplyError, connect  # noqa: PLC0415
    from webhook.k8s.status import CannotAsk, read_status  # noqa: PLC0415

    try:
        cluster = connect(args.kubeconfig, args.context)
        status = read_status(
            cluster.api,
            namespace=args.namespace,
            webhook_configuration=args.webhook_configuration,
            release_namespace=args.release_namespace,
            policy_configmap=args.policy_configmap,
        )
    except (ApplyError, CannotAsk) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output in ("json", "yaml"):
        document = render_document(status)
        sys.stdout.write(_serialise(document, args.output))
    else:
        sys.stdout.write(render_table(status, wide=args.output == "wide"))
    return EXIT_OK if status.ok else EXIT_FAILED


def _serialise(document: Any, output: str) -> str:
    if output == "yaml":
        import yaml  # noqa: PLC0415

        return str(yaml.safe_dump(document, sort_keys=False))
    return json.dumps(document, indent=2) + "\n"


# -- explain --------------------------------------------------------------------------------

_LIVE = re.compile(r"^(?P<resource>[A-Za-z][A-Za-z0-9.]*)/(?P<name>[a-z0-9][-a-z0-9.]*)$")


def _explain(args: argparse.Namespace) -> int:
    from webhook.core import explain  # noqa: PLC0415
    from webhook.core.policy import PolicyInvalid  # noqa: PLC0415

    try:
        result = _explanation(args)
    except PolicyInvalid as exc:
        print(f"{args.policy}: invalid policy", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return EXIT_USAGE
    except (_UsageError, explain.ExplainInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output == "text":
        sys.stdout.write(explain.render_text(result))
    else:
        sys.stdout.write(_serialise(json.loads(explain.render_json(result)), args.output))
    return EXIT_FAILED if result.plan.deny else EXIT_OK


def _explanation(args: argparse.Namespace) -> Any:
    """Gather the inputs (files, or the cluster) and explain; raises on unusable input."""
    from webhook.core import explain  # noqa: PLC0415
    from webhook.core.policy import load_policy  # noqa: PLC0415

    live = _live_reference(args.object)
    labels = explain.parse_labels(args.namespace_labels)
    secrets = [
        explain.SecretInput(doc, str(path))
        for path in args.secret
        for doc in explain.load_documents(_read(path), str(path))
    ]
    old_object = _one_object(args.old_object) if args.old_object else None
    if args.old_object and not (args.ephemeral or args.debug_image):
        raise _UsageError("--old-object: only with --ephemeral")
    if live is None and args.policy is not None:
        obj = _one_object(Path(args.object))
        inputs: dict[str, Any] = {
            "policy": load_policy(_read(args.policy)),
            "namespace": args.namespace,
            "namespace_labels": labels,
            "secrets": secrets,
        }
    else:
        obj, inputs = _from_cluster(args, live, labels, secrets)
    operation: explain.Operation = "ephemeral" if args.ephemeral or args.debug_image else "create"
    if args.debug_image:
        old_object = old_object or obj
        obj = explain.with_debug_container(obj, args.debug_image)
    return explain.explain(obj=obj, operation=operation, old_object=old_object, **inputs)


def _live_reference(text: str) -> tuple[str, str] | None:
    """``TYPE/NAME`` of a live object, or ``None`` for a file (an existing path wins)."""
    from webhook.core.explain import resource_kind  # noqa: PLC0415

    match = _LIVE.match(text)
    if match is None or Path(text).exists():
        return None
    kind = resource_kind(match["resource"])
    if kind is None:
        raise _UsageError(
            f"{text}: no such file, and {match['resource']!r} is not a resource explain reads "
            "(pod, serviceaccount, deployment, statefulset, daemonset, replicaset, job, cronjob)"
        )
    return kind, match["name"]


def _one_object(path: Path) -> dict[str, Any]:
    from webhook.core.explain import load_documents  # noqa: PLC0415

    objects = load_documents(_read(path), str(path))
    if len(objects) != 1:
        raise _UsageError(f"{path}: expected exactly one object, found {len(objects)}")
    return objects[0]


def _from_cluster(
    args: argparse.Namespace,
    live: tuple[str, str] | None,
    labels: dict[str, str],
    secrets: list[Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The object and everything the decision reads, from the cluster (files still win)."""
    from webhook.core.explain import SecretInput  # noqa: PLC0415
    from webhook.core.policy import load_policy  # noqa: PLC0415
    from webhook.k8s.secretcreate import ApplyError, connect  # noqa: PLC0415
    from webhook.k8s.status import (  # noqa: PLC0415
        CannotAsk,
        locate,
        read_object,
        read_policy,
        read_sources,
    )

    hint = "" if live is not None else " (give --policy FILE to explain offline)"
    try:
        cluster = connect(args.kubeconfig, args.context)
        if live is not None:
            namespace = args.namespace or cluster.namespace
            obj = read_object(cluster.api, live[0], live[1], namespace)
        else:
            obj = _one_object(Path(args.object))
            namespace = args.namespace or str(
                (obj.get("metadata") or {}).get("namespace") or cluster.namespace
            )
        notes: list[str] = []
        try:
            installation = locate(
                cluster.api,
                webhook_configuration=args.webhook_configuration,
                release_namespace=args.release_namespace,
                policy_configmap=args.policy_configmap,
            )
        except CannotAsk as exc:
            if args.policy is None:
                raise
            installation = None
            notes.append(f"webhook configuration not read ({exc}): its scope is not checked")
        if args.policy is not None or installation is None:
            policy = load_policy(_read(args.policy))
        else:
            in_cluster, _, error = read_policy(cluster.api, installation)
            if in_cluster is None:
                raise _UsageError(
                    f"the policy ConfigMap {installation.policy_configmap} holds no valid "
                    f"policy: {error}"
                )
            policy = in_cluster
        found, unread, cluster_labels = read_sources(cluster.api, policy, namespace)
        notes.extend(unread)
    except (ApplyError, CannotAsk) as exc:
        raise _UsageError(f"{exc}{hint}") from None
    if cluster_labels is None:
        notes.append(
            f"namespace {namespace} not found in the cluster: only --namespace-labels apply"
        )
    given = {_where(s.document) for s in secrets}
    cluster_secrets = [SecretInput(doc, "cluster") for doc in found if _where(doc) not in given]
    return obj, {
        "policy": policy,
        "namespace": namespace,
        "namespace_labels": {**(cluster_labels or {}), **labels},
        "secrets": [*secrets, *cluster_secrets],
        "webhook": None if installation is None else installation.webhook,
        "notes": notes,
    }


def _where(secret: dict[str, Any] | Any) -> tuple[str, str]:
    metadata = secret.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


if __name__ == "__main__":
    raise SystemExit(main())
