"""``secret create --apply`` against the real API server, through a kubeconfig, as a user runs it.

The command runs as the installed console script with the control plane's admin kubeconfig
(or a copy whose context names a namespace). What it stores is read back through the API and
decoded by the webhook's own ``parse_secret``. Every credential is made up, and none may
appear on stdout or stderr.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.support import Api, unique
from tools.controlplane import ControlPlane
from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.dockerconfig import parse_secret

PASSWORDS = ("fake-quay-pass-1", "fake-quay-pass-2", "fake-rh-pass")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cli() -> list[str]:
    script = Path(sys.executable).with_name("pullsecret-injector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def create(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*cli(), "secret", "create", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )
    messages = [result.stderr, result.stdout] if "--apply" in args else [result.stderr]
    for text in messages:  # a printed manifest carries them (base64): that is its point
        for secret in PASSWORDS:
            assert secret not in text, "a credential leaked"
            assert b64(secret) not in text, "a credential leaked"
    return result


@pytest.fixture
def config_json(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "quay.io": {"auth": b64(f"quay-user:{PASSWORDS[0]}")},
                    "registry.redhat.io": {"auth": b64(f"rh-user:{PASSWORDS[2]}")},
                }
            }
        )
    )
    return path


@pytest.fixture
def target(api: Api) -> Iterator[str]:
    namespace = unique("secret-create")
    api.ensure_namespace(namespace)
    yield namespace
    api.core.delete_namespace(namespace)


def stored(api: Api, namespace: str, name: str) -> dict[str, Any]:
    secret = api.secret(namespace, name)
    assert secret is not None, f"secret {namespace}/{name} was not created"
    return secret


def users(secret: dict[str, Any]) -> dict[str, str]:
    config = parse_secret(secret)
    return {
        key: base64.b64decode(config.entries[key]["auth"]).decode().split(":", 1)[0]
        for key in config.keys
    }


def test_apply_creates_exactly_the_printed_secret_then_replaces_only_its_data(
    control_plane: ControlPlane, api: Api, target: str, config_json: Path
) -> None:
    common = ("--name", "quay-team-pull", "--namespace", target, "--docker-config", config_json,
              "--registry", "quay.io/team")  # fmt: skip
    printed = yaml.safe_load(create(*common).stdout)

    result = create(*common, "--apply", "--kubeconfig", control_plane.admin_kubeconfig)

    assert (result.returncode, result.stdout) == (
        0,
        f"secret/quay-team-pull created in namespace {target} "
        "(kubernetes.io/dockerconfigjson; quay.io/team)\n",
    ), result.stderr
    secret = stored(api, target, "quay-team-pull")
    assert secret["type"] == printed["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["data"] == printed["data"]
    assert users(secret) == {"quay.io/team": "quay-user"}

    again = create(*common, "--apply", "--kubeconfig", control_plane.admin_kubeconfig)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("secret/quay-team-pull unchanged in namespace")
    assert (
        stored(api, target, "quay-team-pull")["metadata"]["resourceVersion"]
        == (secret["metadata"]["resourceVersion"])
    )

    api.core.patch_namespaced_secret(
        "quay-team-pull", target, {"metadata": {"labels": {"team": "a"}}}
    )
    config_json.write_text(
        json.dumps({"auths": {"quay.io/team": {"auth": b64(f"team-user:{PASSWORDS[1]}")}}})
    )
    replaced = create(*common, "--apply", "--kubeconfig", control_plane.admin_kubeconfig)

    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("secret/quay-team-pull replaced in namespace")
    secret = stored(api, target, "quay-team-pull")
    assert users(secret) == {"quay.io/team": "team-user"}
    assert secret["metadata"]["labels"] == {"team": "a"}  # existing metadata is kept


def test_apply_from_credentials_uses_the_namespace_of_the_kubeconfig_context(
    control_plane: ControlPlane, api: Api, target: str, tmp_path: Path
) -> None:
    kubeconfig = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    for context in kubeconfig["contexts"]:
        context["context"]["namespace"] = target
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))

    result = create("--name", "robot-pull", "--server", "registry.example.com:5000",
                    "--username", "robot", "--password-stdin", "--type", "dockercfg",
                    "--apply", "--kubeconfig", path, stdin=f"{PASSWORDS[2]}\n")  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"secret/robot-pull created in namespace {target} "
        "(kubernetes.io/dockercfg; registry.example.com:5000)\n"
    )
    secret = stored(api, target, "robot-pull")
    assert secret["type"] == "kubernetes.io/dockercfg"
    entry = parse_secret(secret).entries["registry.example.com:5000"]
    assert entry == {
        "username": "robot",
        "password": PASSWORDS[2],
        "auth": b64(f"robot:{PASSWORDS[2]}"),
    }


@pytest.mark.parametrize(
    ("existing", "message"),
    [
        pytest.param(
            {"type": "Opaque", "data": {"token": b64("fake")}},
            "exists with type Opaque; the type of a Secret cannot change to "
            "kubernetes.io/dockerconfigjson: delete it first or choose another --name",
            id="a Secret of another type is not replaced",
        ),
        pytest.param(
            {"type": "kubernetes.io/dockerconfigjson",
             "data": {".dockerconfigjson": b64('{"auths": {}}')},
             "metadata": {"labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}},
            "is a copy managed by pullsecret-injector "
            "(app.kubernetes.io/managed-by=pullsecret-injector); the controller would "
            "overwrite it: update its source instead",
            id="a copy managed by the controller is not replaced",
        ),
        pytest.param(
            {"type": "kubernetes.io/dockerconfigjson", "immutable": True,
             "data": {".dockerconfigjson": b64('{"auths": {}}')}},
            "exists and is immutable; delete it first to replace it",
            id="an immutable Secret is not replaced",
        ),
    ],
)  # fmt: skip
def test_apply_refuses_to_replace_what_it_must_not_and_exits_1(
    control_plane: ControlPlane,
    api: Api,
    target: str,
    config_json: Path,
    existing: dict[str, Any],
    message: str,
) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", **existing}
    body["metadata"] = {**existing.get("metadata", {}), "name": "taken", "namespace": target}
    api.apply_secret(body)
    before = stored(api, target, "taken")

    result = create("--name", "taken", "--namespace", target, "--docker-config", config_json,
                    "--apply", "--kubeconfig", control_plane.admin_kubeconfig)  # fmt: skip

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"error: secret {target}/taken {message}\n"
    assert (
        stored(api, target, "taken")["metadata"]["resourceVersion"]
        == (before["metadata"]["resourceVersion"])
    )


def test_apply_into_a_missing_namespace_exits_1_with_the_api_servers_reason(
    control_plane: ControlPlane, config_json: Path
) -> None:
    namespace = unique("no-such")

    result = create("--name", "x", "--namespace", namespace, "--docker-config", config_json,
                    "--apply", "--kubeconfig", control_plane.admin_kubeconfig)  # fmt: skip

    assert result.returncode == 1
    assert result.stderr == (
        f'error: cannot create secret {namespace}/x: HTTP 404: namespaces "{namespace}" not found\n'
    )


def test_apply_without_permission_exits_1_with_the_api_servers_reason(
    control_plane: ControlPlane, target: str, config_json: Path
) -> None:
    nobody = control_plane.kubeconfig_for_user("secret-create-nobody")

    result = create("--name", "x", "--namespace", target, "--docker-config", config_json,
                    "--apply", "--kubeconfig", nobody)  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot create secret {target}/x: HTTP 403: ")
    assert 'User "secret-create-nobody" cannot create resource "secrets"' in result.stderr
