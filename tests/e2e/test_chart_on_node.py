"""The last mile: the chart's webhook and controller as pods of our image on the real node,
and the pods they admit pulling from an authenticated registry.

One release for the module (tools/node_release.py): our image pushed to the node's registry,
``helm install`` with ``image.repository`` pointing there, both components running as a
restricted-v2 arbitrary UID with hostNetwork, self-managed certificates. Every scenario below
goes through those pods — the webhook pod admits, the controller pod copies and follows
rotations — and ends at the kubelet pulling, or refusing to pull, with what they provided. No
process of the product runs outside the node here.

Each namespace the tests create matches one rule of the module's policy by name glob
(``app-*``, ``rot-*``, ``subset-*``...) and carries :data:`NODE_LABEL`, the only namespaces the
release's webhook is called for. Every wait is for an outcome with a generous bound; nothing
asserts how fast anything was.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import Api, secret_names, unique, wait_until
from tools.controlplane import ControlPlane
from tools.node import Node, pod_messages, pod_state
from tools.node_release import ARBITRARY_UID, NodeRelease, pod_ready
from tools.registry import Registry, dockerconfigjson_secret

# A cold cache builds the image first (~3 min on 2 cores); warm, the module takes ~2 min.
pytestmark = pytest.mark.timeout(1800)

RELEASE = "psi-node"
RELEASE_NAMESPACE = "psi-node"
SOURCES = "psi-node-src"
NODE_LABEL = "e2e.pullsecret-injector.io/node"
OPT_OUT = {"pullsecret-injector.io/inject": "false"}
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
WAIT = 180.0  # a bound for a broken run, not a performance claim


@dataclass
class Scene:
    """The module's release and what its scenarios share."""

    release: NodeRelease
    node: Node
    other: Registry
    """A second registry: the credential-subset scenario's registry nobody granted."""
    rotating_user: str
    order_user: str
    certificate_wait: dict[str, Any] = field(default_factory=dict)
    """What the webhook pod did before the controller existed (see the fixture)."""


def _policy(host: str, other: str) -> dict[str, Any]:
    return {
        "defaults": {"sourceNamespace": SOURCES},
        "rules": [
            {
                "name": "app",
                "registries": [f"{host}/app"],
                "secrets": ["app-pull"],
                "namespaces": {"include": ["app-*"]},
            },
            {
                "name": "rotation",
                "registries": [f"{host}/rot"],
                "secrets": ["rot-pull"],
                "namespaces": {"include": ["rot-*"]},
            },
            {
                "name": "subset",
                "registries": [host],
                "secrets": [{"name": "two-registries", "targetName": "subset-pull"}],
                "credentialSubset": True,
                "namespaces": {"include": ["subset-*"]},
            },
            {
                "name": "verbatim",
                "registries": [host],
                "secrets": [{"name": "two-registries", "targetName": "verbatim-pull"}],
                "namespaces": {"include": ["verbatim-*"]},
            },
            {
                # No registries: the secret's own auths keys are the patterns.
                "name": "order",
                "secrets": ["order-pull"],
                "namespaces": {"include": ["order-*"]},
            },
        ],
    }


def order_secret(node: Node, namespace: str, user: str) -> dict[str, Any]:
    """``<host>/team`` holds a wrong password, ``<host>`` the right one."""
    host = node.registry.host
    return dockerconfigjson_secret(
        "order-pull",
        namespace,
        {f"{host}/team": (user, "not-the-password"), host: node.registry.credentials(user)},
    )


