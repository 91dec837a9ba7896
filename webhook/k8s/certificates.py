"""Self-managed certificate mode: the elected controller keeps the webhook's TLS working.

State lives in two Secrets in the release namespace:

* ``<cert_secret>-ca`` holds the CA key (mounted nowhere) and, during a rollover, the
  previous CA certificate;
* ``<cert_secret>`` (``tls.crt``, ``tls.key``, ``ca.crt``) is what webhook pods mount; the
  kubelet refreshes the files and each worker's TLS context follows them without restart.

Each pass decides with the pure ``certs.renewal`` functions: create what is missing, never
regenerate a valid CA, re-issue the serving certificate at 2/3 of its life (or at once if it
does not match the CA or the Service's names, or if the TLS Secret carries the
``pullsecret-injector.io/force-renewal`` annotation), and keep the MutatingWebhookConfiguration's
caBundle equal to the trusted CAs. A new CA enters the bundle first; the serving certificate
switches to it only after ``CA_OVERLAP``, so no API server ever sees a certificate it does not
trust.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.pki import Issued, issue, load, new_ca, service_hosts
from certs.renewal import ca_verdict, serving_verdict
from webhook.core.conventions import (
    CA_INTRODUCED_ANNOTATION,
    FORCE_RENEWAL_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)
from webhook.k8s.rest import AdmissionregistrationV1, ApiError, CoreV1, RestClient
from webhook.settings import Settings

__all__ = ["SelfManagedCertificates", "certificate_task"]

log = logging.getLogger("webhook.certificates")

CA_OVERLAP = timedelta(minutes=10)


def certificate_task(settings: Settings, api: RestClient) -> Callable[[], None] | None:
    if settings.cert_mode != "self-managed":
        return None
    missing = [
        name
        for name, value in (
            ("PSI_CERT_SECRET", settings.cert_secret),
            ("PSI_SERVICE_NAME", settings.service_name),
            ("PSI_WEBHOOK_CONFIGURATION", settings.webhook_configuration),
            ("PSI_POLICY_NAMESPACE", settings.policy_namespace),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"self-managed certificates need {', '.join(missing)}")
    return SelfManagedCertificates(settings, api)


class SelfManagedCertificates:
    def __init__(
        self,
        settings: Settings,
        api: RestClient,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.core = CoreV1(api)
        self.admission = AdmissionregistrationV1(api)
        self.namespace = settings.policy_namespace
        self.clock = clock
        self.hosts = service_hosts(settings.service_name, settings.policy_namespace)

    def __call__(self) -> None:
        try:
            self.reconcile()
        except Exception:
            log.exception("certificate reconcile failed", extra={"event": "certs.failed"})

    def reconcile(self) -> None:
        now = self.clock()
        ca, previous, introduced = self._ensure_ca(now)
        trusted = [ca.certificate]
        overlapping = previous is not None and now < introduced + CA_OVERLAP
        if previous is not None and previous.not_valid_after_utc > now:
            trusted.append(previous)
        bundle = b"".join(_pem(c) for c in trusted)
        self._patch_ca_bundle(bundle)
        self._ensure_serving(ca, previous if overlapping else None, bundle, now)

    # -- CA --------------------------------------------------------------------------------

    def _ensure_ca(self, now: datetime) -> tuple[Issued, x509.Certificate | None, datetime]:
        name = f"{self.settings.cert_secret}-ca"
        secret = self._read(name)
        data = _decoded(secret)
        current = None
        if "ca.crt" in data and "ca.key" in data:
            try:
                current = load(data["ca.crt"], data["ca.key"])
            except ValueError:
                current = None
        previous = _cert_or_none(data.get("previous-ca.crt"))
        introduced = _parse_time(_annotations(secret).get(CA_INTRODUCED_ANNOTATION)) or now
        verdict = ca_verdict(current.certificate if current else None, now)
        if current is not None and not verdict.renew:
            return current, previous, introduced
        fresh = new_ca("pullsecret-injector webhook CA", now, self.settings.ca_validity_days)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "annotations": {CA_INTRODUCED_ANNOTATION: now.isoformat()},
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            },
            "data": _encoded(
                {
                    "ca.crt": fresh.cert_pem,
                    "ca.key": fresh.key_pem,
                    **({"previous-ca.crt": current.cert_pem} if current else {}),
                }
            ),
        }
        self._write(secret, body)
        log.info("new CA", extra={"event": "certs.ca_created", "reason": verdict.reason})
        return fresh, current.certificate if current else None, now

    # -- serving certificate -----------------------------------------------------------------

    def _ensure_serving(
        self,
        ca: Issued,
        previous: x509.Certificate | None,
        bundle: bytes,
        now: datetime,
    ) -> None:
        secret = self._read(self.settings.cert_secret)
        data = _decoded(secret)
        leaf = _cert_or_none(data.get("tls.crt"))
        forced = FORCE_RENEWAL_ANNOTATION in _annotations(secret)
        signer = ca.certificate
        if previous is not None and leaf is not None and leaf.issuer == previous.subject:
            signer = previous  # CA rollover in progress: keep the old leaf until the overlap ends
        verdict = serving_verdict(leaf, signer, self.hosts, now)
        if signer is previous and not verdict.renew and not forced:
            reissue, reason = False, "CA rollover overlap"
        else:
            reissue = forced or verdict.renew or signer is not ca.certificate
            reason = "forced" if forced else verdict.reason
        if not reissue:
            if data.get("ca.crt") != bundle and secret is not None:
                self._write(secret, self._tls_body(data["tls.crt"], data["tls.key"], bundle))
            return
        fresh = issue(
            ca, self.hosts[2], now=now, days=self.settings.cert_validity_days, hosts=self.hosts
        )
        self._write(secret, self._tls_body(fresh.cert_pem, fresh.key_pem, bundle))
        log.info(
            "serving certificate issued",
            extra={"event": "certs.issued", "reason": reason, "hosts": self.hosts},
        )

    def _tls_body(self, cert: bytes, key: bytes, bundle: bytes) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": self.settings.cert_secret,
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            },
            "data": _encoded({"tls.crt": cert, "tls.key": key, "ca.crt": bundle}),
        }

    # -- caBundle ------------------------------------------------------------------------------

    def _patch_ca_bundle(self, bundle: bytes) -> None:
        name = self.settings.webhook_configuration
        try:
            response = self.admission.read_mutating_webhook_configuration(
                name, _request_timeout=5, _preload_content=False
            )
        except ApiError as exc:
            if exc.status == 404:
                log.warning(
                    "webhook configuration not found",
                    extra={"event": "certs.no_config", "name": name},
                )
                return
            raise
        config = json.loads(response.data)
        encoded = base64.b64encode(bundle).decode()
        patch: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": config["metadata"]["resourceVersion"],
            }
        ]
        for index, webhook in enumerate(config.get("webhooks") or []):
            if (webhook.get("clientConfig") or {}).get("caBundle") != encoded:
                patch.append(
                    {
                        "op": "add",
                        "path": f"/webhooks/{index}/clientConfig/caBundle",
                        "value": encoded,
                    }
                )
        if len(patch) == 1:
            return
        self.admission.patch_mutating_webhook_configuration(
            name,
            patch,
            _content_type="application/json-patch+json",
            _request_timeout=5,
            _preload_content=False,
        )
        log.info("caBundle updated", extra={"event": "certs.ca_bundle", "webhooks": len(patch) - 1})

    # -- Secret I/O --------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            response = self.core.read_namespaced_secret(
                name, self.namespace, _request_timeout=5, _preload_content=False
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        document: dict[str, Any] = json.loads(response.data)
        return document

    def _write(self, existing: dict[str, Any] | None, body: dict[str, Any]) -> None:
        """Create, or replace guarded by resourceVersion (a racing writer gets 409)."""
        if existing is None:
            self.core.create_namespaced_secret(
                self.namespace, body, _request_timeout=5, _preload_content=False
            )
            return
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        self.core.replace_namespaced_secret(
            body["metadata"]["name"],
            self.namespace,
            body,
            _request_timeout=5,
            _preload_content=False,
        )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _decoded(secret: dict[str, Any] | None) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    return {k: base64.b64decode(v) for k, v in data.items() if isinstance(v, str)}


def _encoded(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _annotations(secret: dict[str, Any] | None) -> dict[str, str]:
    return dict(((secret or {}).get("metadata") or {}).get("annotations") or {})


def _cert_or_none(pem: bytes | None) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
