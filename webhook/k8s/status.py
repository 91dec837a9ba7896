"""``status`` against the API server: the controller publishes, the command line reads.

* ``StatusPublisher`` runs in the controller. While it leads, it builds the status document
  (``webhook.core.status.policy_report``) from what the controller already holds in memory
  every couple of seconds, and writes it to the status ConfigMap only when it differs from
  what is stored there — a new leader that finds the same document writes nothing.
* ``read_status`` and ``read_policy`` run in ``pullsecret-injector status`` and ``explain``
  with the caller's kubeconfig, read-only: ``get``/``list`` on the webhook configuration, the
  status and policy ConfigMaps, namespaces, the policy's source Secrets and the Secrets
  holding a managed name (by ``metadata.name`` field selector), and ServiceAccounts when a
  rule names some. Anything refused or unreachable raises ``CannotAsk`` with the API
  server's own words: the caller exits 2.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from urllib3.exceptions import HTTPError

from webhook.core.clusterview import ClusterStore, source_from_object, target_from_object
from webhook.core.conventions import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    STATUS_DATA_KEY,
    status_configmap_name,
)
from webhook.core.permissions import Component, Identity
from webhook.core.policy import Policy, PolicyInvalid, load_policy
from webhook.core.reach import WebhookScope, exclusions_of, webhook_scope
from webhook.core.status import (
    ClusterStatus,
    PolicyReport,
    SourceStateName,
    StatusDocumentError,
    assess,
    parse_status_document,
    policy_report,
    source_states,
    status_document,
)
from webhook.core.sync import service_account_state
from webhook.k8s.live import LiveState
from webhook.k8s.rest import ApiError
from webhook.settings import Settings

__all__ = [
    "CannotAsk",
    "Installation",
    "StatusPublisher",
    "locate",
    "read_cluster",
    "read_object",
    "read_policy",
    "read_sources",
    "read_status",
    "release_identities",
]

log = logging.getLogger("webhook.k8s.status")

PUBLISH_INTERVAL_SECONDS = 2.0
"""How often the leader compares its view with the published document (in memory)."""
_TIMEOUT = (5, 30)
"""(connect, read) seconds for each call the command line makes."""
_WEBHOOK_SUFFIX = ".pullsecret-injector.io"
"""The chart names its webhook entry ``<fullname>.<namespace>.pullsecret-injector.io``."""
_INSTANCE = "app.kubernetes.io/instance"
_COMPONENT = "app.kubernetes.io/component"
"""The chart's labels (``_labels.tpl``): the release a configuration or Deployment belongs to."""


# -- publishing (the controller) ----------------------------------------------------------------


