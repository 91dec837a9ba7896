"""Bad policy and bad secrets on the real control plane: keep serving, and say so quickly.

For every kind of bad input: the last good policy (and the secrets that are fine) keep being
injected, no pod is rejected, and the problem becomes visible — the webhook's JSON log line,
its metrics and a Kubernetes Event for a policy, an admission warning for a secret. The tests
wait for that outcome with a generous bound and print how long it took; how fast it is (the
README promises 2 s) is measured by ``tests/bench/bench_freshness.py``, not asserted here.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.reliability import measure, own_webhook, write_policy
from tests.e2e.support import (
    POLICY_CONFIGMAP,
    POLICY_HEADER,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pod,
    pull_secret,
    secret_names,
    set_policy,
    unique,
    wait_until,
)
from tools.controlplane import ControlPlane

Policy = Callable[[str], str]
OUTCOME_TIMEOUT = 60.0
"""Seconds to wait for an outcome: generous, so a busy machine only makes a test slower."""
GOOD_RULES = "rules:\n  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n"
GOOD_IMAGE = "registry.example.com/team/app:1"


class LogTail:
    """New JSON records of a log file since the last call (reads only what was appended)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.seen: list[dict[str, Any]] = []

    def records(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.seen.append(record)
        return self.seen


@pytest.fixture(scope="module")
def controller(
    control_plane: ControlPlane, webhook: WebhookServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    """The sync controller runs too: bad input must not make it break good copies."""
    workdir = tmp_path_factory.mktemp("bad-input-controller")
    with ControllerProcess(control_plane, workdir, "bad-input").running() as process:
        yield process


@pytest.fixture
def corp_source(api: Api) -> None:
    api.apply_secret(pull_secret("corp-pull", SOURCE_NAMESPACE, {"registry.example.com": "corp"}))


def write_configmap(api: Api, data: dict[str, str]) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY_CONFIGMAP, "namespace": POLICY_NAMESPACE},
        "data": data,
    }
    response = api.core.replace_namespaced_config_map(
        POLICY_CONFIGMAP, POLICY_NAMESPACE, body, _preload_content=False
    )
    return str(json.loads(response.data)["metadata"]["resourceVersion"])


def invalid_policy_event(
    api: Api, version: str, configmap: str = POLICY_CONFIGMAP
) -> dict[str, Any] | None:
    events = api.read(api.core.list_namespaced_event, POLICY_NAMESPACE)["items"]
    return next(
        (
            e
            for e in events
            if e["reason"] == "InvalidPolicy"
            and e["involvedObject"]["name"] == configmap
            and e["involvedObject"].get("resourceVersion") == version
        ),
        None,
    )


def still_serving(api: Api, namespace: str, name: str) -> None:
    """A real pod (not a dry run) is admitted and gets the last good policy's secret."""
    stored, _ = api.create_pod(namespace, pod(name, GOOD_IMAGE, "nginx"))
    assert secret_names(stored) == ["corp-pull"]


