"""``make demo``: pullsecret-injector on a real control plane and a real node, in one go.

    python -m tools.demo up      # build/reuse binaries and image, start, install, show, wait
    python -m tools.demo down    # stop a running `up` from another shell (or what it left)

What it does, step by step, printing each result:

1. starts etcd + kube-apiserver + kube-controller-manager on 127.0.0.1 (tools/controlplane)
   and a node: kubelet + containerd + an authenticated registry (tools/node);
2. creates the source namespace ``pull-secrets`` with a pull secret for that registry (a
   password the registry made up) and ``helm install``s the chart from our image, pushed to
   the registry: the webhook and the controller run as pods on the node (tools/node_release);
3. creates namespace ``demo-team`` and a pod with a private image, a public one and an
   image whose rule names a secret that does not exist — admission only — and shows the
   stored pod's ``imagePullSecrets``, the admission warnings, the copied Secret and the
   patched ``default`` ServiceAccount;
4. the last mile: two pods from the same private image on the node, one admitted through
   the webhook (Running) and one opted out with the ``pullsecret-injector.io/inject: "false"``
   label (ImagePullBackOff), side by side;
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
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tools.controlplane import REPO, ControlPlane, resolve_bin_dir
from tools.image import ImageInfo, build_image_info
from tools.node import Node, pod_messages, pod_state, resolve_node_bin_dir
from tools.node_release import NodeRelease
from tools.processes import ProcessError, ProcessRecord, adopt, is_running, terminate

__all__ = [
    "binaries",
    "demo_pod",
    "down",
    "explain",
    "hints",
    "main",
    "policy",
    "say",
    "show",
    "show_release_pods",
    "side_by_side",
    "step",
    "up",
]

DEMO_DIR = Path(os.environ.get("PULLSECRET_DEMO_DIR", str(REPO / ".demo")))
RELEASE = "pullsecret-injector"
RELEASE_NAMESPACE = "pullsecret-injector"
SOURCE_NAMESPACE = "pull-secrets"
TEAM_NAMESPACE = "demo-team"
OPT_OUT = {"pullsecret-injector.io/inject": "false"}
PRIVATE_REPOSITORY = "team/app:1.0"
SIDE_BY_SIDE_TIMEOUT = 180.0  # a bound for a broken run, not a promise


def policy(registry: str) -> dict[str, Any]:
    """The demo's policy: the node's registry gets ``corp-pull``; a partner registry's rule
    names a secret that does not exist, to show the warning."""
    return {
        "defaults": {"sourceNamespace": SOURCE_NAMESPACE},
        "rules": [
            {
                "name": "corp-registry",
                "registries": [registry],
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


def demo_pod(private_image: str) -> dict[str, Any]:
    """Admission only (never scheduled): one image of each kind a rule can meet."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "demo"},
        "spec": {
            "containers": [
                {"name": "app", "image": private_image},
                {"name": "web", "image": "nginx:1.27"},
                {"name": "partner", "image": "partner.example.net/tools/agent:2"},
            ]
        },
    }


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n\033[1m==> {text}\033[0m")


def up(check: bool = False) -> int:
    """``check``: run every step, then stop everything instead of waiting (used by tests)."""
    if (DEMO_DIR / "state.json").exists():
        say("a previous demo is recorded in .demo/: stopping it first")
        down()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    began = time.monotonic()
    bin_dir, image = binaries()
    step("Starting etcd, kube-apiserver and kube-controller-manager on 127.0.0.1")
    plane = ControlPlane.start(DEMO_DIR / "cluster", bin_dir, detach=True)
    say(f"    API server {plane.api_url}, ready in {plane.timings['ready']:.1f}s")
    node: Node | None = None
    release: NodeRelease | None = None
    _record(plane.workdir, None)
    try:
        step("Starting a node: kubelet + containerd + a registry with TLS and a password")
        node = Node.start(DEMO_DIR / "node", plane)
        _record(plane.workdir, node)
        say(f"    node {node.name} Ready in {node.timings['node ready']:.1f}s")
        say(f"    registry https://{node.registry.host} (htpasswd; no anonymous pulls)")
        private_image = node.push_sleeper(PRIVATE_REPOSITORY)
        say(f"    pushed the private image {private_image}")
        with plane.api_client() as api:
            core = client.CoreV1Api(api)
            step(f"Source secret {SOURCE_NAMESPACE}/corp-pull for {node.registry.host}")
            core.create_namespace({"metadata": {"name": SOURCE_NAMESPACE}})
            core.create_namespaced_secret(
                SOURCE_NAMESPACE, node.registry.pull_secret("corp-pull", SOURCE_NAMESPACE)
            )
            step("helm install pullsecret-injector: our image, as pods on the node")
            release = NodeRelease(
                node,
                RELEASE,
                RELEASE_NAMESPACE,
                DEMO_DIR / "release",
                {"policy": policy(node.registry.host)},
                image_info=image,
            )
            release.start()
            _record(plane.workdir, node)
            say(f"    image {release.image}")
            show_release_pods(plane)
            show(core, plane, private_image)
            side_by_side(core, node, private_image)
        say(f"\n    ready {time.monotonic() - began:.0f}s after `up` started")
        _write_files(node.registry.host, private_image)
    except BaseException:
        say("\nsomething failed; stopping what was started")
        _finish(plane, node, release, quiet=True)
        raise
    explain()
    hints(plane)
    if check:
        return _finish(plane, node, release)
    return _wait_for_interrupt(plane, node, release)


def binaries() -> tuple[Path, ImageInfo]:
    step("Binaries and our image (built on first use from Go modules and the Dockerfile)")
    bin_dir = resolve_bin_dir()
    say(f"    control plane: {bin_dir}")
    say(f"    node:          {resolve_node_bin_dir()}")
    image = build_image_info()
    say(f"    image:         {image.reference} {image.digest[:19]}… ({image.archive})")
    return bin_dir, image


def hints(plane: ControlPlane) -> None:
    step("Running. Keep poking:")
    say(f"    export KUBECONFIG={plane.admin_kubeconfig}")
    say(f"    {plane.bin_dir}/kubectl get pods -A -o wide")
    say(f"    {plane.bin_dir}/kubectl describe pod -n {TEAM_NAMESPACE} opted-out")
    say(
        f"    .venv/bin/pullsecret-injector explain --policy {DEMO_DIR / 'policy.yaml'} "
        f"--secret {DEMO_DIR / 'corp-pull.yaml'} {DEMO_DIR / 'pod.yaml'}"
    )
    say("    Ctrl-C here (or `make demo-down` from another shell) stops everything.")


def explain() -> None:
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


def show_release_pods(plane: ControlPlane) -> None:
    step(f"The chart's pods in {RELEASE_NAMESPACE}, run by the kubelet from our image")
    listed = plane.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide")
    say("    " + listed.stdout.strip().replace("\n", "\n    "))


def show(core: Any, plane: ControlPlane, private_image: str) -> None:
    step(f"Namespace {TEAM_NAMESPACE}: kube-controller-manager creates its default ServiceAccount")
    core.create_namespace({"metadata": {"name": TEAM_NAMESPACE}})
    plane.wait_for_service_account(TEAM_NAMESPACE)
    step("Creating pod demo (admission only): a private image, a public one, and one whose")
    say("    secret is missing")
    response = core.create_namespaced_pod(
        TEAM_NAMESPACE, demo_pod(private_image), _preload_content=False
    )
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


def side_by_side(core: Any, node: Node, private_image: str) -> None:
    """Two pods of the same private image on the node: one admitted through the webhook,
    one opted out. Waits (bounded) until the kubelet has decided both."""
    step("The last mile: the same private image, admitted through the webhook vs. opted out")
    # The opted-out pod runs as a ServiceAccount opted out too: from the `default` one, which
    # the policy links, the ServiceAccount admission plugin would copy corp-pull into any pod
    # without pull secrets of its own — an opt-out label on the pod does not stop that.
    account = {"metadata": {"name": "opted-out", "labels": OPT_OUT}}
    core.create_namespaced_service_account(TEAM_NAMESPACE, account, _preload_content=False)
    opted_out = node.pod("opted-out", private_image, labels=OPT_OUT)
    opted_out["spec"]["serviceAccountName"] = "opted-out"
    pods = {"admitted": node.pod("admitted", private_image), "opted-out": opted_out}
    for body in pods.values():
        core.create_namespaced_pod(TEAM_NAMESPACE, body, _preload_content=False)
    verdicts = {"admitted": "Running", "opted-out": "ImagePullBackOff"}
    final: dict[str, Mapping[str, Any]] = {}
    for name, verdict in verdicts.items():
        final[name] = node.wait_for_pod(
            TEAM_NAMESPACE,
            name,
            _state_is(verdict),
            verdict,
            SIDE_BY_SIDE_TIMEOUT,
        )
    say(f"    {'POD':<11}{'IMAGE PULL SECRETS':<21}STATUS")
    for name, pod in final.items():
        secrets = ", ".join(s["name"] for s in pod["spec"].get("imagePullSecrets") or []) or "-"
        say(f"    {name:<11}{secrets:<21}{pod_state(pod)}")
    reason = next(iter(pod_messages(final["opted-out"])), "")
    if "no basic auth credentials" in reason:
        reason = "no basic auth credentials"
    labels = ", ".join(f"{k}={v}" for k, v in OPT_OUT.items())
    say(f"    opted-out (pod and ServiceAccount labelled {labels}):")
    say(f"      the kubelet had no credential for the registry ({reason})")


def _state_is(state: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda pod: pod_state(pod) == state


def _write_files(registry: str, private_image: str) -> None:
    """The demo's policy, secret and pod as files, for `pullsecret-injector explain`. The
    secret file holds a made-up password: explain needs only its auths keys."""
    document = {
        "apiVersion": "pullsecret-injector.io/v1",
        "kind": "PullSecretPolicy",
        **policy(registry),
    }
    (DEMO_DIR / "policy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    auth = base64.b64encode(b"demo-user:not-a-real-password").decode()
    config = {"auths": {registry: {"auth": auth}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "corp-pull", "namespace": SOURCE_NAMESPACE},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    (DEMO_DIR / "corp-pull.yaml").write_text(yaml.safe_dump(secret, sort_keys=False))
    pod = demo_pod(private_image)
    pod["metadata"]["namespace"] = TEAM_NAMESPACE
    (DEMO_DIR / "pod.yaml").write_text(yaml.safe_dump(pod, sort_keys=False))


def _record(cluster: Path, node: Node | None) -> None:
    """What `down` needs: this process (to signal), and every daemon (if we are gone).

    This process is recorded like the daemons, with its start time: `down` may run long
    after `up` was killed, when its PID can belong to anything."""
    this = adopt("demo up", os.getpid())
    if this is None:  # our own /proc entry is always there
        raise ProcessError(f"/proc/{os.getpid()}/stat is unreadable")
    daemons: list[ProcessRecord] = []
    if node is not None:
        daemons += node.processes
        if node.registry.record is not None:
            daemons.append(node.registry.record)
        if node.namespace is not None:
            daemons.append(node.namespace.record)
    state = {
        "up": asdict(this),
        "cluster": str(cluster),
        "node_processes": [asdict(r) for r in daemons],
    }
    (DEMO_DIR / "state.json").write_text(json.dumps(state, indent=2))


def _wait_for_interrupt(plane: ControlPlane, node: Node | None, release: NodeRelease | None) -> int:
    stop = {"now": False}

    def handler(signum: int, frame: object) -> None:
        del signum, frame
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop["now"]:
        time.sleep(0.5)
        if not all(plane.running().values()):
            say("a control-plane process exited unexpectedly; stopping")
            break
    return _finish(plane, node, release)


def _finish(
    plane: ControlPlane,
    node: Node | None,
    release: NodeRelease | None,
    quiet: bool = False,
) -> int:
    if not quiet:
        step("Stopping everything the demo started")
    for what, action in (
        ("release", release.stop if release is not None else None),
        ("node", node.stop if node is not None else None),
        ("control plane", plane.stop),
    ):
        if action is None:
            continue
        try:
            action()
        except Exception as exc:  # stop the rest whatever failed
            say(f"    stopping the {what} failed: {exc}")
    (DEMO_DIR / "state.json").unlink(missing_ok=True)
    if not quiet:
        say("    stopped")
    return 0


def down(timeout: float = 120.0) -> int:
    """Ask a running `up` to stop (SIGTERM: it stops pods, node and control plane in order,
    within ``timeout``, else SIGKILL). If `up` is gone (killed) or left something behind,
    stop the processes it recorded, each by its identity (PID and start time), never by name."""
    state_file = DEMO_DIR / "state.json"
    if not state_file.exists():
        say("no demo is recorded in .demo/")
        return 0
    state = json.loads(state_file.read_text())
    up_record = ProcessRecord(**state["up"])
    if is_running(up_record):
        say(f"asking the running demo (pid {up_record.pid}) to stop")
        with contextlib.suppress(ProcessError):
            terminate(up_record, timeout)
    if not state_file.exists():
        say("stopped")
        return 0
    for record in reversed([ProcessRecord(**p) for p in state["node_processes"]]):
        with contextlib.suppress(ProcessError):
            terminate(record)
            say(f"stopped {record.name} (pid {record.pid})")
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