class StatusPublisher:
    """Keeps the status ConfigMap equal to what the leading controller knows."""

    def __init__(
        self,
        settings: Settings,
        state: LiveState,
        is_leader: Callable[[], bool],
        interval: float = PUBLISH_INTERVAL_SECONDS,
    ) -> None:
        self.settings = settings
        self.state = state
        self.is_leader = is_leader
        self.interval = interval
        self.name = settings.status_configmap or (
            status_configmap_name(settings.webhook_configuration)
            if settings.webhook_configuration
            else ""
        )
        self.namespace = settings.policy_namespace
        self._stored: dict[str, Any] | None = None
        """The document as last written or found (``updated`` left out); ``None``: unknown."""
        self._last_error = ""

    def start(self) -> StatusPublisher:
        """Publish from a daemon thread until the live state stops (nothing when unnamed)."""
        if self.name and self.namespace:
            threading.Thread(target=self._run, name="status", daemon=True).start()
        return self

    def _run(self) -> None:
        while not self.state.stopped.wait(self.interval):
            try:
                self.publish_once()
                self._last_error = ""
            except Exception as exc:
                message = f"{type(exc).__name__}: {str(exc)[:300]}"
                if message != self._last_error:  # once per distinct failure, not every tick
                    log.warning(
                        "could not publish the status document",
                        extra={"event": "status.failed", "configmap": self.name, "error": message},
                    )
                self._last_error = message

    def report(self) -> PolicyReport:
        """The document's content, from the controller's memory (no API call)."""
        policy = self.state.policy()
        source = self.state.source
        rejected = source.rejected
        if policy is None:
            error, rejected_generation = source.error, rejected[0] if rejected else ""
        elif rejected is not None:
            rejected_generation, error = rejected
        else:
            error, rejected_generation = "", ""
        sources = source_states(policy, self.state.store, self._unseen(policy)) if policy else ()
        configmap = self.settings.policy_configmap
        return policy_report(
            policy,
            configmap=f"{self.settings.policy_namespace}/{configmap}" if configmap else "",
            key=self.settings.policy_key,
            error=error,
            rejected_generation=rejected_generation,
            sources=sources,
            reporter=self.settings.pod_name,
        )

    def publish_once(self) -> bool:
        """Write the document if this replica leads and it changed; return whether it wrote."""
        if not self.is_leader():
            self._stored = None  # another leader may write meanwhile: read again when elected
            return False
        report = self.report()
        document = status_document(report)
        core = self.state.core
        if self._stored is None:
            self._stored = self._read(core)
        if self._stored == document:
            return False
        stamped = status_document(
            replace(report, updated=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        )
        data = {STATUS_DATA_KEY: json.dumps(stamped, indent=2) + "\n"}
        try:
            core.patch_namespaced_config_map(
                self.name, self.namespace, {"data": data}, _request_timeout=10
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                },
                "data": data,
            }
            core.create_namespaced_config_map(self.namespace, body, _request_timeout=10)
        self._stored = document
        log.info(
            "status published",
            extra={
                "event": "status.published",
                "configmap": f"{self.namespace}/{self.name}",
                "generation": document["policy"]["generation"],
                "valid": document["policy"]["valid"],
            },
        )
        return True

    def _read(self, core: Any) -> dict[str, Any]:
        """The stored document without its timestamp; ``{}`` when there is none."""
        try:
            response = core.read_namespaced_config_map(
                self.name, self.namespace, _request_timeout=10, _preload_content=False
            )
        except ApiError as exc:
            if exc.status == 404:
                return {}
            raise
        text = (json.loads(response.data).get("data") or {}).get(STATUS_DATA_KEY, "")
        try:
            return status_document(replace(parse_status_document(text), updated=""))
        except StatusDocumentError:
            return {}

    def _unseen(self, policy: Policy) -> dict[tuple[str, str], tuple[SourceStateName, str]]:
        """Sources the view has no answer for: refused by RBAC (the view says which
        permission), or not listed yet."""
        unseen: dict[tuple[str, str], tuple[SourceStateName, str]] = {}
        pending = {w.name for w in self.state.watches.all() if not w.synced.is_set()}
        store = self.state.store
        for namespace, name in sorted(policy.source_refs()):
            if store.source_secret(namespace, name) is not None:
                continue
            denied = store.source_denied(namespace, name)
            if denied:
                unseen[(namespace, name)] = ("forbidden", denied)
            elif {f"sources/{namespace}", f"sources/{namespace}/{name}"} & pending:
                unseen[(namespace, name)] = ("unknown", "not listed yet")
        return unseen


# -- reading (the command line) -----------------------------------------------------------------


class CannotAsk(Exception):
    """The API server refused a read, or could not be reached: ``status`` exits 2."""


@dataclass(frozen=True)
class Installation:
    """One pullsecret-injector release, found from its webhook configuration."""

    webhook: WebhookScope
    namespace: str
    """The release namespace (the webhook Service's, or ``--release-namespace``)."""
    status_configmap: str
    reported: PolicyReport | None
    """The controller's status document, ``None`` when none is published."""
    policy_configmap: str
    """``namespace/name``."""
    policy_key: str
    notes: tuple[str, ...] = ()
    release: str = ""
    """The Helm release name (the configuration's ``app.kubernetes.io/instance`` label)."""