POLICY_CASES = [
    pytest.param(
        POLICY_HEADER + "rules:\n  - {name: corp, registries: [registry.example.com]\n",
        "(yaml)",
        id="invalid YAML (an unclosed flow mapping)",
    ),
    pytest.param(
        POLICY_HEADER + "rules:\n\t- name: tabbed\n",
        "(yaml)",
        id="invalid YAML (a tab for indentation)",
    ),
    pytest.param("- a list\n- not a policy\n", "(root)", id="a YAML list instead of a policy"),
    pytest.param("", "(root)", id="an empty document"),
    pytest.param(
        POLICY_HEADER.replace("pullsecret-injector.io/v1", "pullsecret-injector.io/v2")
        + GOOD_RULES,
        "apiVersion",
        id="a wrong apiVersion",
    ),
    pytest.param(
        POLICY_HEADER + "rules:\n  - {name: corp, registires: [r.example.com], secrets: [a]}\n",
        "did you mean 'registries'",
        id="a misspelt field",
    ),
    pytest.param(
        POLICY_HEADER + "rules:\n  - {name: corp, registries: [registry.example.com]}\n",
        "rules[0].secrets",
        id="a rule without secrets",
    ),
    pytest.param(
        POLICY_HEADER
        + "rules:\n  - {name: corp, registries: ['r.example.com/?x'], secrets: [a]}\n",
        "rules[0].registries[0]",
        id="a registry pattern the kubelet would read differently",
    ),
    pytest.param(
        POLICY_HEADER + "rules:\n  - {name: dup, secrets: [a]}\n  - {name: dup, secrets: [b]}\n",
        "duplicate rule name",
        id="two rules with one name",
    ),
    pytest.param(
        POLICY_HEADER + "rules: {name: corp}\n", "rules: must be a list", id="rules of a wrong type"
    ),
]


@pytest.mark.parametrize(("text", "located"), POLICY_CASES)
def test_a_bad_policy_edit_keeps_the_last_good_policy_and_is_visible(
    api: Api,
    namespace: str,
    corp_source: None,
    policy: Policy,
    webhook: WebhookServer,
    text: str,
    located: str,
) -> None:
    good = policy(GOOD_RULES)
    tail = LogTail(webhook.log_path)
    invalid = {"result": "invalid"}
    before = webhook.metric_value("pullsecret_injector_policy_loads_total", invalid) or 0
    version = write_configmap(api, {"policy.yaml": text})

    def visible() -> bool:
        logged = [
            r
            for r in tail.records()
            if r.get("event") == "policy.rejected" and r.get("generation") == version
        ]
        return (
            bool(logged)
            and webhook.metric_value("pullsecret_injector_policy_valid") == 0
            and (webhook.metric_value("pullsecret_injector_policy_loads_total", invalid) or 0)
            > before
            and invalid_policy_event(api, version) is not None
        )

    _, seconds = measure(visible, "log line, metric and Event for the bad edit", OUTCOME_TIMEOUT)
    print(f"\nbad policy visible (log + metric + Event) after {seconds:.2f}s")
    rejected = next(
        r
        for r in tail.records()
        if r.get("event") == "policy.rejected" and r.get("generation") == version
    )
    assert any(located in error for error in rejected["errors"]), rejected["errors"]
    assert rejected["in_force"] == good
    assert located in str(invalid_policy_event(api, version)["message"])  # type: ignore[index]
    assert webhook.metric_value("pullsecret_injector_policy_generation") == int(good)
    still_serving(api, namespace, "after-bad-edit")


def test_a_deeply_nested_policy_is_rejected_like_any_bad_edit_and_a_fix_applies_at_once(
    control_plane: ControlPlane, api: Api, tmp_path: Path
) -> None:
    # Its own webhook and ConfigMap: a stalled policy watch here must not touch other tests.
    with own_webhook(control_plane, api, tmp_path / "webhook", "deep-yaml", GOOD_RULES) as hook:
        good = str(int(hook.server.metric_value("pullsecret_injector_policy_generation") or 0))
        tail = LogTail(hook.server.log_path)
        version = write_policy(api, hook.configmap, "rules: " + "[" * 3000 + "]" * 3000 + "\n")

        def visible() -> bool:
            logged = any(
                r.get("event") == "policy.rejected" and r.get("generation") == version
                for r in tail.records()
            )
            return (
                logged
                and hook.server.metric_value("pullsecret_injector_policy_valid") == 0
                and invalid_policy_event(api, version, hook.configmap) is not None
            )

        try:
            measure(visible, "log line, metric and Event for the nested edit", OUTCOME_TIMEOUT)
            assert hook.server.metric_value("pullsecret_injector_policy_generation") == int(good)
        finally:
            fixed = write_policy(api, hook.configmap, GOOD_RULES)
        measure(
            lambda: (
                (hook.server.metric_value("pullsecret_injector_policy_generation") or 0)
                >= int(fixed)
            ),
            "the corrected policy in force",
            OUTCOME_TIMEOUT,
        )


