"""The last mile, for real: a kubelet pulling from an authenticated registry, on this host.

These prove the node fixture (tools/node.py) before any webhook test relies on it: a pod whose
image needs a password runs with the right pull secret and does not without one or with a
wrong one, exactly as on a cluster node; the kubelet is a node (Node authorizer), not an admin;
its containers stay inside the test suite's cgroup; and a whole node life, pod included,
leaves the host as it found it.

Every wait is for an outcome, bounded generously; no test asserts how fast anything was.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.e2e.hoststate import differences, snapshot
from tests.e2e.support import Api, unique
from tools.cgroups import own_paths
from tools.controlplane import ControlPlane
from tools.node import HARD_CODED, Node, pod_messages, pod_state, resolve_node_bin_dir
from tools.registry import dockerconfigjson_secret

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
WAIT = 120.0  # a bound for a broken run, not a performance claim


@pytest.fixture(scope="module")
def image(node: Node) -> str:
    """Our sleeper, pushed with credentials: only a pull with the password can get it."""
    return node.push_sleeper("e2e/private-app:1")


@pytest.fixture
def node_namespace(api: Api, control_plane: ControlPlane) -> Iterator[str]:
    """A namespace no webhook acts on, with its default ServiceAccount present."""
    name = unique("node")
    api.ensure_namespace(name)
    control_plane.wait_for_service_account(name)
    yield name
    api.core.delete_namespace(name)


def failed_pull(pod: Mapping[str, Any]) -> bool:
    return pod_state(pod) in PULL_FAILURES


def pull_failure_text(node: Node, namespace: str, name: str) -> str:
    """What a user sees about the failed pull: container messages and the pod's events."""
    pod = node.read_pod(namespace, name) or {}
    return "\n".join([*pod_messages(pod), *node.events(namespace, name)])


def test_a_node_leaves_the_host_as_it_found_it(
    control_plane: ControlPlane,
    api: Api,
    tmp_path: Path,
    node_namespace: str,
    running_nodes: list[Node],
) -> None:
    """A node of its own with a running private pod: before it starts and after it stops,
    the host has the same processes, mounts, kernel tunables, cgroups, files in the daemons'
    default places and firewall. It runs first in this module, so usually before the session
    node exists and the mount points for the kubelet's hard-coded paths are its own to create
    and remove; a session node already running is left out of every reading. The reading
    taken while it runs must see it, or this would prove nothing."""
    bins = [resolve_node_bin_dir(), control_plane.bin_dir]
    before = snapshot(bins, ignore=running_nodes)

    own = Node.start(tmp_path / "node", control_plane, name=unique("hygiene"))
    try:
        absent = {p for p, listing in before.paths if p in HARD_CODED and listing is None}
        assert absent <= {str(p) for p in own.created_host_dirs}, "mount points not made here"
        image = own.push_sleeper("e2e/hygiene:1")
        api.apply_secret(own.registry.pull_secret("registry-login", node_namespace))
        api.create_pod(node_namespace, own.pod("app", image, pull_secrets=["registry-login"]))
        own.wait_for_pod(
            node_namespace, "app", lambda p: pod_state(p) == "Running", "Running", WAIT
        )
        during = snapshot(bins, ignore=running_nodes)
    finally:
        own.stop()
    after = snapshot(bins, ignore=running_nodes)

    assert during.processes - before.processes, "the reading does not see the node's processes"
    assert during.cgroups - before.cgroups, "the reading does not see the pod's cgroups"
    assert during.sysctls == before.sysctls, "the kernel tunables changed while the node ran"
    assert during.mounts == before.mounts, "the node's mounts leaked into the host namespace"
    assert differences(before, after) == []
    assert own.swept == [], "stop had to kill processes nothing else ended"


