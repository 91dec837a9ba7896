"""Runtime settings, read once from ``PSI_*`` environment variables.

The container, the chart and the e2e harness all configure the process the same way: through
the environment (``PSI_POLICY_CONFIGMAP=...``), so a Deployment's ``env`` is the whole story.
Defaults are the safe production choice; each field says why it exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from webhook.core.conventions import OPT_OUT_KEY
from webhook.core.scope import Exclusions

__all__ = ["Settings", "SettingsError"]

PREFIX = "PSI_"


class SettingsError(ValueError):
    """An environment variable that does not parse; the message names it."""


@dataclass(frozen=True)
class Settings:
    policy_namespace: str = ""
    """Namespace of the policy ConfigMap (the release namespace in the chart)."""
    policy_configmap: str = ""
    """Name of the policy ConfigMap; watched live. Empty: use ``policy_file``."""
    policy_key: str = "policy.yaml"
    """Data key inside the ConfigMap that holds the policy YAML."""
    policy_file: str = ""
    """A policy file instead of a ConfigMap (local runs, tests); re-read when it changes."""
    exclude_namespaces: str = ""
    """Comma-separated namespaces no rule reaches, besides kube-system, kube-public,
    kube-node-lease and ``policy_namespace`` (the chart's ``admissionWebhook.excludeNamespaces``:
    the webhook configuration skips them too, but the controller and forged reviews do not
    pass through it)."""
    opt_out_label: str = OPT_OUT_KEY
    """Label/annotation key whose value ``"false"`` opts a namespace or object out (the chart's
    ``admissionWebhook.optOutLabel``)."""
    kubeconfig: str = ""
    """Kubeconfig path; empty: in-cluster ServiceAccount credentials."""
    shared_view_dir: str = ""
    """Directory of the pod's shared view (``webhook.sharedview``): set by gunicorn.conf.py
    for the workers and the view keeper it starts (an emptyDir under /tmp in the chart)."""
    cluster: bool = True
    """Watch the API server (false only for offline unit tests of the HTTP layer)."""
    write_copies: bool = True
    """Create missing secret copies at admission (needs RBAC ``create`` on secrets)."""
    ensure_timeout_seconds: float = 1.5
    """Budget for creating copies during one admission; the webhook timeout is 3 s."""
    max_body_bytes: int = 3 * 1024 * 1024
    """Reject larger bodies with 413; the API server's own request limit is 3 MiB."""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    """CA of the client certificates the webhook requires (mutual TLS, opt-in): set it and
    only the API server, presenting its WebhookAdmission client certificate, can post
    reviews. Empty: any client that trusts our certificate may connect (the default)."""
    watch_timeout_seconds: int = 300
    """Shortest server-side watch timeout: each watch asks for a random one between this and
    twice this (as client-go's reflectors do, so that watches opened together do not all
    re-open together), then is re-opened from the last resourceVersion."""
    access_report_seconds: float = 2.0
    """How often refused watches are turned into reports (metric, Event, warnings)."""
    event_source: str = "pullsecret-injector"
    """``source.component`` of Events we record."""
    pod_name: str = ""
    """This pod's name (downward API) for logs, Events and the Lease holder identity."""
    log_level: str = "INFO"
    access_log: bool = False
    """gunicorn's per-request access line. Off by default: every review already gets one
    ``admission.decided`` line with its outcome and duration; a second line per request is
    CPU on the hot path (BENCHMARKS.md)."""
    bind_address: str = "0.0.0.0"  # noqa: S104 - a pod serves on its own IP
    """Address the TLS webhook port binds (``127.0.0.1`` for local runs)."""
    port: int = 8443
    """TLS webhook port (non-root: above 1024)."""
    health_port: int = 8080
    """Plain-HTTP port for /healthz, /readyz and /metrics."""
    workers: int = 2
    """gunicorn worker processes: one per core keeps the GIL off the critical path."""
    threads: int = 4
    """Threads per worker: overlap copy creation and slow clients without more memory."""
    keepalive_seconds: int = 75
    """Keep idle connections from the API server open (Go's client idles them up to 90 s)."""
    graceful_timeout_seconds: int = 20
    """On SIGTERM, finish in-flight reviews for this long (below terminationGracePeriod)."""
    max_requests: int = 100000
    """A worker is replaced after this many requests (0: never). A backstop only: caches are
    bounded in bytes, but a leak in a library would otherwise grow until the OOM killer, and
    pods admitted meanwhile would go without their secrets."""
    max_requests_jitter: int = 10000
    """Random extra requests per worker, so that workers are not all replaced at once."""

    # -- controller (``pullsecret-injector controller``) ----------------------------------------
    lease_name: str = "pullsecret-injector-controller"
    """coordination.k8s.io Lease that elects the single active controller."""
    lease_namespace: str = ""
    """Namespace of the Lease; defaults to ``policy_namespace``."""
    lease_duration_seconds: int = 15
    """A leader that stops renewing loses the Lease after this long."""
    resync_seconds: int = 300
    """Full reconcile of every namespace this often, on top of event-driven work."""
    controller_qps: float = 40.0
    """Client-side bound on the controller's API requests per second (client-go's token
    bucket): a resync of many namespaces is spread out instead of flooding the API server and
    its fairness queues. 40 creates 10,000 copies in about 4.5 minutes with no 10-second
    window above 45 requests/s (BENCHMARKS.md §7)."""
    controller_burst: int = 50
    """Requests the controller may send at once before ``controller_qps`` applies."""
    cert_mode: str = "provided"
    """``self-managed`` (controller keeps CA + cert in ``cert_secret`` and the caBundle),
    ``cert-manager`` or ``provided`` (both: the controller leaves certificates alone)."""
    cert_secret: str = ""
    """TLS Secret (``tls.crt``, ``tls.key``, ``ca.crt``) in ``policy_namespace``."""
    webhook_configuration: str = ""
    """MutatingWebhookConfiguration whose caBundle the self-managed mode keeps current."""
    service_name: str = ""
    """Webhook Service name: the serving certificate covers its DNS names."""
    cert_check_seconds: int = 60
    """How often the elected controller checks certificates (renewal, caBundle, forced)."""
    cert_validity_days: int = 90
    """Serving certificate lifetime; renewed at two thirds of it."""
    ca_validity_days: int = 3650
    """CA lifetime; a new CA is introduced (both trusted) well before it ends."""
    metrics_port: int = 8080
    """Controller's plain-HTTP /healthz, /readyz, /metrics port."""
    status_configmap: str = ""
    """ConfigMap (in ``policy_namespace``) the leader publishes its status document to, read
    by ``pullsecret-injector status``. Empty: ``<webhook_configuration>-status`` (the name
    that command looks for); nothing is published when both are empty."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from ``PSI_<FIELD_NAME_UPPER>`` variables; unknown ``PSI_*`` are errors."""
        env = os.environ if environ is None else environ
        known = {f"{PREFIX}{f.name.upper()}": f for f in fields(cls)}
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, object] = {}
        for name, spec in known.items():
            if name not in env:
                continue
            raw = env[name]
            kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
            try:
                values[spec.name] = _convert(raw, kind)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
        if "kubeconfig" not in values and env.get("KUBECONFIG"):
            values["kubeconfig"] = env["KUBECONFIG"].split(os.pathsep)[0]
        return cls(**values)  # type: ignore[arg-type]

    @property
    def exclusions(self) -> Exclusions:
        """Where no rule reaches in this deployment (``webhook.core.scope``)."""
        extra = [n.strip() for n in self.exclude_namespaces.split(",") if n.strip()]
        return Exclusions.of(self.policy_namespace, extra, self.opt_out_label)

    @property
    def tls_files(self) -> tuple[Path, Path] | None:
        if self.tls_cert_file and self.tls_key_file:
            return Path(self.tls_cert_file), Path(self.tls_key_file)
        return None


def _convert(raw: str, kind: str) -> object:
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw
