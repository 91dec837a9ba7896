"""Install the Helm chart into the local control plane and run its pods as local processes.

There is no kubelet here, so Deployments never start containers. This module plays the
kubelet's part for the chart's two Deployments, as faithfully as a process can:

* the command, arguments and environment are taken from the *rendered* Deployment
  (``helm get manifest``), with ``fieldRef`` values filled in as the kubelet would;
* credentials are a real token of the chart's own ServiceAccount (TokenRequest API), so
  the processes run with exactly the chart's RBAC, nothing more;
* Secret volumes are projected into local directories and kept current (atomic renames),
  ``emptyDir`` volumes become temp directories, and container paths (``/app``, ``/tls``,
  ``/tmp``) are mapped onto them.

Two deliberate local differences: the processes bind 127.0.0.1 instead of the pod IP, and
the chart's Service is ``type: ExternalName`` to ``localhost``, so the API server reaches
the webhook through ``clientConfig.service`` and checks its certificate for
``<svc>.<ns>.svc`` exactly as in a cluster.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from certs.files import write_atomic
from tools.controlplane import REPO, ControlPlane, free_port
from tools.processes import Child

__all__ = ["LocalRelease", "RunningPod", "merge_values"]

VENV_BIN = Path(sys.executable).parent


@dataclass
class RunningPod:
    """One chart Deployment's container, run as a local process."""

    name: str
    child: Child
    health_url: str

    @property
    def log_path(self) -> Path:
        return Path(self.child.record.log)

    def ready(self) -> bool:
        code = self.child.exit_code()
        if code is not None:
            raise RuntimeError(f"{self.name} exited ({code}):\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM, as the kubelet does, then SIGKILL after ``timeout``. Idempotent."""
        self.child.stop(timeout)


@dataclass
class LocalRelease:
    plane: ControlPlane
    name: str
    namespace: str
    workdir: Path
    values: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    health_port: int = 0
    metrics_port: int = 0
    pods: list[RunningPod] = field(default_factory=list)
    _projections: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    # -- helm ----------------------------------------------------------------------------------

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.workdir / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "helm-config"),
            "HELM_DATA_HOME": str(self.workdir / "helm-data"),
        }
        result = subprocess.run(
            [
                str(self.plane.bin_dir / "helm"),
                f"--kubeconfig={self.plane.admin_kubeconfig}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=env,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"helm {args[0]} failed ({result.returncode}): {result.stderr}")
        return result

    def local_values(self) -> dict[str, Any]:
        """Values that make the chart reachable from the API server on loopback."""
        self.port = self.port or free_port()
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        overrides = {
            "service": {"type": "ExternalName", "externalName": "localhost", "port": self.port},
            "webhook": {"port": self.port, "healthPort": self.health_port},
            "controller": {"metricsPort": self.metrics_port},
        }
        return merge_values(self.values, overrides)

    def install(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        values_file = self.workdir / "values.yaml"
        values_file.write_text(yaml.safe_dump(self.local_values()))
        result = self.helm(
            "install",
            self.name,
            str(REPO / "charts" / "pullsecret-injector"),
            "--namespace",
            self.namespace,
            "--create-namespace",
            "-f",
            str(values_file),
        )
        return result.stdout

    def upgrade(self, values: dict[str, Any] | None = None, chart: Path | None = None) -> str:
        """``helm upgrade`` to ``values`` (default: the same) and ``chart`` (default: ours)."""
        if values is not None:
            self.values = values
        values_file = self.workdir / "values.yaml"
        values_file.write_text(yaml.safe_dump(self.local_values()))
        result = self.helm(
            "upgrade",
            self.name,
            str(chart or REPO / "charts" / "pullsecret-injector"),
            "--namespace",
            self.namespace,
            "-f",
            str(values_file),
        )
        return result.stdout

    def uninstall(self) -> None:
        self.helm("uninstall", self.name, "--namespace", self.namespace, check=False)

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm("get", "manifest", self.name, "--namespace", self.namespace).stdout
        return [d for d in yaml.safe_load_all(text) if d]

    def find(self, kind: str, suffix: str) -> dict[str, Any]:
        for obj in self.manifest():
            if obj["kind"] == kind and obj["metadata"]["name"].endswith(suffix):
                return obj
        raise KeyError(f"{kind} *{suffix} not in the release")

    # -- the kubelet's part ------------------------------------------------------------------

    def token_kubeconfig(self, service_account: str) -> Path:
        from kubernetes import client  # noqa: PLC0415 - only this helper needs the client

        with self.plane.api_client() as api:
            response = client.CoreV1Api(api).create_namespaced_service_account_token(
                service_account,
                self.namespace,
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 7200},
                },
                _preload_content=False,
            )
        token = json.loads(response.data)["status"]["token"]
        return self.plane.kubeconfig_for_token(token)

    def start(self, deployment_suffix: str, wait: float = 60.0) -> RunningPod:
        """Run the Deployment's container like the kubelet would, and wait for readiness."""
        deployment = self.find("Deployment", deployment_suffix)
        pod_spec = deployment["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        pod_name = f"{deployment['metadata']['name']}-local"
        root = self.workdir / pod_name
        mounts = self._volumes(pod_spec, container, root)
        env = self._env(container, pod_name, mounts)
        env["PSI_BIND_ADDRESS"] = "127.0.0.1"  # a pod binds its own IP; we stay on loopback
        env["PSI_KUBECONFIG"] = str(self.token_kubeconfig(pod_spec["serviceAccountName"]))
        argv = [
            _map_path(a, mounts)
            for a in [*container.get("command", []), *container.get("args", [])]
        ]
        argv[0] = str(VENV_BIN / argv[0])
        # The container's command is one of our console scripts: it runs the interpreter.
        child = Child.spawn(
            pod_name, argv, log=root / "container.log", cwd=root, env=env, exe=sys.executable
        )
        probe = container["readinessProbe"]["httpGet"]
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
        running = RunningPod(pod_name, child, f"http://127.0.0.1:{port}{probe['path']}")
        self.pods.append(running)
        deadline = time.monotonic() + wait
        while not running.ready():
            if time.monotonic() > deadline:
                running.stop()
                raise TimeoutError(f"{pod_name} not ready after {wait}s:\n{running.log_tail()}")
            time.sleep(0.2)
        return running

    def _volumes(
        self, pod_spec: Mapping[str, Any], container: Mapping[str, Any], root: Path
    ) -> dict[str, Path]:
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        mounts: dict[str, Path] = {"/app": REPO}
        for mount in container.get("volumeMounts", []):
            local = root / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes[mount["name"]]
            if "secret" in volume:
                self._project_secret(volume["secret"]["secretName"], local)
            mounts[mount["mountPath"]] = local
        return mounts

    def _project_secret(self, name: str, directory: Path, wait: float = 60.0) -> None:
        """Mount a Secret: wait for it like a pod in ContainerCreating, then keep it current."""
        from kubernetes import client  # noqa: PLC0415

        api = self.plane.api_client()
        core = client.CoreV1Api(api)

        def sync() -> bool:
            try:
                secret = json.loads(
                    core.read_namespaced_secret(name, self.namespace, _preload_content=False).data
                )
            except Exception:
                return False
            for key, value in (secret.get("data") or {}).items():
                data = base64.b64decode(value)
                path = directory / key
                if not path.exists() or path.read_bytes() != data:
                    write_atomic(path, data, 0o600)
            return True

        deadline = time.monotonic() + wait
        while not sync():
            if time.monotonic() > deadline:
                raise TimeoutError(f"Secret {self.namespace}/{name} never appeared")
            time.sleep(0.2)

        def keep_current() -> None:
            while not self._stop.wait(1.0):
                sync()
            api.close()

        thread = threading.Thread(target=keep_current, daemon=True)
        thread.start()
        self._projections.append(thread)

    def _env(
        self, container: Mapping[str, Any], pod_name: str, mounts: Mapping[str, Path]
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSI_", "PROMETHEUS_"))}
        field_values = {"metadata.name": pod_name, "metadata.namespace": self.namespace}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _map_path(str(item["value"]), mounts)
            elif "fieldRef" in item.get("valueFrom", {}):
                env[item["name"]] = field_values[item["valueFrom"]["fieldRef"]["fieldPath"]]
        return env

    def stop(self) -> None:
        self._stop.set()
        for pod in reversed(self.pods):
            pod.stop()
        self.pods.clear()


def _map_path(value: str, mounts: Mapping[str, Path]) -> str:
    for container_path in sorted(mounts, key=len, reverse=True):
        if value == container_path or value.startswith(container_path + "/"):
            return str(mounts[container_path]) + value[len(container_path) :]
    return value


def merge_values(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's way of layering values: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
