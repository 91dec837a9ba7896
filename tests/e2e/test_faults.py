"""Faults while serving: the API server goes away, webhook processes are killed.

Each test runs its own webhook (own port, policy ConfigMap, MutatingWebhookConfiguration and
namespace label), so the session webhook other suites use stays healthy. The API-server
outage runs on a control plane of its own for the same reason: the session's watches are
never cut.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.reliability import (
    OwnWebhook,
    PodLoop,
    alive,
    kill_pid,
    listening_ports,
    measure,
    own_webhook,
    patched_secrets,
    post_mutate,
    process_name,
    review,
    socket_owner,
    tls_context,
    view_keeper,
    wait_policy,
    write_policy,
)
from tests.e2e.support import (
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    pod,
    pull_secret,
    secret_names,
    unique,
    wait_until,
)
from tools.controlplane import ControlPlane, bin_dir_from_env

RULES = """rules:
  - name: fault
    registries: [fault.example.com]
    secrets: [fault-pull]
"""


@pytest.fixture
def fault_source(api: Api) -> None:
    api.apply_secret(pull_secret("fault-pull", SOURCE_NAMESPACE, {"fault.example.com": "fault"}))


# -- (a) the API server goes away while the webhook serves ------------------------------------


@pytest.fixture
def own_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of our own: stopping its API server disturbs no other test."""
    plane = ControlPlane.start(tmp_path / "cluster", bin_dir_from_env())
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def own_api(own_plane: ControlPlane) -> Iterator[Api]:
    api = Api(own_plane)
    yield api
    api.api.close()


def test_the_webhook_answers_from_memory_while_the_api_server_is_down_and_recovers(
    own_plane: ControlPlane, own_api: Api, tmp_path: Path
) -> None:
    api = own_api
    api.ensure_namespace(POLICY_NAMESPACE)
    api.ensure_namespace(SOURCE_NAMESPACE)
    api.apply_secret(pull_secret("outage-pull", SOURCE_NAMESPACE, {"outage.example.com": "outage"}))
    rules = """rules:
  - {name: outage, registries: [outage.example.com], secrets: [outage-pull]}
  - {name: late, registries: [late.example.com], secrets: [late-pull]}
"""
    with own_webhook(own_plane, api, tmp_path / "webhook", "outage", rules) as hook:
        namespace = hook.namespace("outage")
        own_plane.wait_for_service_account(namespace)
        hook.wait_called(namespace)
        # A copy exists before the outage: the in-memory view knows it.
        stored, _ = api.create_pod(namespace, pod("before", "outage.example.com/app"))
        assert secret_names(stored) == ["outage-pull"]

        own_plane.stop_apiserver()
        outage_started = time.monotonic()
        assert not own_plane.running()["kube-apiserver"]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", own_plane.ports.apiserver), timeout=2).close()
        answers: list[tuple[int, list[str], float]] = []
        for index in range(20):
            started = time.monotonic()
            status, answer = post_mutate(
                hook.server,
                review(namespace, pod(f"outage-{index}", "outage.example.com/app")),
            )
            answers.append((status, patched_secrets(answer), time.monotonic() - started))
            time.sleep(0.25)
        # A pod in a namespace nobody can look up now: the patch is still given (the rule
        # does not depend on labels); no copy is created where labels (opt-out) are unknown,
        # and the warning says so.
        fresh = "fresh-" + unique("ns")
        status, answer = post_mutate(
            hook.server, review(fresh, pod("fresh", "outage.example.com/app"))
        )
        assert hook.server.ready(), "the webhook stays ready while the API server is gone"
        outage = time.monotonic() - outage_started

        started = time.monotonic()
        own_plane.start_apiserver()
        restart = time.monotonic() - started
        assert own_plane.running()["kube-apiserver"]
        # Watches recover: a source secret created after the restart is used.
        api.apply_secret(pull_secret("late-pull", SOURCE_NAMESPACE, {"late.example.com": "late"}))

        def late_used() -> bool:
            code, reply = post_mutate(
                hook.server, review(namespace, pod("late", "late.example.com/app"), dry_run=True)
            )
            return code == 200 and patched_secrets(reply) == ["late-pull"]

        _, recovered = measure(late_used, "the late secret to be used after the restart", 60)
        # That answer came from one worker; each worker's watch comes back on its own
        # backoff (up to 30 s). The API server may call any of them.
        wait_until(
            lambda: (
                (
                    hook.server.metric_value(
                        "pullsecret_injector_cache_objects", {"kind": "source_secrets"}
                    )
                    or 0
                )
                >= 2
            ),
            "every worker to hold outage-pull and late-pull",
            timeout=60,
        )
        stored, _ = api.create_pod(namespace, pod("after", "late.example.com/app"))
        log = hook.server.log_records()

    print(
        f"\nAPI server down {outage:.1f}s: {len(answers)} reviews answered, slowest "
        f"{max(a[2] for a in answers) * 1000:.0f} ms; restart to /readyz {restart:.1f}s; a "
        f"secret created after the restart was used {recovered:.1f}s after it was written"
    )
    assert [a[0] for a in answers] == [200] * len(answers)
    assert all(a[1] == ["outage-pull"] for a in answers), answers
    assert status == 200
    assert patched_secrets(answer) == ["outage-pull"]
    assert any(
        "could not be looked up: outage-pull not created now" in w
        for w in answer["response"]["warnings"]
    )
    assert secret_names(stored) == ["late-pull"]
    assert any(r.get("event") == "watch.error" for r in log), "the outage was logged"


