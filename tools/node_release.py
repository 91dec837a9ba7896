"""The Helm chart's pods on the real node: our image, pulled with a pull secret, run by a kubelet.

:mod:`tools.local_release` plays the kubelet for the chart's Deployments with local processes;
this lets the real one do it. The image built from the ``Dockerfile`` (:mod:`tools.image`) is
pushed to the node's authenticated registry, ``helm install`` points ``image.repository`` and
``image.digest`` there with ``imagePullSecrets`` for it, and the chart's Deployments become
ReplicaSets and Pods (kube-controller-manager's workload controllers, started for as long as
the release lives) which this module binds to the node, the one job a scheduler has on a
one-node cluster. The kubelet then pulls our image and runs both components with the chart's
probes, read-only root filesystem, TLS Secret volume and ServiceAccount token.

What the values change, and why (everything else is the chart's default):

* **a non-root arbitrary UID in group 0** (``podSecurityContext.runAsUser`` 1000680000,
  ``runAsGroup``/``fsGroup`` as OpenShift's restricted-v2 SCC assigns them): the image must
  work as a UID it has never heard of;
* **hostNetwork** with free ports (``webhook.port``/``healthPort``, ``controller.metricsPort``)
  bound to 127.0.0.1 (``PSI_BIND_ADDRESS``): the node has no pod network;
* **KUBERNETES_SERVICE_HOST/PORT** point at the API server on 127.0.0.1: there is no
  kube-proxy to make the ``kubernetes`` Service's ClusterIP reach it;
* **one replica, no PodDisruptionBudgets**: one node;
* the **Service is ExternalName ``localhost``** (:meth:`LocalRelease.local_values`), so the API
  server calls the webhook pod through ``clientConfig.service`` and checks its certificate for
  ``<svc>.<ns>.svc``, as in a cluster.

Certificates are self-managed as by default: the controller creates the TLS Secret, and the
webhook pod waits in ``ContainerCreating`` until it exists.

Usage (the e2e tests and the demo)::

    release = NodeRelease(node, "psi", "psi-node", tmp_path / "release", {"policy": POLICY})
    release.start()                       # push, install, bind, wait until both pods Ready
    ...
    release.stop()                        # uninstall, wait for the pods to go
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.image import ImageInfo, build_image_info
from tools.local_release import LocalRelease, merge_values
from tools.node import Node, pod_state
from tools.processes import is_running

__all__ = [
    "ARBITRARY_UID",
    "COMPONENTS",
    "IMAGE_PULL_SECRET",
    "NodeRelease",
    "NodeReleaseError",
    "pod_ready",
]

#: A UID from an OpenShift namespace range (restricted-v2 assigns one, in group 0): nothing in
#: the image is owned by it and it has no passwd entry.
ARBITRARY_UID = 1000680000
#: The Secret in the release namespace that pulls *our* image (the chart's ``imagePullSecrets``;
#: the webhook never injects into its own namespace).
IMAGE_PULL_SECRET = "pullsecret-injector-image"  # noqa: S105 - a Secret name
COMPONENTS = ("webhook", "controller")
BIND_INTERVAL = 0.25
# Bounds for a broken run, not performance claims: a cold pull of the 77 MB image and two
# Python processes starting on 2 busy cores take ~10-20 s.
READY_TIMEOUT = 240.0
GONE_TIMEOUT = 90.0


class NodeReleaseError(RuntimeError):
    """The release did not come up or go away; the message has pod states, events and logs."""


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's ``Ready`` condition is True (all containers started and passing readiness)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


@dataclass
class NodeRelease:
    """One ``helm install`` of the chart whose webhook and controller run as pods on ``node``."""

    node: Node
    name: str
    namespace: str
    workdir: Path
    values: dict[str, Any] = field(default_factory=dict)
    """The caller's values (policy, admissionWebhook, ...); the node's own are merged over them."""
    image_info: ImageInfo | None = None
    """The image to run; None: built (or taken from the cache) by :func:`build_image_info`."""
    image: str = ""
    """Our image as pushed: ``<registry>/pullsecret-injector@sha256:...``."""
    helm: LocalRelease = field(init=False)
    """helm commands and the rendered manifest (no processes of its own are started)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each phase of :meth:`start` and :meth:`stop` took (for the README's numbers)."""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _binder: threading.Thread | None = field(default=None, repr=False)
    _bound: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.helm = LocalRelease(self.node.plane, self.name, self.namespace, self.workdir)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = READY_TIMEOUT) -> None:
        """Push our image, create the release namespace with its pull secret, install, and
        (``wait``) return once every pod of both components is Ready. On failure everything
        started so far is stopped and :class:`NodeReleaseError` says what was seen."""
        began = time.monotonic()
        try:
            self.push_image()
            self.timings["image pushed"] = time.monotonic() - began
            self._prepare_namespace()
            self.node.plane.start_workload_controllers()
            self._binder = threading.Thread(target=self._bind_loop, daemon=True)
            self._binder.start()
            self.helm.values = self.node_values()
            self.helm.install()
            self.timings["installed"] = time.monotonic() - began
            if wait:
                self.wait_ready(timeout=timeout)
                self.timings["ready"] = time.monotonic() - began
        except Exception as exc:
            details = self.describe()
            with contextlib.suppress(Exception):
                self.stop()
            raise NodeReleaseError(
                f"release {self.name} did not come up: {exc}\n{details}"
            ) from exc
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise

    def stop(self) -> None:
        """Scale both components to zero and wait (bounded) until the kubelet has stopped
        their pods, then uninstall, delete the namespace, stop binding and the workload
        controllers. Idempotent.

        Pods first, while their RBAC still exists: ``helm uninstall`` deletes the Roles
        together with the Deployments, and a controller stopping without them can no longer
        release its Lease (a 403, logged) — the next install's controller would wait it out.
        """
        began = time.monotonic()
        if self._kubelet_running():
            with contextlib.suppress(Exception):
                for component in COMPONENTS:
                    self.scale(component, 0)
                self._wait(lambda: not self._pods(None), "the release's pods gone", GONE_TIMEOUT)
        self.timings["pods gone"] = time.monotonic() - began
        self.helm.uninstall()
        with self.node.plane.api_client() as api:
            from kubernetes import client  # noqa: PLC0415 - only this needs the client

            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(api).delete_namespace(self.namespace)
        self._stop.set()
        if self._binder is not None:
            self._binder.join(5)
        self.node.plane.stop_workload_controllers()
        self.timings["stopped"] = time.monotonic() - began

    # -- values ----------------------------------------------------------------------------

    def push_image(self) -> str:
        """Push the OCI archive to the node's registry (with its credentials); remember and
        return the digest-pinned reference."""
        info = self.image_info or build_image_info()
        self.image_info = info
        self.image = self.node.registry.push(info.archive, f"pullsecret-injector:{info.version}")
        return self.image

    def node_values(self) -> dict[str, Any]:
        """The caller's values with the node's on top (see the module docstring)."""
        repository, digest = self.image.split("@", 1)
        env = [
            {"name": "PSI_BIND_ADDRESS", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.node.plane.ports.apiserver)},
        ]
        restricted_v2 = {
            "runAsNonRoot": True,
            "runAsUser": ARBITRARY_UID,
            "runAsGroup": 0,
            "fsGroup": ARBITRARY_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        component = {
            "replicaCount": 1,
            "podDisruptionBudget": {"enabled": False},
            "hostNetwork": True,
            "podSecurityContext": restricted_v2,
        }
        ours: dict[str, Any] = {
            "image": {"repository": repository, "digest": digest, "pullPolicy": "IfNotPresent"},
            "imagePullSecrets": [{"name": IMAGE_PULL_SECRET}],
            "webhook": copy.deepcopy(component),
            "controller": copy.deepcopy(component),
        }
        merged = merge_values(self.values, ours)
        for name in COMPONENTS:  # extraEnv is a list: append, never replace the caller's
            extra = list((self.values.get(name) or {}).get("extraEnv") or [])
            merged[name]["extraEnv"] = [*extra, *env]
        return merged

    def _prepare_namespace(self) -> None:
        from kubernetes import client  # noqa: PLC0415

        secret = self.node.registry.pull_secret(IMAGE_PULL_SECRET, self.namespace)
        with self.node.plane.api_client() as api:
            core = client.CoreV1Api(api)
            with contextlib.suppress(client.ApiException):
                core.create_namespace({"metadata": {"name": self.namespace}})
            core.create_namespaced_secret(self.namespace, secret, _preload_content=False)

    # -- the scheduler's part --------------------------------------------------------------

    def _bind_loop(self) -> None:
        """Bind every unbound pod of the release namespace to the node until stopped."""
        from kubernetes import client  # noqa: PLC0415

        with self.node.plane.api_client() as api:
            core = client.CoreV1Api(api)
            while not self._stop.wait(BIND_INTERVAL):
                with contextlib.suppress(Exception):  # API server restarts: try again
                    for pod in self._pods(None, unbound=True):
                        meta = pod["metadata"]
                        if meta.get("deletionTimestamp"):
                            continue
                        binding = {
                            "apiVersion": "v1",
                            "kind": "Binding",
                            "metadata": {"name": meta["name"], "namespace": self.namespace},
                            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node.name},
                        }
                        core.create_namespaced_pod_binding(
                            meta["name"], self.namespace, binding, _preload_content=False
                        )
                        self._bound.add(meta["name"])

    # -- observing -------------------------------------------------------------------------

    def _pods(self, component: str | None, unbound: bool = False) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        query = {"labelSelector": selector}
        if unbound:
            query["fieldSelector"] = "spec.nodeName="
        status, body = self.node.plane.get(
            f"/api/v1/namespaces/{self.namespace}/pods?{urllib.parse.urlencode(query)}"
        )
        if status != 200:
            raise NodeReleaseError(f"listing pods failed: {status} {body[:200]!r}")
        items: list[dict[str, Any]] = json.loads(body).get("items", [])
        return sorted(items, key=lambda p: str(p["metadata"].get("creationTimestamp")))

    def pods(self, component: str) -> list[dict[str, Any]]:
        """The component's pods (oldest first), as the API server has them."""
        return self._pods(component)

    def pod(self, component: str) -> dict[str, Any]:
        """The component's one pod (replicaCount is 1); :class:`NodeReleaseError` if not one."""
        found = [p for p in self._pods(component) if not p["metadata"].get("deletionTimestamp")]
        if len(found) != 1:
            raise NodeReleaseError(f"{len(found)} {component} pods, expected one")
        return found[0]

    def wait_for(
        self,
        component: str,
        outcome: Callable[[Mapping[str, Any]], bool],
        what: str,
        timeout: float = READY_TIMEOUT,
    ) -> dict[str, Any]:
        """Poll until the component has one live pod and ``outcome(pod)``; return the pod."""
        seen: dict[str, Any] = {}

        def check() -> bool:
            pod = self.pod(component)
            seen["pod"] = pod
            return outcome(pod)

        self._wait(check, f"{component} pod: {what}", timeout)
        result: dict[str, Any] = seen["pod"]
        return result

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Both components' pods Ready (the controller's first: it makes the TLS Secret)."""
        for component in reversed(COMPONENTS):
            if self._replicas(component):
                self.wait_for(component, pod_ready, "Ready", timeout)

    def _replicas(self, component: str) -> int:
        deployment = self.helm.find("Deployment", f"-{component}")
        return int(deployment["spec"].get("replicas", 1))

    def scale(self, component: str, replicas: int) -> None:
        """Set the component Deployment's replicas (a test's way to order what happens)."""
        deployment = self.helm.find("Deployment", f"-{component}")["metadata"]["name"]
        result = self.node.plane.kubectl(
            "scale", "deployment", deployment, "-n", self.namespace, f"--replicas={replicas}"
        )
        if result.returncode != 0:
            raise NodeReleaseError(f"kubectl scale failed: {result.stderr}")

    def logs(self, component: str, tail: int = 200) -> str:
        """``kubectl logs`` of the component's pod: the API server asks the kubelet."""
        result = self.node.plane.kubectl(
            "logs",
            "-n",
            self.namespace,
            "-l",
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}",
            f"--tail={tail}",
        )
        return result.stdout + result.stderr

    def describe(self) -> str:
        """Pod states, events and log tails of both components, for failure reports."""
        parts: list[str] = []
        for component in COMPONENTS:
            try:
                pods = self._pods(component)
            except Exception as exc:  # a report must not fail
                parts.append(f"{component}: cannot list pods: {exc}")
                continue
            for pod in pods:
                name = pod["metadata"]["name"]
                node = pod["spec"].get("nodeName") or "unbound"
                parts.append(f"{component} pod {name} on {node}: {pod_state(pod)}")
                parts.extend(f"  event {e}" for e in self.node.events(self.namespace, name))
            if pods:
                parts.append(f"  logs:\n{self.logs(component, 30)}")
        return "\n".join(parts)

    def _kubelet_running(self) -> bool:
        return any(r.name == "kubelet" and is_running(r) for r in self.node.processes)

    def _wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            try:
                if check():
                    return
            except (NodeReleaseError, OSError, ValueError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise NodeReleaseError(
                    f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})\n"
                    + self.describe()
                )
            time.sleep(0.25)