def test_a_policy_configmap_without_the_policy_key_keeps_the_last_good_policy(
    api: Api, namespace: str, corp_source: None, policy: Policy, webhook: WebhookServer
) -> None:
    good = policy(GOOD_RULES)
    tail = LogTail(webhook.log_path)
    version = write_configmap(api, {"policy.yml": POLICY_HEADER + GOOD_RULES})

    def visible() -> bool:
        logged = any(
            r.get("event") == "policy.rejected" and r.get("generation") == version
            for r in tail.records()
        )
        return logged and invalid_policy_event(api, version) is not None

    _, seconds = measure(visible, "log line and Event for the missing key", OUTCOME_TIMEOUT)
    print(f"\nmissing policy key visible after {seconds:.2f}s")
    assert "policy.yaml" in str(invalid_policy_event(api, version)["message"])  # type: ignore[index]
    assert webhook.metric_value("pullsecret_injector_policy_generation") == int(good)
    still_serving(api, namespace, "after-missing-key")


def test_a_deleted_policy_configmap_keeps_the_last_good_policy(
    api: Api, namespace: str, corp_source: None, policy: Policy, webhook: WebhookServer
) -> None:
    policy(GOOD_RULES)
    tail = LogTail(webhook.log_path)
    missing = {"result": "missing"}
    before = webhook.metric_value("pullsecret_injector_policy_loads_total", missing) or 0
    api.core.delete_namespaced_config_map(POLICY_CONFIGMAP, POLICY_NAMESPACE)

    def visible() -> bool:
        logged = any(r.get("event") == "policy.missing" for r in tail.records())
        count = webhook.metric_value("pullsecret_injector_policy_loads_total", missing) or 0
        return logged and count > before

    _, seconds = measure(visible, "log line and metric for the deletion", OUTCOME_TIMEOUT)
    print(f"\ndeleted policy visible after {seconds:.2f}s")
    still_serving(api, namespace, "after-delete")


# -- bad secrets -----------------------------------------------------------------------------------


def test_a_rule_naming_a_secret_that_does_not_exist_warns(
    api: Api, namespace: str, corp_source: None, webhook: WebhookServer
) -> None:
    name = unique("never-created")
    set_policy(
        api,
        POLICY_HEADER
        + GOOD_RULES
        + f"  - {{name: nowhere, registries: [nowhere.example.com], secrets: [{name}]}}\n",
    )
    images = (GOOD_IMAGE, "nowhere.example.com/app")

    def warned() -> bool:
        stored, warnings = api.create_pod(namespace, pod(unique("probe"), *images), dry_run=True)
        expected = f"source secret {SOURCE_NAMESPACE}/{name} not found"
        return any(expected in w for w in warnings) and secret_names(stored) == ["corp-pull"]

    _, seconds = measure(warned, "a warning naming the missing secret", OUTCOME_TIMEOUT)
    print(f"\nmissing secret visible as an admission warning {seconds:.2f}s after the edit")
    stored, _ = api.create_pod(namespace, pod("no-such-secret", *images))
    assert secret_names(stored) == ["corp-pull"]
    set_policy(api, POLICY_HEADER + "rules: []\n", webhook)


def docker_secret(name: str, payload: object, secret_type: str) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {"name": name, "namespace": SOURCE_NAMESPACE},
        "data": {".dockerconfigjson": base64.b64encode(raw).decode()},
    }


DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
MADE_UP_AUTH = base64.b64encode(b"bad-user:bad-fake-password").decode()

