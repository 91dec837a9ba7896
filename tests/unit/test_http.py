"""The /mutate endpoint through Flask's test client, with a fixed policy and view."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient

from webhook.app import create_app
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.copies import CopiesEnsured
from webhook.core.plan import drop_names
from webhook.core.policy import load_policy
from webhook.http.backend import StaticBackend
from webhook.metrics import Metrics
from webhook.settings import Settings, SettingsError

POLICY = """
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull]
    serviceAccounts: {names: [default]}
  - name: strict
    registries: [strict.example.com]
    secrets: [missing-pull]
    onFailure: Deny
"""


def pull_secret(namespace: str, name: str, keys: list[str]) -> dict[str, Any]:
    auth = base64.b64encode(b"fake-user:fake-pass").decode()
    payload = json.dumps({"auths": {key: {"auth": auth} for key in keys}})
    return {
        "metadata": {"namespace": namespace, "name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(payload.encode()).decode()},
    }


def review(obj: dict[str, Any], **request: Any) -> dict[str, Any]:
    body = {
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "team-a",
        "object": obj,
        **request,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


def pod(*images: str, pull_secrets: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    }
    if pull_secrets is not None:
        spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


@pytest.fixture
def backend() -> StaticBackend:
    store = ClusterStore()
    store.put_source(
        source_from_object(pull_secret("pull-secrets", "corp-pull", ["registry.example.com"]))
    )
    store.put_namespace("team-a", {"kubernetes.io/metadata.name": "team-a"})
    return StaticBackend(load_policy(POLICY), store)


@pytest.fixture
def client(backend: StaticBackend) -> Iterator[FlaskClient]:
    settings = Settings(cluster=False, max_body_bytes=64 * 1024)
    app = create_app(settings, backend=backend, metrics=Metrics())
    with app.test_client() as test_client:
        yield test_client


def post(client: FlaskClient, document: object) -> Any:
    return client.post("/mutate", data=json.dumps(document), content_type="application/json")


def test_pod_gets_the_secret_as_a_json_patch_and_the_copy_is_ensured(
    client: FlaskClient, backend: StaticBackend
) -> None:
    obj = pod("registry.example.com/app:1", "nginx")
    response = post(client, review(obj))
    assert response.status_code == 200
    body = response.get_json()
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    answer = body["response"]
    assert answer["uid"] == "uid-1"
    assert answer["allowed"] is True
    assert answer["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(obj, json.loads(base64.b64decode(answer["patch"])))
    assert patched["spec"]["imagePullSecrets"] == [{"name": "corp-pull"}]
    assert backend.ensured == ["team-a/corp-pull"]


def test_a_copy_the_api_server_refuses_is_not_injected_so_no_pod_names_a_missing_secret(
    client: FlaskClient, backend: StaticBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusal = CopiesEnsured(
        ("pullsecret-injector: the API server refused ...",), frozenset({"corp-pull"})
    )
    monkeypatch.setattr(backend, "ensure_copies", lambda plan, uid: refusal)
    answer = post(client, review(pod("registry.example.com/app:1"))).get_json()["response"]
    assert "patch" not in answer
    assert answer["warnings"] == list(refusal.warnings)


def test_ops_without_refused_names_keep_every_other_entry() -> None:
    ops = (
        {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "a"}, {"name": "b"}]},
        {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "c"}},
        {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "b"}},
    )
    assert drop_names(ops, frozenset({"b"})) == (  # type: ignore[arg-type]
        {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "a"}]},
        {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "c"}},
    )
    assert drop_names(ops[:1], frozenset({"a", "b"})) == ()  # type: ignore[arg-type]


def test_nothing_to_do_means_no_patch_fields_at_all(client: FlaskClient) -> None:
    answer = post(client, review(pod("nginx"))).get_json()["response"]
    assert answer == {"uid": "uid-1", "allowed": True}


def test_dry_run_gets_the_same_patch_and_creates_nothing(
    client: FlaskClient, backend: StaticBackend
) -> None:
    answer = post(client, review(pod("registry.example.com/app"), dryRun=True)).get_json()
    assert "patch" in answer["response"]
    assert backend.ensured == []


def test_policy_deny_answers_allowed_false_with_status(client: FlaskClient) -> None:
    answer = post(client, review(pod("strict.example.com/app"))).get_json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert "missing-pull" in answer["status"]["message"]


def test_service_account_creation_is_patched(client: FlaskClient) -> None:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    document = review(sa, kind={"group": "", "version": "v1", "kind": "ServiceAccount"})
    answer = post(client, document).get_json()["response"]
    ops = json.loads(base64.b64decode(answer["patch"]))
    assert ops == [{"op": "add", "path": "/imagePullSecrets", "value": [{"name": "corp-pull"}]}]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        pytest.param(b"", "application/json", 400, "empty body", id="an empty body is a 400"),
        pytest.param(
            b"{not json", "application/json", 400, "not valid JSON", id="garbage is a 400"
        ),
        pytest.param(b"[]", "application/json", 400, "JSON object", id="a list is not a review"),
        pytest.param(
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}
            ).encode(),
            "application/json",
            400,
            "admissionReviewVersions",
            id="v1beta1 reviews are refused with a hint",
        ),
        pytest.param(b"{}", "text/plain", 415, "Content-Type", id="wrong content type is a 415"),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            "application/json",
            413,
            "",
            id="oversize body is a 413",
        ),
        pytest.param(
            b"[" * 5000 + b"]" * 5000, "application/json", 400, "", id="deep nesting is a 400"
        ),
    ],
)
def test_bad_requests_get_clear_4xx_never_5xx(
    client: FlaskClient, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = client.post("/mutate", data=body, content_type=content_type)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)


def test_a_review_without_uid_is_a_400_naming_the_field(client: FlaskClient) -> None:
    document = review(pod("nginx"))
    del document["request"]["uid"]
    response = post(client, document)
    assert response.status_code == 400
    assert "request.uid" in response.get_json()["error"]


def test_bad_review_with_readable_uid_echoes_it(client: FlaskClient) -> None:
    document = review(pod("nginx"), operation=5)
    response = post(client, document)
    assert response.status_code == 400
    assert response.get_json()["uid"] == "uid-1"


def test_an_internal_error_admits_unchanged_with_a_warning(
    client: FlaskClient, backend: StaticBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("webhook.core.plan.Planner.plan", explode)
    answer = post(client, review(pod("registry.example.com/app"))).get_json()["response"]
    assert answer["allowed"] is True
    assert "patch" not in answer
    assert "internal error" in answer["warnings"][0]
    assert "uid-1" in answer["warnings"][0]


def test_without_a_policy_pods_are_admitted_with_a_warning(
    client: FlaskClient, backend: StaticBackend
) -> None:
    backend.current_policy = None
    answer = post(client, review(pod("registry.example.com/app"))).get_json()["response"]
    assert answer["allowed"] is True
    assert "no valid policy" in answer["warnings"][0]


def test_readiness_follows_the_backend(client: FlaskClient, backend: StaticBackend) -> None:
    assert client.get("/readyz").status_code == 200
    backend.current_policy = None
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "no valid policy" in response.get_json()["reason"]
    assert client.get("/healthz").status_code == 200


def test_metrics_count_admissions_by_result(client: FlaskClient) -> None:
    post(client, review(pod("registry.example.com/app")))
    post(client, review(pod("nginx")))
    text = client.get("/metrics").get_data(as_text=True)
    requests = 'pullsecret_injector_admission_requests_total{kind="Pod",operation="CREATE"'
    assert requests + ',result="patched"} 1.0' in text
    assert requests + ',result="unchanged"} 1.0' in text
    injections = 'pullsecret_injector_injections_total{kind="Pod",registry="registry.example.com"'
    assert injections + ',rule="corp"} 1.0' in text


def test_logs_never_contain_credentials(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    post(client, review(pod("registry.example.com/app")))
    text = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    assert "fake-pass" not in text
    assert base64.b64encode(b"fake-user:fake-pass").decode() not in text
    assert any(getattr(r, "event", "") == "admission.decided" for r in caplog.records)


def test_offline_mode_serves_a_policy_file_without_a_cluster(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    settings = Settings(cluster=False, policy_file=str(policy_file))
    with create_app(settings, metrics=Metrics()).test_client() as offline:
        answer = post(offline, review(pod("nginx"))).get_json()["response"]
        assert answer == {"uid": "uid-1", "allowed": True}
        assert offline.get("/readyz").status_code == 200


def test_offline_mode_without_a_policy_file_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="PSI_POLICY_FILE"):
        create_app(Settings(cluster=False), metrics=Metrics())


@pytest.mark.parametrize(
    ("method", "status"),
    [pytest.param("GET", 405, id="GET"), pytest.param("PUT", 405, id="PUT")],
)
def test_only_post_reaches_the_review(client: FlaskClient, method: str, status: int) -> None:
    response = client.open("/mutate", method=method)
    assert response.status_code == status
    assert "POST an AdmissionReview" in response.get_json()["error"]


def test_a_chunked_body_without_length_is_read_to_its_end(client: FlaskClient) -> None:
    body = json.dumps(review(pod("registry.example.com/app:1"))).encode()
    response = client.post(
        "/mutate",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
    )
    assert response.status_code == 200
    assert response.get_json()["response"]["uid"] == "uid-1"


def test_other_paths_are_still_the_apps(client: FlaskClient) -> None:
    assert client.get("/nothing-here").status_code == 404
    assert client.get("/livez").status_code == 200