# -- (b) the whole webhook killed under load, failurePolicy Ignore --------------------------------


def test_killing_the_webhook_under_a_pod_loop_fails_no_pod_creation(
    control_plane: ControlPlane, api: Api, fault_source: None, tmp_path: Path
) -> None:
    with own_webhook(control_plane, api, tmp_path / "webhook", "kill-master", RULES) as hook:
        namespace = hook.namespace("kill-master")
        try:
            control_plane.wait_for_service_account(namespace)
            hook.wait_called(namespace)
            # While nothing listens the API server is refused at once and admits unpatched
            # (failurePolicy Ignore), so the loop runs at full speed: room for 2 minutes of it.
            loop = PodLoop(
                control_plane, namespace, "fault.example.com/app", "fault-pull", max_pods=10_000
            )
            loop.start()
            restarts = []
            try:
                for _ in range(3):
                    time.sleep(2)
                    hook.kill_master()
                    time.sleep(1)  # pods are created while nothing listens
                    started = time.monotonic()
                    hook.server.start()
                    restarts.append(round(time.monotonic() - started, 1))
                    patched = loop.patched
                    wait_until(lambda: loop.patched > patched, "patched pods again", 30)  # noqa: B023
                time.sleep(2)
                assert loop.running(), "the loop ran for the whole scenario"
            finally:
                loop.stop()
        finally:
            api.core.delete_namespace(namespace)
    print(f"\nkill -9 gunicorn master x3 (restarts {restarts}): {loop.summary()}")
    assert loop.failures == [], loop.failures[:5]
    assert loop.created >= 50
    assert loop.patched > 0
    assert loop.created > loop.patched, "some pods were admitted while nothing listened"


# -- (c) one worker killed in the middle of a request -----------------------------------------