def test_the_right_pull_secret_runs_the_private_image(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    api.apply_secret(node.registry.pull_secret("registry-login", node_namespace))
    api.create_pod(node_namespace, node.pod("app", image, pull_secrets=["registry-login"]))

    pod = node.wait_for_pod(
        node_namespace, "app", lambda p: pod_state(p) == "Running", "Running", WAIT
    )

    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True
    assert status["imageID"].endswith(image.rsplit("@", 1)[1]), "ran the image we pushed"
    assert pod["status"]["podIP"] == "127.0.0.1", "hostNetwork on a node whose IP is loopback"
    logs = node.plane.kubectl("logs", "-n", node_namespace, "app")
    assert "waiting for SIGTERM" in logs.stdout, logs.stderr  # API server -> kubelet works


def test_without_a_pull_secret_the_kubelet_cannot_pull(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    api.create_pod(node_namespace, node.pod("app", image))

    node.wait_for_pod(node_namespace, "app", failed_pull, " or ".join(PULL_FAILURES), WAIT)

    assert "no basic auth credentials" in pull_failure_text(node, node_namespace, "app")


def test_a_wrong_password_is_refused_by_the_registry(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    user, _ = node.registry.credentials()
    api.apply_secret(
        dockerconfigjson_secret(
            "stale-login", node_namespace, {node.registry.host: (user, "not-the-password")}
        )
    )
    api.create_pod(node_namespace, node.pod("app", image, pull_secrets=["stale-login"]))

    node.wait_for_pod(node_namespace, "app", failed_pull, " or ".join(PULL_FAILURES), WAIT)

    assert "401 Unauthorized" in pull_failure_text(node, node_namespace, "app")


def test_the_kubelet_reads_only_the_secrets_of_its_pods(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    """The kubelet is system:node:<name> under the Node authorizer: it can read a pull secret
    once a pod bound to it names it, and no other Secret, as on a real cluster."""
    api.apply_secret(node.registry.pull_secret("registry-login", node_namespace))
    api.apply_secret(node.registry.pull_secret("unrelated", node_namespace))
    as_kubelet = node.layout.kubelet_kubeconfig

    def kubelet_can_read(secret: str) -> bool:
        result = node.plane.kubectl(
            "get", "secret", secret, "-n", node_namespace, kubeconfig=as_kubelet
        )
        assert result.returncode == 0 or "forbidden" in result.stderr, result.stderr
        return result.returncode == 0

    assert not kubelet_can_read("registry-login")
    api.create_pod(node_namespace, node.pod("app", image, pull_secrets=["registry-login"]))
    node.wait_for_pod(node_namespace, "app", lambda p: pod_state(p) == "Running", "Running", WAIT)

    assert kubelet_can_read("registry-login")
    assert not kubelet_can_read("unrelated")


def test_containers_stay_inside_the_suites_own_cgroup(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    api.apply_secret(node.registry.pull_secret("registry-login", node_namespace))
    api.create_pod(node_namespace, node.pod("app", image, pull_secrets=["registry-login"]))
    pod = node.wait_for_pod(
        node_namespace, "app", lambda p: pod_state(p) == "Running", "Running", WAIT
    )
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix(
        "containerd://"
    )
    pid = node.tasks()[container_id]

    own = own_paths()
    assert node.cgroups is not None
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert lines
    for line in lines:  # every hierarchy, v2 included
        _, controllers, path = line.split(":", 2)
        ours = own[frozenset(controllers.split(",")) if controllers else frozenset()]
        assert PurePosixPath(path).is_relative_to(ours), f"{line} is outside our {ours}"
        assert PurePosixPath(path).is_relative_to(node.cgroups.path), line
        assert path != node.cgroups.path, line


def test_a_changed_registry_password_applies_to_the_next_pull(
    node: Node, api: Api, image: str, node_namespace: str
) -> None:
    """What rotation tests build on: the registry takes a new password without a restart,
    and the old one is refused from the next pull on."""
    user = unique("rotating")
    old_password = node.registry.set_password(user)
    api.apply_secret(node.registry.pull_secret("before", node_namespace, user=user))
    api.create_pod(node_namespace, node.pod("first", image, pull_secrets=["before"]))
    node.wait_for_pod(node_namespace, "first", lambda p: pod_state(p) == "Running", "Running", WAIT)

    new_password = node.registry.set_password(user)
    assert new_password != old_password
    api.apply_secret(node.registry.pull_secret("after", node_namespace, user=user))
    api.create_pod(node_namespace, node.pod("stale", image, pull_secrets=["before"]))
    api.create_pod(node_namespace, node.pod("fresh", image, pull_secrets=["after"]))

    node.wait_for_pod(node_namespace, "stale", failed_pull, " or ".join(PULL_FAILURES), WAIT)
    assert "401 Unauthorized" in pull_failure_text(node, node_namespace, "stale")
    node.wait_for_pod(node_namespace, "fresh", lambda p: pod_state(p) == "Running", "Running", WAIT)
