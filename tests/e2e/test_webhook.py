"""The webhook, called by a real kube-apiserver, as a cluster operator would see it."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    POLICY_CONFIGMAP,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    WebhookServer,
    pod,
    pull_secret,
    register_webhook,
    secret_names,
    set_policy,
    unique,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import ControlPlane, free_port

CORP_RULES = """rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull]
    serviceAccounts: {names: [default]}
"""

Policy = Callable[[str], str]


@pytest.fixture
def corp_source(api: Api) -> None:
    api.apply_secret(pull_secret("corp-pull", SOURCE_NAMESPACE, {"registry.example.com": "corp"}))


def test_pod_gets_the_secret_and_its_copy_exists_when_it_is_stored(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy(CORP_RULES)
    stored, warnings = api.create_pod(
        namespace, pod("app", "registry.example.com/team/app:1", "nginx")
    )
    assert secret_names(stored) == ["corp-pull"]
    assert warnings == []
    copy = api.secret(namespace, "corp-pull")
    assert copy is not None, "the copy must exist before the pod is admitted"
    assert copy["type"] == "kubernetes.io/dockerconfigjson"
    assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pullsecret-injector"
    assert (
        copy["metadata"]["annotations"]["pullsecret-injector.io/source"] == "pull-secrets/corp-pull"
    )
    source = api.secret(SOURCE_NAMESPACE, "corp-pull")
    assert source is not None
    assert copy["data"] == source["data"]


def test_a_pod_that_needs_nothing_is_stored_untouched(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy(CORP_RULES)
    stored, warnings = api.create_pod(namespace, pod("web", "nginx:1.27"))
    assert "imagePullSecrets" not in stored["spec"] or secret_names(stored) == []
    assert warnings == []
    assert api.secret(namespace, "corp-pull") is None


def test_a_new_namespace_gets_its_default_serviceaccount_patched(
    api: Api, control_plane: ControlPlane, corp_source: None, policy: Policy
) -> None:
    policy(CORP_RULES)
    name = unique("sa")
    from tests.e2e.support import INJECT_LABEL  # noqa: PLC0415

    api.ensure_namespace(name, {INJECT_LABEL: "true"})
    try:
        control_plane.wait_for_service_account(name)
        account = api.read(api.core.read_namespaced_service_account, "default", name)
        assert secret_names(account, ("imagePullSecrets",)) == ["corp-pull"]
        assert api.secret(name, "corp-pull") is not None
    finally:
        api.core.delete_namespace(name)


def test_dry_run_is_mutated_in_the_response_but_leaves_no_secret_behind(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy(CORP_RULES)
    stored, _ = api.create_pod(namespace, pod("dry", "registry.example.com/app"), dry_run=True)
    assert secret_names(stored) == ["corp-pull"]
    assert api.secret(namespace, "corp-pull") is None
    with pytest.raises(ApiException) as missing:
        api.core.read_namespaced_pod("dry", namespace)
    assert missing.value.status == 404


def test_serviceaccount_plugin_secrets_and_ours_are_merged_not_replaced(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy("rules:\n  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n")
    api.core.patch_namespaced_service_account(
        "default", namespace, {"imagePullSecrets": [{"name": "team-own-pull"}]}
    )
    stored, _ = api.create_pod(namespace, pod("merge", "registry.example.com/app"))
    # The ServiceAccount admission plugin runs first and adds the SA's secret; we append.
    assert secret_names(stored) == ["team-own-pull", "corp-pull"]


def test_the_pods_own_secrets_are_kept_in_order(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy("rules:\n  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n")
    body = pod("own", "registry.example.com/app", pull_secrets=["mine-1", "mine-2"])
    stored, _ = api.create_pod(namespace, body)
    assert secret_names(stored) == ["mine-1", "mine-2", "corp-pull"]


def test_generate_name_pods_use_the_request_namespace(
    api: Api, namespace: str, corp_source: None, policy: Policy
) -> None:
    policy(CORP_RULES)
    stored, _ = api.create_pod(namespace, pod("gen", "registry.example.com/app", generate=True))
    assert stored["metadata"]["name"].startswith("gen-")
    assert secret_names(stored) == ["corp-pull"]


def test_problems_reach_the_user_as_admission_warnings(
    api: Api, namespace: str, policy: Policy
) -> None:
    policy("rules:\n  - {name: missing, registries: [missing.example.com], secrets: [nowhere]}\n")
    stored, warnings = api.create_pod(namespace, pod("warn", "missing.example.com/app"))
    assert secret_names(stored) == []
    assert any("source secret pull-secrets/nowhere not found" in w for w in warnings), warnings


def test_a_policy_edit_changes_the_next_pods_patch(
    api: Api, namespace: str, policy: Policy, webhook: WebhookServer
) -> None:
    api.apply_secret(pull_secret("edit-a", SOURCE_NAMESPACE, {"a.example.com": "a"}))
    api.apply_secret(pull_secret("edit-b", SOURCE_NAMESPACE, {"a.example.com": "b"}))
    policy("rules:\n  - {name: edit, registries: [a.example.com], secrets: [edit-a]}\n")
    first, _ = api.create_pod(namespace, pod("edit-1", "a.example.com/app"))
    policy("rules:\n  - {name: edit, registries: [a.example.com], secrets: [edit-b]}\n")
    second, _ = api.create_pod(namespace, pod("edit-2", "a.example.com/app"))
    assert secret_names(first) == ["edit-a"]
    assert secret_names(second) == ["edit-b"]


def test_an_invalid_edit_keeps_the_last_good_policy_and_records_an_event(
    api: Api, namespace: str, corp_source: None, policy: Policy, webhook: WebhookServer
) -> None:
    policy(CORP_RULES)
    version = set_policy(
        api,
        "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\nrules:\n  - {name: Bad}\n",
    )
    wait_until(
        lambda: webhook.metric_value("pullsecret_injector_policy_valid") == 0,
        "the policy_valid gauge to drop",
        timeout=60,
    )
    stored, _ = api.create_pod(namespace, pod("still", "registry.example.com/app"))
    assert secret_names(stored) == ["corp-pull"]

    def event() -> dict[str, object] | None:
        events = api.read(api.core.list_namespaced_event, POLICY_NAMESPACE)["items"]
        return next(
            (
                e
                for e in events
                if e["reason"] == "InvalidPolicy"
                and e["involvedObject"]["name"] == POLICY_CONFIGMAP
                and e["involvedObject"].get("resourceVersion") == version
            ),
            None,
        )

    recorded = wait_until(event, "an InvalidPolicy Event on the ConfigMap", timeout=60)
    assert "rules[0].name" in str(recorded["message"])
    assert "rules[0].secrets" in str(recorded["message"])


def test_a_secret_created_in_the_source_namespace_is_used_without_restart(
    api: Api, namespace: str, policy: Policy
) -> None:
    name = unique("late")
    policy(f"rules:\n  - {{name: late, registries: [late.example.com], secrets: [{name}]}}\n")
    before, _ = api.create_pod(namespace, pod("late-1", "late.example.com/app"))
    api.apply_secret(pull_secret(name, SOURCE_NAMESPACE, {"late.example.com": "late"}))
    wait_until(
        lambda: (
            secret_names(
                api.create_pod(
                    namespace, pod(unique("late"), "late.example.com/app"), dry_run=True
                )[0]
            )
            == [name]
        ),
        "the new source secret to be used",
        timeout=60,
    )
    assert secret_names(before) == []


def test_webhook_unavailable_with_failure_policy_ignore_still_creates_pods(
    api: Api, namespace: str, webhook: WebhookServer
) -> None:
    dead = f"https://127.0.0.1:{free_port()}/mutate"
    name = unique("dead-webhook")
    register_webhook(api, webhook_configuration(name, webhook.ca_pem, url=dead, timeout_seconds=2))
    try:
        stored, _ = api.create_pod(namespace, pod("survivor", "nginx"))
        assert stored["metadata"]["name"] == "survivor"
    finally:
        unregister_webhook(api, name)


def _post(
    webhook: WebhookServer, body: bytes, content_type: str = "application/json"
) -> tuple[int, str]:
    """POST like a client that reads the answer even if the server stops reading early
    (a 413 is sent before an oversize body has been consumed)."""
    context = ssl.create_default_context(cadata=webhook.ca_pem.decode())
    connection = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=10)
    try:
        connection.putrequest("POST", "/mutate")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            connection.send(body)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"x" * (4 * 1024 * 1024), "application/json", 413, id="oversize body is 413"),
        pytest.param(b"\x00garbage{", "application/json", 400, id="garbage is 400"),
        pytest.param(b"{}", "application/json", 400, id="an empty object is 400"),
        pytest.param(b"{}", "text/plain", 415, id="wrong content type is 415"),
    ],
)
def test_bad_requests_over_tls_are_4xx_never_5xx(
    webhook: WebhookServer, body: bytes, content_type: str, status: int
) -> None:
    code, text = _post(webhook, body, content_type)
    assert code == status, text


def test_metrics_are_scraped_and_counters_move(
    api: Api, namespace: str, corp_source: None, policy: Policy, webhook: WebhookServer
) -> None:
    policy(CORP_RULES)
    labels = {"kind": "Pod", "operation": "CREATE", "result": "patched"}
    before = webhook.metric_value("pullsecret_injector_admission_requests_total", labels) or 0
    api.create_pod(namespace, pod("m1", "registry.example.com/app"))
    api.create_pod(namespace, pod("m2", "registry.example.com/app"))
    after = webhook.metric_value("pullsecret_injector_admission_requests_total", labels) or 0
    assert after - before == 2
    assert webhook.metric_value("pullsecret_injector_ready") == 1
    assert (
        webhook.metric_value("pullsecret_injector_cache_objects", {"kind": "namespaces"}) or 0
    ) > 3
    text = webhook.metrics()
    assert "pullsecret_injector_admission_duration_seconds_bucket" in text


def test_logs_are_json_and_hold_no_secret_data(
    api: Api, namespace: str, corp_source: None, policy: Policy, webhook: WebhookServer
) -> None:
    policy(CORP_RULES)
    api.create_pod(namespace, pod("logged", "registry.example.com/app"))
    raw = webhook.log_path.read_text()
    assert "fake-password" not in raw
    records = webhook.log_records()
    decided = [
        r
        for r in records
        if r.get("event") == "admission.decided" and r.get("namespace") == namespace
    ]
    assert decided, "each admission is logged with what was decided"
    assert decided[-1]["injected"] == ["corp-pull<-corp"]
    assert json.dumps(decided[-1])  # well-formed
