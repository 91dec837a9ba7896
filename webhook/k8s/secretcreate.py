"""Create-or-replace one Secret through a kubeconfig (``secret create --apply``).

* the client and the default namespace come from a kubeconfig (``--kubeconfig``, else
  ``$KUBECONFIG``, else ``~/.kube/config``) and its current or chosen context;
* create first; if the Secret exists, its ``data`` is replaced with an update guarded by the
  resourceVersion just read (a concurrent change is re-read and retried), keeping the
  existing metadata (labels, annotations, owners). Nothing is written when the data is
  already equal;
* refused, with the reason: a Secret of another type (the API server forbids changing it),
  an ``immutable`` Secret, and a copy managed by pullsecret-injector (the controller owns
  it: change its source instead).

Error messages carry the API server's status and message with every credential string of
the manifest replaced by ``<redacted>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE

__all__ = ["ApplyError", "Cluster", "apply_secret", "connect"]

_ATTEMPTS = 5


class ApplyError(Exception):
    """The Secret could not be applied. ``usage`` marks bad input (kubeconfig, context)
    rather than a refusal or failure of the API server."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class Cluster:
    api: Any
    """An authenticated ``kubernetes.client.ApiClient``."""
    namespace: str
    """The context's namespace, ``default`` when it names none."""


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """A client for ``context`` (default: the current context) of ``kubeconfig``."""
    where = kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = current
        if context is not None:
            chosen = next((c for c in contexts or () if c.get("name") == context), None)
            if chosen is None:
                raise ApplyError(f"context {context!r} not found in {where}", usage=True)
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
    except ApplyError:
        raise
    except Exception as exc:  # the loader raises ConfigException, OSError, TypeError, ...
        raise ApplyError(f"cannot load {where}: {exc}", usage=True) from None
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return Cluster(api=api, namespace=str(namespace))


def apply_secret(api: Any, manifest: Mapping[str, Any], redact: Sequence[str] = ()) -> str:
    """Create or replace ``manifest``; return ``created``, ``replaced`` or ``unchanged``."""
    try:
        return _apply(client.CoreV1Api(api), manifest, redact)
    except (HTTPError, OSError) as exc:
        raise ApplyError(f"cannot reach the API server: {exc}") from None


def _apply(core: Any, manifest: Mapping[str, Any], redact: Sequence[str]) -> str:
    metadata = manifest["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    where = f"secret {namespace}/{name}"
    exists = False
    for _ in range(_ATTEMPTS):
        if not exists:
            try:
                core.create_namespaced_secret(namespace, dict(manifest), _preload_content=False)
                return "created"
            except ApiException as exc:
                if exc.status != 409:
                    raise _failed(f"cannot create {where}", exc, redact) from None
        try:
            response = core.read_namespaced_secret(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise _failed(f"cannot read {where}", exc, redact) from None
            exists = False  # deleted since: create it again
            continue
        existing = json.loads(response.data)
        _check_replaceable(where, existing, manifest)
        if existing.get("data") == manifest["data"]:
            return "unchanged"
        existing["data"] = dict(manifest["data"])
        existing.pop("stringData", None)
        try:
            core.replace_namespaced_secret(name, namespace, existing, _preload_content=False)
            return "replaced"
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise _failed(f"cannot replace {where}", exc, redact) from None
            exists = exc.status == 409  # 409: changed since read (read again); 404: deleted
    raise ApplyError(f"{where} kept changing while being applied; try again")


def _check_replaceable(
    where: str, existing: Mapping[str, Any], manifest: Mapping[str, Any]
) -> None:
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
        raise ApplyError(
            f"{where} is a copy managed by pullsecret-injector ({MANAGED_BY_LABEL}="
            f"{MANAGED_BY_VALUE}); the controller would overwrite it: update its source instead"
        )
    if existing.get("immutable"):
        raise ApplyError(f"{where} exists and is immutable; delete it first to replace it")
    existing_type = existing.get("type") or "Opaque"
    if existing_type != manifest["type"]:
        raise ApplyError(
            f"{where} exists with type {existing_type}; the type of a Secret cannot change "
            f"to {manifest['type']}: delete it first or choose another --name"
        )


def _failed(what: str, exc: ApiException, redact: Sequence[str]) -> ApplyError:
    message = exc.reason or ""
    try:
        status = json.loads(exc.body or "")
        if isinstance(status, dict) and status.get("message"):
            message = str(status["message"])
    except (ValueError, TypeError):
        pass
    for secret in sorted((s for s in redact if s), key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    code = f"HTTP {exc.status}" if exc.status else "no response"
    return ApplyError(f"{what}: {code}: {message}")
