"""Session fixtures for the end-to-end suite: one real control plane, one real webhook.

Everything under tests/e2e is marked ``e2e``. The control plane binaries come from
PULLSECRET_BIN_DIR or tools/build-control-plane.sh; if they cannot be had, the tests fail
with the reason — they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import (
    INJECT_LABEL,
    POLICY_HEADER,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    WEBHOOK_NAME,
    Api,
    WebhookServer,
    register_webhook,
    set_policy,
    unique,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import ControlPlane, bin_dir_from_env
from tools.node import Node

_PLANE: ControlPlane | None = None
_SERVER: WebhookServer | None = None
_NODE: Node | None = None

BASE_POLICY = POLICY_HEADER + "rules: []\n"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _PLANE is not None:
        report.sections.append(("control plane logs", _PLANE.log_tails(30)))
        if _SERVER is not None:
            report.sections.append(("webhook log", _SERVER.log_tail(40)))
        if _NODE is not None:
            report.sections.append(("node logs", _NODE.log_tails(30)))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    global _PLANE  # noqa: PLW0603 - the report hook needs it
    plane = ControlPlane.start(tmp_path_factory.mktemp("cluster"), bin_dir_from_env())
    _PLANE = plane
    yield plane
    plane.stop()
    _PLANE = None


@pytest.fixture(scope="session")
def node(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The real node (kubelet + containerd + registry), started only if a test asks for it."""
    global _NODE  # noqa: PLW0603 - the report hook needs it
    started = Node.start(tmp_path_factory.mktemp("node"), control_plane)
    _NODE = started
    yield started
    _NODE = None
    started.stop()


@pytest.fixture
def running_nodes() -> list[Node]:
    """The session's node if some test started it already (never starts one)."""
    return [_NODE] if _NODE is not None else []


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> Api:
    api = Api(control_plane)
    api.ensure_namespace(POLICY_NAMESPACE)
    api.ensure_namespace(SOURCE_NAMESPACE)
    return api


@pytest.fixture(scope="session")
def webhook(
    control_plane: ControlPlane, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookServer]:
    """The webhook process, registered by URL, proven to be called by the API server."""
    global _SERVER  # noqa: PLW0603 - the report hook needs it
    set_policy(api, BASE_POLICY)
    server = WebhookServer(control_plane, tmp_path_factory.mktemp("webhook"))
    server.start()
    _SERVER = server
    register_webhook(api, webhook_configuration(WEBHOOK_NAME, server.ca_pem, url=server.url))
    probe_namespace = unique("probe")
    api.ensure_namespace(probe_namespace, {INJECT_LABEL: "true"})
    control_plane.wait_for_service_account(probe_namespace)
    calls = lambda: server.metric_value(  # noqa: E731
        "pullsecret_injector_admission_requests_total", {"kind": "Pod"}
    )
    from tests.e2e.support import pod  # noqa: PLC0415

    def called() -> bool:
        api.create_pod(probe_namespace, pod("probe", "nginx"), dry_run=True)
        return (calls() or 0) > 0

    wait_until(called, "the API server to call the webhook", timeout=30, interval=0.5)
    api.core.delete_namespace(probe_namespace)
    yield server
    unregister_webhook(api, WEBHOOK_NAME)
    server.stop()
    _SERVER = None


@pytest.fixture
def namespace(api: Api, control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace the webhook acts on, with its default ServiceAccount present."""
    name = unique("e2e")
    api.ensure_namespace(name, {INJECT_LABEL: "true"})
    control_plane.wait_for_service_account(name)
    yield name
    api.core.delete_namespace(name)


@pytest.fixture
def policy(api: Api, webhook: WebhookServer) -> Iterator[object]:
    """Set a policy for one test (waits until every worker has it); resets afterwards."""

    def apply(rules_yaml: str) -> str:
        return set_policy(api, POLICY_HEADER + rules_yaml, webhook)

    yield apply
    set_policy(api, BASE_POLICY, webhook)
