"""``pullsecret-injector certs generate``: a CA and a serving certificate for the webhook.

For the chart's *provided* certificate mode and for local runs: the serving certificate
covers every DNS form of the Service (``svc``, ``svc.ns``, ``svc.ns.svc``,
``svc.ns.svc.cluster.local``) plus any ``--host``/IP given.
"""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certs.files import write_atomic
from certs.pki import issue, new_ca, service_hosts

__all__ = ["register"]

KEY_MODE = 0o600
CERT_MODE = 0o644


def register(sub: Any) -> None:
    certs = sub.add_parser("certs", help="certificate tooling for the webhook's TLS")
    certs_sub = certs.add_subparsers(required=True, metavar="ACTION")
    generate = certs_sub.add_parser(
        "generate", help="write ca.crt, ca.key, tls.crt and tls.key for a webhook Service"
    )
    generate.add_argument("--service", required=True, help="webhook Service name")
    generate.add_argument("--namespace", required=True, help="namespace of the Service")
    generate.add_argument("--out", required=True, type=Path, help="output directory")
    generate.add_argument(
        "--host", action="append", default=[], help="extra DNS name or IP (repeatable)"
    )
    generate.add_argument("--days", type=int, default=365, help="serving certificate lifetime")
    generate.add_argument("--ca-days", type=int, default=3650, help="CA lifetime")
    generate.add_argument("--cluster-domain", default="cluster.local")
    generate.set_defaults(command=_generate)


def _generate(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    hosts = [*service_hosts(args.service, args.namespace, args.cluster_domain), *args.host]
    ca = new_ca(f"{args.service}.{args.namespace} webhook CA", now, args.ca_days)
    leaf = issue(ca, hosts[2], now=now, days=args.days, hosts=hosts)
    out: Path = args.out
    write_atomic(out / "ca.crt", ca.cert_pem, CERT_MODE)
    write_atomic(out / "ca.key", ca.key_pem, KEY_MODE)
    write_atomic(out / "tls.crt", leaf.cert_pem, CERT_MODE)
    write_atomic(out / "tls.key", leaf.key_pem, KEY_MODE)
    print(f"wrote {out}/ca.crt, ca.key, tls.crt, tls.key for: {', '.join(hosts)}")
    print(f"caBundle: {base64.b64encode(ca.cert_pem).decode()}")
    return 0