@pytest.fixture(scope="module")
def scene(
    node: Node, api: Api, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    """Install with the controller scaled to zero first: the webhook pod must then wait for
    its TLS Secret in ContainerCreating (not crash-loop); scaled to one, the controller makes
    the Secret and both become Ready. The second registry is started and trusted first."""
    other = Registry(tmp_path_factory.mktemp("other-registry"), node.bin_dir)
    other.start()
    node.trust_registry(other)
    rotating, order = unique("rotating"), unique("order")
    node.registry.set_password(rotating)
    node.registry.set_password(order)
    api.ensure_namespace(SOURCES)
    registry = node.registry
    api.apply_secret(registry.pull_secret("app-pull", SOURCES))
    api.apply_secret(registry.pull_secret("rot-pull", SOURCES, user=rotating))
    api.apply_secret(
        dockerconfigjson_secret(
            "two-registries",
            SOURCES,
            {registry.host: registry.credentials(), other.host: other.credentials()},
        )
    )
    api.apply_secret(order_secret(node, SOURCES, order))
    values = {
        "policy": _policy(registry.host, other.host),
        "admissionWebhook": {
            "timeoutSeconds": 10,
            "namespaceSelector": {
                "matchExpressions": [{"key": NODE_LABEL, "operator": "In", "values": ["true"]}]
            },
        },
        "controller": {"replicaCount": 0},
    }
    release = NodeRelease(
        node, RELEASE, RELEASE_NAMESPACE, tmp_path_factory.mktemp("node-release"), values
    )
    release.start(wait=False)
    try:
        seen = release.wait_for(
            "webhook",
            lambda p: any("FailedMount" in e for e in node.events(RELEASE_NAMESPACE, _name(p))),
            "waiting for its TLS Secret",
            WAIT,
        )
        wait_state = {
            "state": pod_state(seen),
            "events": node.events(RELEASE_NAMESPACE, _name(seen)),
        }
        release.scale("controller", 1)
        release.wait_ready(WAIT)
        yield Scene(release, node, other, rotating, order, wait_state)
    finally:
        release.stop()
        other.stop()
        api.core.delete_namespace(SOURCES)


def _name(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["name"])


@pytest.fixture
def namespaces(api: Api, control_plane: ControlPlane) -> Iterator[Any]:
    """``make(prefix)``: a namespace the release's webhook acts on; all deleted afterwards."""
    made: list[str] = []

    def make(prefix: str, wait_for_account: bool = True) -> str:
        name = unique(prefix)
        api.ensure_namespace(name, {NODE_LABEL: "true"})
        made.append(name)
        if wait_for_account:
            control_plane.wait_for_service_account(name)
        return name

    yield make
    for name in made:
        api.core.delete_namespace(name)


def running(pod: Mapping[str, Any]) -> bool:
    return pod_state(pod) == "Running"


def failed_pull(pod: Mapping[str, Any]) -> bool:
    return pod_state(pod) in PULL_FAILURES


def container_states(pod: Mapping[str, Any]) -> dict[str, str]:
    """Container name → ``running`` or its waiting reason (``ErrImagePull``...)."""
    states = {}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state:
            states[status["name"]] = "running"
        else:
            detail = state.get("waiting") or state.get("terminated") or {}
            states[status["name"]] = str(detail.get("reason") or "unknown")
    return states


def pull_failure_text(node: Node, namespace: str, name: str) -> str:
    pod = node.read_pod(namespace, name) or {}
    return "\n".join([*pod_messages(pod), *node.events(namespace, name)])


def with_containers(pod: dict[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """``pod`` (from :meth:`Node.pod`) with one container per name → image instead."""
    template = pod["spec"]["containers"][0]
    pod["spec"]["containers"] = [{**template, "name": n, "image": i} for n, i in images.items()]
    return pod


def auths_keys(secret: Mapping[str, Any] | None) -> list[str]:
    assert secret is not None
    payload = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return sorted(payload["auths"])


# -- the chart's pods ----------------------------------------------------------------------


def test_the_charts_pods_run_our_image_as_an_arbitrary_uid_on_a_read_only_root(
    scene: Scene,
) -> None:
    """Both Deployments' pods are Ready (their readiness probes pass on the kubelet), run the
    image we pushed — by digest, pulled with the chart's ``imagePullSecrets`` — as UID
    1000680000 in group 0 on a read-only root filesystem, the webhook with the TLS Secret
    the controller made mounted at /tls."""
    node, release = scene.node, scene.release
    tasks = node.tasks()
    for component in ("webhook", "controller"):
        pod = release.pod(component)
        assert pod_ready(pod), component
        status = pod["status"]["containerStatuses"][0]
        assert status["restartCount"] == 0, f"{component} restarted: {release.logs(component)}"
        assert status["imageID"].endswith(release.image.rsplit("@", 1)[1]), component
        assert pod["spec"]["imagePullSecrets"] == [{"name": "pullsecret-injector-image"}]
        pid = tasks[status["containerID"].removeprefix("containerd://")]
        ids = {
            line.split(":")[0]: line.split()[1:]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith(("Uid:", "Gid:"))
        }
        assert ids["Uid"] == [str(ARBITRARY_UID)] * 4, component
        assert ids["Gid"] == ["0"] * 4, component
        root = next(
            line.split()
            for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        assert "ro" in root[5].split(","), f"{component}: root mounted {root[5]}"
    webhook_pid = tasks[
        release.pod("webhook")["status"]["containerStatuses"][0]["containerID"].removeprefix(
            "containerd://"
        )
    ]
    secret = release.helm.find("Deployment", "-webhook")["spec"]["template"]["spec"]["volumes"]
    tls_secret = next(v["secret"]["secretName"] for v in secret if v["name"] == "tls")
    served = Path(f"/proc/{webhook_pid}/root/tls/tls.crt").read_bytes()
    stored = Api(node.plane).secret(RELEASE_NAMESPACE, tls_secret)
    assert stored is not None
    assert served == base64.b64decode(stored["data"]["tls.crt"])


def test_the_webhook_pod_waits_for_its_certificate_instead_of_crash_looping(
    scene: Scene,
) -> None:
    """Before any controller ran, the webhook pod sat in ContainerCreating with the kubelet
    reporting the missing TLS Secret; it started once the controller pod created it."""
    waited = scene.certificate_wait
    assert waited["state"] == "ContainerCreating", waited
    assert any("FailedMount" in e and "tls" in e and "not found" in e for e in waited["events"]), (
        waited
    )
    assert scene.release.pod("webhook")["status"]["containerStatuses"][0]["restartCount"] == 0


# -- what the pods they admit can pull -----------------------------------------------------


def test_a_pod_gets_its_secret_from_the_webhook_pod_and_runs_and_the_opted_out_one_cannot(
    scene: Scene, api: Api, namespaces: Any
) -> None:
    node = scene.node
    image = node.push_sleeper("app/private:1")
    namespace = namespaces("app")

    stored, warnings = api.create_pod(namespace, node.pod("admitted", image))
    api.create_pod(namespace, node.pod("opted-out", image, labels=OPT_OUT))

    assert secret_names(stored) == ["app-pull"], warnings
    node.wait_for_pod(namespace, "admitted", running, "Running", WAIT)
    node.wait_for_pod(namespace, "opted-out", failed_pull, " or ".join(PULL_FAILURES), WAIT)
    assert "no basic auth credentials" in pull_failure_text(node, namespace, "opted-out")
    decided = [
        json.loads(line)
        for line in scene.release.logs("webhook", 2000).splitlines()
        if '"admission.decided"' in line
    ]
    pods_decided = [
        d["result"] for d in decided if d.get("namespace") == namespace and d["kind"] == "Pod"
    ]
    assert pods_decided == ["patched"], "the webhook pod did not decide exactly one pod there"


def test_the_controller_pod_pre_provisions_copies_before_any_pod(
    scene: Scene, api: Api, namespaces: Any
) -> None:
    namespace = namespaces("app", wait_for_account=False)

    copy = wait_until(lambda: api.secret(namespace, "app-pull"), "the pre-provisioned copy", 60)

    assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pullsecret-injector"
    assert copy["data"] == (api.secret(SOURCES, "app-pull") or {}).get("data")


def test_a_namespace_created_one_second_before_its_pod_runs_it_at_the_first_pull(
    scene: Scene, api: Api, namespaces: Any
) -> None:
    """The copy exists when the kubelet first asks for it: the pod's first pull succeeds,
    with no failed attempt in its events."""
    node = scene.node
    image = node.push_sleeper("app/fresh-namespace:1")
    namespace = namespaces("app", wait_for_account=False)
    time.sleep(1)

    def create() -> bool:
        try:
            api.create_pod(namespace, node.pod("first", image))
        except ApiException as exc:  # the ServiceAccount may still be on its way
            if exc.status == 403 and "serviceaccount" in str(exc.body):
                return False
            raise
        return True

    wait_until(create, "the API server to accept the pod", 60, 0.2)
    node.wait_for_pod(namespace, "first", running, "Running", WAIT)
    events = node.events(namespace, "first")
    assert not [e for e in events if e.startswith(("Failed", "BackOff"))], events
    assert any(e.startswith("Pulled: Successfully pulled") for e in events), events


def test_rotation_new_pods_pull_with_the_new_password_and_the_cached_image_stays_ours(
    scene: Scene, api: Api, namespaces: Any
) -> None:
    """KEP-2535 (``KubeletEnsureSecretPulledImages``): the kubelet lets a pod use an image it
    pulled before only if the pod's pull secret has the coordinates (namespace, name, UID)
    or the credential hash of one that pulled it. After the rotation the copy holds new
    credentials (a new hash); that our pod still gets the cached image without a pull shows
    the copy kept its UID — rotated in place. A pod without a secret is refused the cached
    image; a new pod pulls with the new password."""
    node = scene.node
    image = node.push_sleeper("rot/app:1")
    namespace = namespaces("rot")
    api.create_pod(namespace, node.pod("before", image, pull_policy="IfNotPresent"))
    node.wait_for_pod(namespace, "before", running, "Running", WAIT)
    copy_before = api.secret(namespace, "rot-pull")
    assert copy_before is not None

    node.registry.set_password(scene.rotating_user)
    rotated = node.registry.pull_secret("rot-pull", SOURCES, user=scene.rotating_user)
    api.apply_secret(rotated)
    copy = wait_until(
        lambda: (c := api.secret(namespace, "rot-pull")) and c["data"] == rotated["data"] and c,
        "the controller pod to rotate the copy",
        60,
    )
    assert copy["metadata"]["uid"] == copy_before["metadata"]["uid"], "copy was replaced"

    api.create_pod(namespace, node.pod("cached", image, pull_policy="IfNotPresent"))
    node.wait_for_pod(namespace, "cached", running, "Running", WAIT)
    cached_events = node.events(namespace, "cached")
    assert any("already present on machine" in e for e in cached_events), cached_events
    assert not any(e.startswith("Pulling") for e in cached_events), cached_events

    api.create_pod(
        namespace, node.pod("no-secret", image, pull_policy="IfNotPresent", labels=OPT_OUT)
    )
    node.wait_for_pod(namespace, "no-secret", failed_pull, " or ".join(PULL_FAILURES), WAIT)
    assert "no basic auth credentials" in pull_failure_text(node, namespace, "no-secret")

    api.create_pod(namespace, node.pod("fresh", image, pull_policy="Always"))
    node.wait_for_pod(namespace, "fresh", running, "Running", WAIT)
    assert any(e.startswith("Pulled: Successfully pulled") for e in node.events(namespace, "fresh"))


def test_a_credential_subset_copy_pulls_only_from_the_granted_registry(
    scene: Scene, api: Api, namespaces: Any
) -> None:
    """The source holds working credentials for two registries; the rule grants one. The
    copy carries only that entry: the granted image runs and the other registry refuses the
    pod's second container. The same pod where a rule copies the source verbatim runs both:
    the subset, not the credentials, is what refuses."""
    node = scene.node
    images = {
        "granted": node.push_sleeper("sub/app:1"),
        "ungranted": node.push_sleeper("sub/app:1", registry=scene.other),
    }
    subset_ns, verbatim_ns = namespaces("subset"), namespaces("verbatim")

    api.create_pod(subset_ns, with_containers(node.pod("two", images["granted"]), images))
    api.create_pod(verbatim_ns, with_containers(node.pod("two", images["granted"]), images))

    assert auths_keys(api.secret(subset_ns, "subset-pull")) == [node.registry.host]
    assert auths_keys(api.secret(verbatim_ns, "verbatim-pull")) == sorted(
        [node.registry.host, scene.other.host]
    )
    pod = node.wait_for_pod(
        subset_ns,
        "two",
        lambda p: (
            container_states(p).get("granted") == "running"
            and container_states(p).get("ungranted") in PULL_FAILURES
        ),
        "granted running, ungranted refused",
        WAIT,
    )
    assert any("no basic auth credentials" in m for m in pod_messages(pod)), pod_messages(pod)
    node.wait_for_pod(verbatim_ns, "two", running, "both containers Running", WAIT)


def test_the_kubelet_tries_keys_in_reverse_lexicographic_order_and_falls_back(
    scene: Scene, api: Api, namespaces: Any, tmp_path: Path
) -> None:
    """A secret with ``<host>/team`` (a wrong password) and ``<host>`` (the right one):
    ``team/app`` and ``teamx/app`` (a string prefix, not a path) are first tried with the
    ``/team`` key — the registry refuses it — and pull with the host key after the kubelet
    falls back; ``other/app`` uses only the host key. The admission warning and ``explain``
    say so before the pod exists."""
    node = scene.node
    images = {
        "team": node.push_sleeper("team/app:1"),
        "teamx": node.push_sleeper("teamx/app:1"),
        "other": node.push_sleeper("other/app:1"),
    }
    namespace = namespaces("order")
    pod = with_containers(node.pod("ordered", images["team"]), images)
    stored, warnings = api.create_pod(namespace, pod)

    assert secret_names(stored) == ["order-pull"]
    node.wait_for_pod(namespace, "ordered", running, "all three Running", WAIT)
    host = node.registry.host
    refused_before_pulled = {}
    for name in images:
        uri = f"/v2/{name}/app/manifests/"
        records = [
            r for r in node.registry.log_records() if r.get("http.request.uri", "").startswith(uri)
        ]
        outcomes = [
            "refused" if "authentication failure" in r["msg"] else r.get("auth.user.name", "")
            for r in records
            if "authentication failure" in r["msg"] or r["msg"] == "authorized request"
        ]
        assert scene.order_user in outcomes, (name, outcomes)
        first_success = outcomes.index(scene.order_user)
        refused_before_pulled[name] = "refused" in outcomes[:first_success]
    assert refused_before_pulled == {"team": True, "teamx": True, "other": False}

    expected = f"{host}/teamx/app"
    assert any(expected in w and f"{host}/team" in w for w in warnings), warnings
    manifest = {**pod, "metadata": {"name": "ordered", "namespace": namespace}}
    explained = explain(tmp_path, order_secret(node, SOURCES, scene.order_user), manifest)
    assert "kubelet would try auths keys, in this order" in explained, explained
    assert f"{host}/team, {host}" in explained, explained


def explain(tmp_path: Path, secret: Mapping[str, Any], pod: Mapping[str, Any]) -> str:
    """``pullsecret-injector explain`` on the module's policy, the secret and the pod."""
    policy = {
        "apiVersion": "pullsecret-injector.io/v1",
        "kind": "PullSecretPolicy",
        **_policy("unused.example", "unused2.example"),
    }
    files = {"policy.yaml": policy, "secret.yaml": secret, "pod.yaml": pod}
    for name, document in files.items():
        (tmp_path / name).write_text(yaml.safe_dump(dict(document)))
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "pullsecret-injector"),
            "explain",
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--secret",
            str(tmp_path / "secret.yaml"),
            str(tmp_path / "pod.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