def locate(
    api: Any,
    *,
    webhook_configuration: str | None = None,
    release_namespace: str | None = None,
    policy_configmap: str | None = None,
) -> Installation:
    """Find the release: its webhook configuration, status document and policy ConfigMap."""
    admission = _official().AdmissionregistrationV1Api(api)
    if webhook_configuration:
        configuration = _call(
            f"mutatingwebhookconfiguration {webhook_configuration}",
            admission.read_mutating_webhook_configuration,
            webhook_configuration,
        )
    else:
        found = _call(
            "mutatingwebhookconfigurations", admission.list_mutating_webhook_configuration
        ).get("items", [])
        ours = [c for c in found if _is_ours(c, release_namespace)]
        if not ours:
            raise CannotAsk(
                "no pullsecret-injector webhook configuration found (none has a webhook named "
                f"*{_WEBHOOK_SUFFIX}"
                + (f" served from namespace {release_namespace}" if release_namespace else "")
                + "); name it with --webhook-configuration"
            )
        if len(ours) > 1:
            names = ", ".join(sorted(c["metadata"]["name"] for c in ours))
            raise CannotAsk(
                f"several pullsecret-injector releases found ({names}): choose one with "
                "--webhook-configuration"
            )
        configuration = ours[0]
    name = configuration["metadata"]["name"]
    namespace = release_namespace or _service_namespace(configuration)
    if not namespace:
        raise CannotAsk(
            f"mutatingwebhookconfiguration {name} calls a URL, not a Service: give the release "
            "namespace with --release-namespace"
        )
    status_name = status_configmap_name(name)
    reported, notes = _reported(_official().CoreV1Api(api), namespace, status_name)
    if policy_configmap:
        policy_ref, key = policy_configmap, "policy.yaml"
        if "/" not in policy_ref:
            policy_ref = f"{namespace}/{policy_ref}"
    elif reported is not None and reported.configmap:
        policy_ref, key = reported.configmap, reported.key or "policy.yaml"
    else:
        policy_ref, key = f"{namespace}/{name}-policy", "policy.yaml"
    return Installation(
        webhook=webhook_scope(configuration),
        namespace=namespace,
        status_configmap=f"{namespace}/{status_name}",
        reported=reported,
        policy_configmap=policy_ref,
        policy_key=key,
        notes=notes,
        release=str(((configuration.get("metadata") or {}).get("labels") or {}).get(_INSTANCE, "")),
    )


def release_identities(api: Any, installation: Installation) -> tuple[Identity, ...]:
    """The ServiceAccounts the release's webhook and controller run as, from their
    Deployments (found by the chart's instance and component labels): the identities whose
    permissions ``validate-policy --cluster`` asks about. No webhook Deployment: ``CannotAsk``
    (the release cannot be checked); no controller Deployment: ``controller.enabled=false``."""
    selector = "app.kubernetes.io/component in (webhook,controller)"
    if installation.release:
        selector += f",{_INSTANCE}={installation.release}"
    listed = _call(
        f"deployments in namespace {installation.namespace}",
        _official().AppsV1Api(api).list_namespaced_deployment,
        installation.namespace,
        label_selector=selector,
    ).get("items", [])
    found: dict[str, list[str]] = {}
    for deployment in listed:
        component = str(((deployment.get("metadata") or {}).get("labels") or {}).get(_COMPONENT))
        spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        found.setdefault(component, []).append(str(spec.get("serviceAccountName") or "default"))
    identities: list[Identity] = []
    components: tuple[Component, ...] = ("webhook", "controller")
    for component in components:
        accounts = sorted(set(found.get(component, [])))
        if len(accounts) > 1:
            raise CannotAsk(
                f"several {component} Deployments in namespace {installation.namespace} run as "
                f"different ServiceAccounts ({', '.join(accounts)}): choose the release with "
                "--webhook-configuration"
            )
        if accounts:
            identities.append(Identity(component, installation.namespace, accounts[0]))
        elif component == "webhook":
            raise CannotAsk(
                f"no webhook Deployment (label {selector}) in namespace "
                f"{installation.namespace}: give the release namespace with --release-namespace"
            )
    return tuple(identities)


def read_policy(api: Any, installation: Installation) -> tuple[Policy | None, str, str]:
    """The policy the ConfigMap holds now: (policy or ``None``, its generation, why invalid)."""
    namespace, _, name = installation.policy_configmap.partition("/")
    configmap = _call(
        f"configmap {installation.policy_configmap}",
        _official().CoreV1Api(api).read_namespaced_config_map,
        name,
        namespace,
    )
    version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
    text = (configmap.get("data") or {}).get(installation.policy_key)
    if not isinstance(text, str):
        return None, version, f"data key {installation.policy_key!r} is missing"
    try:
        exclusions = exclusions_of(installation.webhook, installation.namespace)
        return load_policy(text, generation=version, exclusions=exclusions), version, ""
    except PolicyInvalid as exc:
        return None, version, "; ".join(str(e) for e in exc.errors)


