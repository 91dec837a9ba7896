"""``make demo``: pullsecret-injector on a real control plane, installed with Helm, in one go.

    python -m tools.demo up      # build/reuse binaries, start, install, show, wait for Ctrl-C
    python -m tools.demo down    # stop everything a previous `up` started (if it was killed)

What it does, step by step, printing each result:

1. starts etcd + kube-apiserver + kube-controller-manager on 127.0.0.1 (tools/controlplane);
2. creates the source namespace ``pull-secrets`` with a pull secret for
   ``registry.example.com`` (made-up credentials) and ``helm install``s the chart with a
   policy that injects it into pods, and links it to ``default`` ServiceAccounts;
3. runs the chart's webhook and controller Deployments as local processes, from the rendered
   manifests, with their own ServiceAccount tokens (tools/local_release);
4. creates namespace ``demo-team`` and a pod with a private image, a public one and an
   image whose rule names a secret that does not exist — then shows the stored pod's
   ``imagePullSecrets``, the admission warnings, the copied Secret and the patched
   ``default`` ServiceAccount;
5. leaves everything running with a kubeconfig for ``kubectl`` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tools.controlplane import REPO, ControlPlane, resolve_bin_dir
from tools.local_release import LocalRelease

DEMO_DIR = Path(os.environ.get("PULLSECRET_DEMO_DIR", str(REPO / ".demo")))
RELEASE = "pullsecret-injector"
RELEASE_NAMESPACE = "pullsecret-injector"
SOURCE_NAMESPACE = "pull-secrets"
TEAM_NAMESPACE = "demo-team"

POLICY: dict[str, Any] = {
    "defaults": {"sourceNamespace": SOURCE_NAMESPACE},
    "rules": [
        {
            "name": "corp-registry",
            "registries": ["registry.example.com"],
            "secrets": [{"name": "corp-pull"}],
            "serviceAccounts": {"names": ["default"]},
        },
        {
            "name": "partner-registry",
            "registries": ["partner.example.net"],
            "secrets": [{"name": "partner-pull"}],  # deliberately missing: shows a warning
        },
    ],
}


DEMO_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "demo"},
    "spec": {
        "containers": [
            {"name": "app", "image": "registry.example.com/team/app:1.0"},
            {"name": "web", "image": "nginx:1.27"},
            {"name": "partner", "image": "partner.example.net/tools/agent:2"},
        ]
    },
}


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n\033[1m==> {text}\033[0m")


def pull_secret() -> dict[str, Any]:
    auth = base64.b64encode(b"demo-user:not-a-real-password").decode()
    config = {"auths": {"registry.example.com": {"auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "corp-pull", "namespace": SOURCE_NAMESPACE},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


def up(check: bool = False) -> int:
    """``check``: run every step, then stop everything instead of waiting (used by tests)."""
    if (DEMO_DIR / "state.json").exists():
        say("a previous demo is recorded in .demo/: stopping it first")
        down()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    step("Control plane binaries (built from Go modules on first use; cached afterwards)")
    bin_dir = resolve_bin_dir()
    say(f"    {bin_dir}")
    step("Starting etcd, kube-apiserver and kube-controller-manager on 127.0.0.1")
    plane = ControlPlane.start(DEMO_DIR / "cluster", bin_dir, detach=True)
    say(f"    API server {plane.api_url}, ready in {plane.timings['ready']:.1f}s")
    release = LocalRelease(
        plane, RELEASE, RELEASE_NAMESPACE, DEMO_DIR / "release", {"policy": POLICY}
    )
    _record(plane, release)
    try:
        with plane.api_client() as api:
            core = client.CoreV1Api(api)
            step(f"Source secret {SOURCE_NAMESPACE}/corp-pull for registry.example.com")
            core.create_namespace({"metadata": {"name": SOURCE_NAMESPACE}})
            core.create_namespaced_secret(SOURCE_NAMESPACE, pull_secret())
            step("helm install pullsecret-injector (policy: see tools/demo.py POLICY)")
            release.install()
            say(f"    release {RELEASE} in namespace {RELEASE_NAMESPACE}")
            step("Running the chart's controller and webhook Deployments as local processes")
            release.start("-controller")
            release.start("-webhook")
            _record(plane, release)
            for pod in release.pods:
                say(f"    {pod.name}: pid {pod.process.pid}, log {pod.log_path}")
            show(core, plane)
    except BaseException:
        say("\nsomething failed; stopping what was started")
        release.stop()
        plane.stop()
        (DEMO_DIR / "state.json").unlink(missing_ok=True)
        raise
    step("Running. Keep poking:")
    say(f"    export KUBECONFIG={plane.admin_kubeconfig}")
    jsonpath = "-o jsonpath='{.spec.imagePullSecrets}'"
    say(f"    {bin_dir}/kubectl get pod -n {TEAM_NAMESPACE} demo {jsonpath}")
    say(
        f"    .venv/bin/pullsecret-injector explain --policy {DEMO_DIR / 'policy.yaml'} "
        f"--secret {DEMO_DIR / 'corp-pull.yaml'} {DEMO_DIR / 'pod.yaml'}"
    )
    say("    Ctrl-C here (or `make demo-down` from another shell) stops everything.")
    _write_files()
    step("Offline: why did the pod get what it got? (pullsecret-injector explain)")
    explained = subprocess.run(
        [
            str(Path(sys.executable).parent / "pullsecret-injector"),
            "explain",
            "--policy",
            str(DEMO_DIR / "policy.yaml"),
            "--secret",
            str(DEMO_DIR / "corp-pull.yaml"),
            str(DEMO_DIR / "pod.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    say("    " + (explained.stdout + explained.stderr).strip().replace("\n", "\n    "))
    if check:
        return _finish(plane, release)
    return _wait_for_interrupt(plane, release)


def show(core: Any, plane: ControlPlane) -> None:
    step(f"Namespace {TEAM_NAMESPACE}: kube-controller-manager creates its default ServiceAccount")
    core.create_namespace({"metadata": {"name": TEAM_NAMESPACE}})
    plane.wait_for_service_account(TEAM_NAMESPACE)
    pod = DEMO_POD
    step("Creating pod demo: a private image, a public one, and one whose secret is missing")
    response = core.create_namespaced_pod(TEAM_NAMESPACE, pod, _preload_content=False)
    stored = json.loads(response.data)
    say("    images: " + ", ".join(c["image"] for c in stored["spec"]["containers"]))
    say(f"    stored imagePullSecrets: {stored['spec'].get('imagePullSecrets')}")
    for warning in response.headers.getlist("Warning") if response.headers else []:
        say(f"    admission warning: {warning.removeprefix('299 - ').strip(chr(34))}")
    copy = json.loads(
        core.read_namespaced_secret("corp-pull", TEAM_NAMESPACE, _preload_content=False).data
    )
    step(f"The copy {TEAM_NAMESPACE}/corp-pull (the pod could pull the moment it was admitted)")
    meta = copy["metadata"]
    say(f"    type: {copy['type']}")
    say(f"    labels: {meta.get('labels')}")
    say(f"    annotations: {meta.get('annotations')}")
    decoded = json.loads(base64.b64decode(copy["data"][".dockerconfigjson"]))
    say(f"    auths keys (credentials not shown): {sorted(decoded['auths'])}")
    account = json.loads(
        core.read_namespaced_service_account("default", TEAM_NAMESPACE, _preload_content=False).data
    )
    step(f"The default ServiceAccount in {TEAM_NAMESPACE}, patched at creation")
    say(f"    imagePullSecrets: {account.get('imagePullSecrets')}")


def _write_files() -> None:
    """The demo's policy, secret and pod as files, for `pullsecret-injector explain`."""
    document = {"apiVersion": "pullsecret-injector.io/v1", "kind": "PullSecretPolicy", **POLICY}
    (DEMO_DIR / "policy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (DEMO_DIR / "corp-pull.yaml").write_text(yaml.safe_dump(pull_secret(), sort_keys=False))
    pod = {**DEMO_POD, "metadata": {"name": "demo", "namespace": TEAM_NAMESPACE}}
    (DEMO_DIR / "pod.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))


def _record(plane: ControlPlane, release: LocalRelease) -> None:
    state = {
        "cluster": str(plane.workdir),
        "processes": [{"pid": p.process.pid, "name": p.name} for p in release.pods],
    }
    (DEMO_DIR / "state.json").write_text(json.dumps(state, indent=2))


def _wait_for_interrupt(plane: ControlPlane, release: LocalRelease) -> int:
    stop = {"now": False}

    def handler(signum: int, frame: object) -> None:
        del signum, frame
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["now"]:
        time.sleep(0.5)
        if any(pod.process.poll() is not None for pod in release.pods):
            say("a demo process exited unexpectedly; stopping")
            break
    return _finish(plane, release)


def _finish(plane: ControlPlane, release: LocalRelease) -> int:
    step("Stopping everything the demo started")
    release.stop()
    plane.stop()
    (DEMO_DIR / "state.json").unlink(missing_ok=True)
    say("    stopped")
    return 0


def down() -> int:
    state_file = DEMO_DIR / "state.json"
    if not state_file.exists():
        say("no demo is recorded in .demo/")
        return 0
    state = json.loads(state_file.read_text())
    for process in state["processes"]:
        pid = int(process["pid"])
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"gunicorn" in cmdline or b"pullsecret-injector" in cmdline:
                os.kill(pid, signal.SIGTERM)
                say(f"stopped {process['name']} (pid {pid})")
    with contextlib.suppress(Exception):
        ControlPlane.attach(Path(state["cluster"])).stop()
        say("stopped the control plane")
    state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument(
        "--check", action="store_true", help="run every step, then stop (no waiting)"
    )
    args = parser.parse_args(argv)
    return up(check=args.check) if args.action == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