def test_a_worker_killed_mid_request_fails_no_admission(
    control_plane: ControlPlane, api: Api, fault_source: None, tmp_path: Path
) -> None:
    with own_webhook(control_plane, api, tmp_path / "webhook", "kill-worker", RULES) as hook:
        namespace = hook.namespace("kill-worker")
        try:
            control_plane.wait_for_service_account(namespace)
            hook.wait_called(namespace)
            loop = PodLoop(control_plane, namespace, "fault.example.com/app", "fault-pull")
            loop.start()
            killed: list[int] = []
            try:
                time.sleep(2)
                # A request the worker is in the middle of: headers and half the body sent.
                body = review(namespace, pod("half", "fault.example.com/app"))
                raw = socket.create_connection(("127.0.0.1", hook.server.port), timeout=60)
                conn = tls_context(hook.server).wrap_socket(raw, server_hostname="127.0.0.1")
                conn.sendall(
                    b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body[: len(body) // 2]
                )
                client_port = conn.getsockname()[1]
                owner = wait_until(
                    lambda: socket_owner(hook.workers(), hook.server.port, client_port),
                    "the worker holding the half-sent request",
                    timeout=60,
                )
                kill_pid(owner)
                killed.append(owner)
                try:
                    answer = conn.recv(1024)
                except (ssl.SSLError, OSError):
                    answer = b""
                conn.close()
                assert answer == b"", "the request died with its worker, without an answer"
                wait_until(lambda: len(hook.workers()) == 2, "the master to respawn", 30)
                # And a second one, at random, while the loop keeps the workers busy.
                time.sleep(2)
                victim = hook.workers()[0]
                kill_pid(victim)
                killed.append(victim)
                wait_until(lambda: len(hook.workers()) == 2, "the master to respawn", 30)
                patched = loop.patched
                wait_until(lambda: loop.patched > patched, "patched pods again", 30)
                time.sleep(2)
                assert loop.running(), "the loop ran for the whole scenario"
            finally:
                loop.stop()
            log = hook.server.log_records()
        finally:
            api.core.delete_namespace(namespace)
    print(f"\nkill -9 of 2 workers {killed} (first mid-request): {loop.summary()}")
    assert loop.failures == [], loop.failures[:5]
    assert loop.created >= 30
    for pid in killed:
        assert any(
            f"pid:{pid}" in str(r.get("msg")) and "SIGKILL" in str(r.get("msg")) for r in log
        ), f"the master logged worker {pid}'s death"
    booted = [r for r in log if str(r.get("msg", "")).startswith("Booting worker")]
    assert len(booted) >= 4, "two workers at start, one respawn per kill"


# -- (d) the view keeper killed -----------------------------------------------------------------


def serving_keeper(
    control_plane: ControlPlane, hook: OwnWebhook, namespace: str
) -> tuple[int, int, int]:
    """Once ``hook`` serves ``namespace``: its master, view keeper and the keeper's zygote."""
    control_plane.wait_for_service_account(namespace)
    hook.wait_called(namespace)
    assert hook.server.process is not None
    master = hook.server.process.pid
    keeper = view_keeper(master)
    assert keeper is not None, "the master runs a view keeper"
    zygote = int(Path(f"/proc/{keeper}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert process_name(zygote) == "view-keeper-sup"
    return master, keeper, zygote


def test_a_killed_view_keeper_is_forked_again_and_the_next_edit_is_in_force(
    control_plane: ControlPlane, api: Api, fault_source: None, tmp_path: Path
) -> None:
    """The keeper is forked from the master (through a zygote) and restarted by it. It and its
    zygote hold neither of the master's listening sockets (the keeper once inherited the
    webhook's, and held the port for its whole exit after a master crash, so the API server
    waited out its timeout instead of being refused)."""
    with own_webhook(control_plane, api, tmp_path / "webhook", "kill-keeper", RULES) as hook:
        namespace = hook.namespace("kill-keeper")
        try:
            master, keeper, zygote = serving_keeper(control_plane, hook, namespace)
            assert listening_ports(master) >= {hook.server.port, hook.server.health_port}
            assert listening_ports(zygote) == set() == listening_ports(keeper)

            loop = PodLoop(control_plane, namespace, "fault.example.com/app", "fault-pull")
            loop.start()
            try:
                time.sleep(1)
                kill_pid(keeper)
                wait_until(lambda: not alive(keeper), "the killed keeper to be gone", 30)
                again = wait_until(
                    lambda: (k := view_keeper(master)) not in (None, keeper) and k,
                    "the zygote to fork a new keeper",
                    30,
                )
                assert listening_ports(again) == set()
                # The new keeper lists afresh and publishes; the workers take its next edit.
                version = write_policy(
                    api, hook.configmap, RULES.replace("[fault-pull]", "[fault-pull, late-pull]")
                )
                wait_policy(hook.server, version, timeout=60)
                patched = loop.patched
                wait_until(lambda: loop.patched > patched, "patched pods after the restart", 30)
                assert loop.running(), "the loop ran for the whole scenario"
                assert alive(master), "a keeper's death does not stop the master"
            finally:
                loop.stop()
            log = hook.server.log_records()
        finally:
            api.core.delete_namespace(namespace)
    assert loop.failures == [], loop.failures[:5]
    restarts = [r for r in log if r.get("event") == "keeper.exited"]
    assert [r["code"] for r in restarts] == [-9], restarts


def test_a_killed_zygote_stops_the_master_and_its_keeper_so_the_pod_restarts_whole(
    control_plane: ControlPlane, api: Api, fault_source: None, tmp_path: Path
) -> None:
    """Without its zygote nothing would restart the keeper, and the workers would serve on
    from a view that no longer changes: the master stops itself (the kubelet then restarts
    the container) and the orphaned keeper follows its parent out."""
    with own_webhook(control_plane, api, tmp_path / "webhook", "kill-zygote", RULES) as hook:
        namespace = hook.namespace("kill-zygote")
        try:
            _, keeper, zygote = serving_keeper(control_plane, hook, namespace)
            kill_pid(zygote)
            wait_until(hook.server.exited, "the master to stop itself", 60)
            wait_until(lambda: not alive(keeper), "the orphaned keeper to exit", 30)
            log = hook.server.log_records()
        finally:
            api.core.delete_namespace(namespace)
    stopped = [r for r in log if r.get("event") == "keeper.supervisor_exited"]
    # The code is -9, or None when gunicorn's SIGCHLD handler reaped the zygote first.
    assert [r["code"] in (-9, None) for r in stopped] == [True], stopped