def read_status(
    api: Any,
    *,
    namespace: str | None = None,
    webhook_configuration: str | None = None,
    release_namespace: str | None = None,
    policy_configmap: str | None = None,
) -> ClusterStatus:
    """Everything ``status`` shows, read with the caller's credentials."""
    installation = locate(
        api,
        webhook_configuration=webhook_configuration,
        release_namespace=release_namespace,
        policy_configmap=policy_configmap,
    )
    policy, version, error = read_policy(api, installation)
    notes = list(installation.notes)
    base = ClusterStatus(
        webhook_configuration=installation.webhook.configuration,
        policy_configmap=installation.policy_configmap,
        policy_generation=version,
        policy_error=error,
        reported=installation.reported,
        status_configmap=installation.status_configmap,
    )
    if policy is None:
        notes.append("namespaces not assessed: the policy ConfigMap holds no valid policy")
        return replace(base, notes=tuple(notes))
    reported = installation.reported
    if reported is not None and reported.generation and reported.generation != version:
        notes.append(
            f"the controller reports generation {reported.generation} in force; the ConfigMap "
            f"is at {version} (namespaces are assessed against the ConfigMap's policy)"
        )
    if installation.webhook.unreadable:
        notes.append(
            "namespaceSelector expressions not understood (ignored): "
            + "; ".join(installation.webhook.unreadable)
        )
    store, accounts = read_cluster(api, policy, namespace)
    return replace(
        base,
        sources=source_states(policy, store),
        namespaces=assess(
            policy,
            store,
            accounts,
            installation.webhook,
            namespaces=None if namespace is None else {namespace},
        ),
        notes=tuple(notes),
    )


def read_cluster(api: Any, policy: Policy, namespace: str | None) -> tuple[ClusterStore, list[Any]]:
    """Namespaces, sources, copies and (when a rule names them) ServiceAccounts."""
    core = _official().CoreV1Api(api)
    store = ClusterStore()
    if namespace is None:
        for item in _call("namespaces", core.list_namespace).get("items", []):
            metadata = item.get("metadata") or {}
            store.put_namespace(str(metadata.get("name")), metadata.get("labels") or {})
    else:
        item = _call(f"namespace {namespace}", core.read_namespace, namespace)
        store.put_namespace(namespace, (item.get("metadata") or {}).get("labels") or {})
    for source_namespace, name in sorted(policy.source_refs()):
        secret = _get_or_none(
            f"secret {name} in namespace {source_namespace}",
            core.read_namespaced_secret,
            name,
            source_namespace,
        )
        if secret is not None:
            store.put_source(source_from_object(secret))
    for name in sorted(policy.managed_names()):
        if namespace is None:
            items = _call(
                f"secrets named {name} in all namespaces",
                core.list_secret_for_all_namespaces,
                field_selector=f"metadata.name={name}",
            ).get("items", [])
        else:
            found = _get_or_none(
                f"secret {name} in namespace {namespace}",
                core.read_namespaced_secret,
                name,
                namespace,
            )
            items = [found] if found is not None else []
        for item in items:
            store.put_target(target_from_object(item))
    accounts = []
    if any(rule.service_accounts.names for rule in policy.rules):
        if namespace is None:
            listed = _call(
                "serviceaccounts in all namespaces", core.list_service_account_for_all_namespaces
            )
        else:
            listed = _call(
                f"serviceaccounts in namespace {namespace}",
                core.list_namespaced_service_account,
                namespace,
            )
        accounts = [service_account_state(item) for item in listed.get("items", [])]
    return store, accounts


_READERS: Mapping[str, tuple[str, str]] = {
    "Pod": ("CoreV1Api", "read_namespaced_pod"),
    "ServiceAccount": ("CoreV1Api", "read_namespaced_service_account"),
    "Deployment": ("AppsV1Api", "read_namespaced_deployment"),
    "StatefulSet": ("AppsV1Api", "read_namespaced_stateful_set"),
    "DaemonSet": ("AppsV1Api", "read_namespaced_daemon_set"),
    "ReplicaSet": ("AppsV1Api", "read_namespaced_replica_set"),
    "Job": ("BatchV1Api", "read_namespaced_job"),
    "CronJob": ("BatchV1Api", "read_namespaced_cron_job"),
}