SECRET_CASES = [
    pytest.param(
        None, "not found", id="the source secret is deleted (a rule names a missing secret)"
    ),
    pytest.param(
        ({"auths": {"bad.example.com": {"auth": "%%not-base64%%"}}}, DOCKERCONFIGJSON),
        "'auth' is not valid base64",
        id="an auth field that is not base64",
    ),
    pytest.param(
        (
            {"auths": {"bad.example.com": {"auth": base64.b64encode(b"nocolon").decode()}}},
            DOCKERCONFIGJSON,
        ),
        "base64 of 'username:password'",
        id="an auth field without a colon",
    ),
    pytest.param(
        ({"auths": ["bad.example.com"]}, DOCKERCONFIGJSON),
        "must be a JSON object",
        id="auths that is not a map",
    ),
    pytest.param(
        ({"auths": {"bad.example.com": {"auth": 7}}}, DOCKERCONFIGJSON),
        "must be a string",
        id="an auth field that is a number",
    ),
    pytest.param(
        ({"auths": {"bad.example.com": {"auth": MADE_UP_AUTH}}}, "Opaque"),
        "type is 'Opaque'",
        id="an Opaque secret carrying a .dockerconfigjson",
    ),
]


def _replace_source(api: Api, body: dict[str, Any]) -> None:
    """Write ``body`` over the source secret; the type is immutable, so recreate if it differs."""
    name = body["metadata"]["name"]
    current = api.secret(SOURCE_NAMESPACE, name)
    if current is not None and current.get("type") != body["type"]:
        api.core.delete_namespaced_secret(name, SOURCE_NAMESPACE)
        wait_until(lambda: api.secret(SOURCE_NAMESPACE, name) is None, "the old secret gone", 5)
    api.apply_secret(body)


@pytest.mark.parametrize(("bad", "problem"), SECRET_CASES)
def test_a_bad_source_secret_is_never_injected_and_shows_as_a_warning(
    api: Api,
    namespace: str,
    corp_source: None,
    policy: Policy,
    controller: ControllerProcess,
    bad: tuple[object, str] | None,
    problem: str,
) -> None:
    name = unique("bad-pull")
    good = pull_secret(name, SOURCE_NAMESPACE, {"bad.example.com": "bad"})
    api.apply_secret(good)
    policy(GOOD_RULES + f"  - {{name: maybe, registries: [bad.example.com], secrets: [{name}]}}\n")
    images = (GOOD_IMAGE, "bad.example.com/app:1")
    first, _ = api.create_pod(namespace, pod("while-good", *images))
    assert secret_names(first) == ["corp-pull", name]
    copy = wait_until(lambda: api.secret(namespace, name), "the good copy", timeout=60)

    if bad is None:
        api.core.delete_namespaced_secret(name, SOURCE_NAMESPACE)
    else:
        payload, secret_type = bad
        _replace_source(api, docker_secret(name, payload, secret_type))

    def warned() -> list[str] | None:
        stored, warnings = api.create_pod(namespace, pod(unique("probe"), *images), dry_run=True)
        mine = [w for w in warnings if name in w and problem in w]
        return mine if mine and secret_names(stored) == ["corp-pull"] else None

    warning, seconds = measure(warned, f"a warning saying {problem!r}", OUTCOME_TIMEOUT)
    print(f"\nbad secret visible as an admission warning after {seconds:.2f}s: {warning[0]}")
    try:
        stored, warnings = api.create_pod(namespace, pod("after-bad", *images))
    except ApiException as exc:
        raise AssertionError(f"a pod was rejected: {exc.status} {exc.body}") from None
    assert secret_names(stored) == ["corp-pull"], "the bad secret is never injected"
    assert any(problem in w for w in warnings), warnings
    time.sleep(2)  # the controller has seen the change by now (debounce 0.2 s)
    assert api.secret(namespace, name)["data"] == copy["data"], (  # type: ignore[index]
        "the last good copy is kept, never overwritten with bad content"
    )
    assert not any("bad-fake-password" in line for line in warnings)