def read_object(api: Any, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """A live Pod, ServiceAccount or workload (``explain.resource_kind``), as JSON."""
    group, method = _READERS[kind]
    reader = getattr(getattr(_official(), group)(api), method)
    obj = _call(f"{kind.lower()} {name} in namespace {namespace}", reader, name, namespace)
    obj.setdefault("kind", kind)
    return obj


def read_sources(
    api: Any, policy: Policy, namespace: str
) -> tuple[list[dict[str, Any]], list[str], Mapping[str, str] | None]:
    """For ``explain``: the policy's sources, the copies in ``namespace`` and its labels.

    Returns (Secret objects, notes, namespace labels or ``None`` if the namespace is not
    found). A source the caller may not read is a note, not a failure.
    """
    core = _official().CoreV1Api(api)
    secrets: list[dict[str, Any]] = []
    notes: list[str] = []
    for source_namespace, name in sorted(policy.source_refs()):
        try:
            secret = _get_or_none(
                f"secret {name} in namespace {source_namespace}",
                core.read_namespaced_secret,
                name,
                source_namespace,
            )
        except CannotAsk as exc:
            notes.append(f"{exc}: explained as if it did not exist")
            continue
        if secret is not None:
            secrets.append(secret)
    for name in sorted(policy.managed_names()):
        try:
            copy = _get_or_none(
                f"secret {name} in namespace {namespace}",
                core.read_namespaced_secret,
                name,
                namespace,
            )
        except CannotAsk as exc:
            notes.append(f"{exc}: explained as if it did not exist")
            continue
        if copy is not None:
            secrets.append(copy)
    found = _get_or_none(f"namespace {namespace}", core.read_namespace, namespace)
    labels = None if found is None else (found.get("metadata") or {}).get("labels") or {}
    return secrets, notes, labels


# -- helpers ----------------------------------------------------------------------------------


def _is_ours(configuration: Mapping[str, Any], release_namespace: str | None) -> bool:
    """A release's configuration: our webhook name, calling a Service (a configuration that
    calls a URL is found only by name, with ``--release-namespace``)."""
    webhooks = configuration.get("webhooks") or []
    if not any(str(w.get("name", "")).endswith(_WEBHOOK_SUFFIX) for w in webhooks):
        return False
    served_from = _service_namespace(configuration)
    return bool(served_from) and release_namespace in (None, served_from)


def _service_namespace(configuration: Mapping[str, Any]) -> str:
    for webhook in configuration.get("webhooks") or []:
        service = (webhook.get("clientConfig") or {}).get("service") or {}
        if service.get("namespace"):
            return str(service["namespace"])
    return ""


def _reported(core: Any, namespace: str, name: str) -> tuple[PolicyReport | None, tuple[str, ...]]:
    configmap = _get_or_none(
        f"configmap {name} in namespace {namespace}",
        core.read_namespaced_config_map,
        name,
        namespace,
    )
    if configmap is None:
        return None, ()
    text = (configmap.get("data") or {}).get(STATUS_DATA_KEY, "")
    try:
        return parse_status_document(text), ()
    except StatusDocumentError as exc:
        return None, (f"status ConfigMap {namespace}/{name} unreadable: {exc}",)


def _get_or_none(what: str, call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
    try:
        return _call(what, call, *args)
    except _NotFound:
        return None


class _NotFound(CannotAsk):
    pass


def _call(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One read, as JSON; refusals and transport failures become ``CannotAsk``."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415 - see _official

    try:
        response = call(*args, _preload_content=False, _request_timeout=_TIMEOUT, **kwargs)
    except ApiException as exc:
        message = _status_message(exc)
        if exc.status == 404:
            raise _NotFound(f"{what}: not found") from None
        if exc.status in (401, 403):
            raise CannotAsk(f"cannot read {what}: {message}") from None
        raise CannotAsk(f"cannot read {what}: HTTP {exc.status}: {message}") from None
    except (HTTPError, OSError) as exc:
        raise CannotAsk(f"cannot reach the API server: {exc}") from None
    data: dict[str, Any] = json.loads(response.data)
    return data


def _status_message(exc: Any) -> str:
    try:
        status = json.loads(exc.body or "")
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    except (ValueError, TypeError):
        pass
    return str(exc.reason or "")


def _official() -> Any:
    """The official client's API classes, for the command line's client
    (``webhook.k8s.secretcreate.connect``), imported on first use: the controller imports this
    module for ``StatusPublisher`` and never loads ``kubernetes``."""
    from kubernetes import client  # noqa: PLC0415

    return client
