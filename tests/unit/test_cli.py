"""``pullsecret-injector validate-policy`` and ``explain``, run as a user runs them.

Files go to a temporary directory and the installed console script runs in a subprocess, so
the exit code, stdout and stderr checked here are exactly what a shell or CI job sees:
0 success, 1 the policy or the object fails, 2 unusable input.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.unit.factories import pod, pull_secret

PS = "pull-secrets"

POLICY = f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {PS}
rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull]
    namespaces: {{include: ["team-*"]}}
  - name: strict
    registries: [strict.example.com]
    secrets: [strict-pull]
    onFailure: Deny
"""

INVALID_POLICY = f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {PS}
rules:
  - name: corp
    registires: [registry.example.com]
    secrets: [corp-pull]
  - name: Not_A_Label
    registries: ["quay.io/te*m"]
    secrets: [corp-pull]
"""

CORP_IMAGE = "registry.example.com/team/app:1.0"
CORP_SECRET = pull_secret("corp-pull", PS, ["registry.example.com"])
PATCH = [{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "corp-pull"}]}]


def cli() -> list[str]:
    """The installed console script, as a user runs it (``python -m`` if it is missing)."""
    script = Path(sys.executable).with_name("pullsecret-injector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def write(directory: Path, name: str, content: str | Mapping[str, Any] | list[Any]) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, list):
        path.write_text(yaml.safe_dump_all(content))
    else:
        path.write_text(yaml.safe_dump(dict(content)))
    return path


def deployment(images: list[str], namespace: str = "team-a") -> dict[str, Any]:
    template = pod(images, namespace=None, name=None)
    template["metadata"] = {"labels": {"app": "web"}}
    del template["apiVersion"], template["kind"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
    }


def cronjob(images: list[str], namespace: str = "team-a") -> dict[str, Any]:
    template = deployment(images, namespace)["spec"]["template"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": namespace},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write(tmp_path, "policy.yaml", POLICY)
    write(tmp_path, "invalid-policy.yaml", INVALID_POLICY)
    write(tmp_path, "secret.yaml", CORP_SECRET)
    write(tmp_path, "pod.yaml", pod([CORP_IMAGE], namespace="team-a"))
    return tmp_path


# -- validate-policy -------------------------------------------------------------------------


def test_a_rule_scoped_by_label_alone_is_valid_but_warns_who_can_steer_it(files: Path) -> None:
    labelled = POLICY.replace(
        'namespaces: {include: ["team-*"]}', "namespaces: {selector: {matchLabels: {team: a}}}"
    )
    write(files, "labelled.yaml", labelled)
    result = run("validate-policy", "labelled.yaml", cwd=files)
    assert result.returncode == 0, result.stderr
    assert "warning: rule corp: reaches namespaces by label alone" in result.stderr
    assert "whoever may label or create namespaces can receive its secrets" in result.stderr
    quiet = run("validate-policy", "policy.yaml", cwd=files)
    assert quiet.stderr == ""


def test_a_valid_policy_is_summarised_and_exits_0(files: Path) -> None:
    result = run("validate-policy", "policy.yaml", cwd=files)

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "policy.yaml: valid, 2 rule(s); source namespaces: pull-secrets; "
        "managed secret names: corp-pull, strict-pull\n"
    )


def test_an_invalid_policy_lists_every_located_error_and_exits_1(files: Path) -> None:
    result = run("validate-policy", "invalid-policy.yaml", cwd=files)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "invalid-policy.yaml: 3 error(s)" in result.stderr
    assert "rules[0].registires: unknown field (did you mean 'registries'?)" in result.stderr
    assert "rules[1].name: 'Not_A_Label' is not a valid rule name" in result.stderr
    assert "rules[1].registries[0]: 'quay.io/te*m': globs are only allowed in the host" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("rules: [\n", "(yaml): line", id="a YAML syntax error is located"),
        pytest.param("", "the policy is empty", id="an empty file"),
        pytest.param("- just\n- a list\n", "must be a mapping", id="a document that is a list"),
        pytest.param(
            POLICY.replace("pullsecret-injector.io/v1", "v1"),
            "apiVersion: must be 'pullsecret-injector.io/v1'",
            id="the wrong apiVersion",
        ),
    ],
)
def test_a_policy_that_is_not_a_policy_exits_1(files: Path, content: str, expected: str) -> None:
    write(files, "broken.yaml", content)

    result = run("validate-policy", "broken.yaml", cwd=files)

    assert result.returncode == 1
    assert expected in result.stderr


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("missing.yaml", id="a file that does not exist"),
        pytest.param(".", id="a directory"),
    ],
)
def test_validate_policy_on_an_unreadable_file_exits_2(files: Path, path: str) -> None:
    result = run("validate-policy", path, cwd=files)

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read {path}")


# -- explain: what the webhook would do -------------------------------------------------------


def test_explain_text_names_the_rule_pattern_repository_secret_and_patch(files: Path) -> None:
    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Pod app in namespace team-a (labels: kubernetes.io/metadata.name=team-a)"
    for expected in [
        f"spec.containers[0] (c0): {CORP_IMAGE}",
        "  repository: registry.example.com/team/app",
        "  rule corp: matched registry.example.com (from its registries)",
        "  secrets: corp-pull",
        "  kubelet would try auths keys: registry.example.com",
        "patch:",
        f"  {json.dumps(PATCH[0])}",
        "copies to ensure in the namespace:",
        "  team-a/corp-pull <- pull-secrets/corp-pull (verbatim)",
    ]:
        assert expected in lines, (expected, result.stdout)
    assert "DENIED" not in result.stdout
    assert "warnings:" not in result.stdout


def test_explain_says_the_kubelet_tries_several_keys_in_order(tmp_path: Path) -> None:
    """Keys ``quay.io/team`` and ``quay.io`` both apply to ``quay.io/team/app``: the kubelet
    tries the longer one first and the next only if the registry refuses it."""
    write(tmp_path, "policy.yaml", POLICY.replace("registries: [registry.example.com]", ""))
    write(tmp_path, "secret.yaml", pull_secret("corp-pull", PS, ["quay.io/team", "quay.io"]))
    write(tmp_path, "pod.yaml", pod(["quay.io/team/app", "quay.io/other/app"]))

    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 cwd=tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        "  kubelet would try auths keys, in this order, the next only if the registry refuses "
        "one: quay.io/team, quay.io"
    ) in lines
    assert "  kubelet would try auths keys: quay.io" in lines


def test_explain_json_has_the_decision_and_its_patch_applies(files: Path) -> None:
    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "--output", "json", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["allowed"] is True
    assert document["deny"] is None
    assert [i["repository"] for i in document["images"]] == ["registry.example.com/team/app"]
    assert document["images"][0]["rules"] == [
        {"rule": "corp", "via": "registries", "patterns": ["registry.example.com"]}
    ]
    assert document["images"][0]["secrets"] == ["corp-pull"]
    assert document["patch"] == PATCH
    assert document["copies"] == [
        {"namespace": "team-a", "name": "corp-pull", "source": f"{PS}/corp-pull", "subset": None}
    ]
    assert document["warnings"] == []
    original = pod([CORP_IMAGE], namespace="team-a")
    patched = jsonpatch.apply_patch(copy.deepcopy(original), document["patch"])
    assert patched == pod([CORP_IMAGE], namespace="team-a", pull_secrets=["corp-pull"])


def test_explain_of_a_pod_that_already_has_the_secret_shows_no_patch(files: Path) -> None:
    write(files, "done.yaml", pod([CORP_IMAGE], namespace="team-a", pull_secrets=["corp-pull"]))

    result = run("explain", "done.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "--output", "json", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["patch"] == []


def test_a_denied_pod_exits_1_and_says_why(files: Path) -> None:
    write(files, "strict.yaml", pod(["strict.example.com/app:2"], namespace="team-a"))

    text = run("explain", "strict.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
               cwd=files)  # fmt: skip
    as_json = run("explain", "strict.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                  "--output", "json", cwd=files)  # fmt: skip

    assert (text.returncode, as_json.returncode) == (1, 1)
    assert "  rule strict: matched strict.example.com (from its registries)" in text.stdout
    assert "patch: none (object admitted unchanged)" in text.stdout
    denied = [line for line in text.stdout.splitlines() if line.startswith("DENIED: ")]
    assert len(denied) == 1
    assert "strict-pull" in denied[0]
    assert "not found" in denied[0]
    document = json.loads(as_json.stdout)
    assert document["allowed"] is False
    assert "strict-pull" in document["deny"]
    assert document["patch"] == []


def test_a_missing_secret_under_a_warn_rule_is_admitted_with_a_warning(files: Path) -> None:
    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--output", "json", cwd=files)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["allowed"] is True
    assert document["patch"] == []
    assert len(document["warnings"]) == 1
    assert "pull-secrets/corp-pull not found" in document["warnings"][0]


def test_explain_honours_the_namespace_option(files: Path) -> None:
    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "--namespace", "sandbox", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Pod app in namespace sandbox" in result.stdout
    assert "  no rule covers this image here" in result.stdout
    assert "patch: none (object admitted unchanged)" in result.stdout


@pytest.mark.parametrize(
    "workload",
    [
        pytest.param(deployment([CORP_IMAGE]), id="a Deployment is explained by its pod template"),
        pytest.param(cronjob([CORP_IMAGE]), id="a CronJob is explained by its job's pod template"),
    ],
)
def test_explain_of_a_workload_uses_its_pod_template(files: Path, workload: dict[str, Any]) -> None:
    write(files, "workload.yaml", workload)

    result = run("explain", "workload.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "--output", "json", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["kind"], document["namespace"]) == ("Pod", "team-a")
    assert document["name"] == workload["metadata"]["name"]
    assert [i["image"] for i in document["images"]] == [CORP_IMAGE]
    template = (
        workload["spec"]["template"]
        if workload["kind"] == "Deployment"
        else workload["spec"]["jobTemplate"]["spec"]["template"]
    )
    patched = jsonpatch.apply_patch(copy.deepcopy(template), document["patch"])
    assert patched["spec"]["imagePullSecrets"] == [{"name": "corp-pull"}]


# -- explain: input it cannot use --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        pytest.param(
            ["pod.yaml", "--policy", "missing.yaml"],
            "error: cannot read missing.yaml",
            id="a policy file that does not exist",
        ),
        pytest.param(
            ["missing.yaml", "--policy", "policy.yaml"],
            "error: cannot read missing.yaml",
            id="an object file that does not exist",
        ),
        pytest.param(
            [".", "--policy", "policy.yaml"],
            "error: cannot read .",
            id="a directory given as the object",
        ),
        pytest.param(
            ["pod.yaml", "--policy", "policy.yaml", "--secret", "missing.yaml"],
            "error: cannot read missing.yaml",
            id="a secret file that does not exist",
        ),
        pytest.param(
            ["pod.yaml", "--policy", "invalid-policy.yaml"],
            "invalid-policy.yaml: invalid policy\n  rules[0].registires: unknown field",
            id="an invalid policy is unusable input here, not a failed object",
        ),
        pytest.param(
            ["configmap.yaml", "--policy", "policy.yaml"],
            "cannot explain a ConfigMap",
            id="an object of a kind that has no pods",
        ),
        pytest.param(
            ["two.yaml", "--policy", "policy.yaml"],
            "expected exactly one object, found 2",
            id="a file holding two objects",
        ),
        pytest.param(
            ["broken.yaml", "--policy", "policy.yaml"],
            "broken.yaml: not valid YAML",
            id="an object file that is not YAML",
        ),
        pytest.param(
            ["pod.yaml", "--policy", "policy.yaml", "--namespace-labels", "team"],
            "label 'team' must be key=value",
            id="a namespace label without a value",
        ),
    ],
)
def test_explain_exits_2_on_input_it_cannot_use(files: Path, args: list[str], stderr: str) -> None:
    write(files, "configmap.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    write(files, "two.yaml", [pod([CORP_IMAGE]), pod([CORP_IMAGE], name="other")])
    write(files, "broken.yaml", "kind: Pod\nspec: [\n")

    result = run("explain", *args, cwd=files)

    assert result.returncode == 2
    assert result.stdout == ""
    assert stderr in result.stderr


def test_explain_without_a_policy_is_a_usage_error(files: Path) -> None:
    result = run("explain", "pod.yaml", cwd=files)

    assert result.returncode == 2
    assert "--policy" in result.stderr


# -- explain: what a new user tripped over (issue 18) ---------------------------------------------

SCOPED_POLICY = f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {PS}
rules:
  - name: payments
    registries: [quay.io/payments]
    secrets: [payments-pull]
    namespaces:
      exclude: ["payments-sandbox-*"]
      selector: {{matchLabels: {{team: payments}}}}
  - name: sso
    registries: [sso.example.com]
    secrets: [sso-a, sso-b]
"""
PAYMENTS_IMAGE = "quay.io/payments/api:1"


@contextlib.contextmanager
def unreachable_kubeconfig(directory: Path) -> Iterator[Path]:
    """A kubeconfig naming a loopback port that is bound but never listens (while in use)."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = reserved.getsockname()[1]
        yield write(directory, "kubeconfig", {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
            "users": [{"name": "u", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        })  # fmt: skip


def run_env(
    *args: str | Path, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, **env},
    )


@pytest.fixture
def scoped(files: Path) -> Path:
    write(files, "scoped.yaml", SCOPED_POLICY)
    write(files, "payments-pull.yaml", pull_secret("payments-pull", PS, ["quay.io/payments"]))
    write(files, "payments-pod.yaml", pod([PAYMENTS_IMAGE, "nginx:1.27"], namespace=None))
    return files


def test_a_secret_outside_the_source_namespaces_is_reported_as_ignored(files: Path) -> None:
    write(
        files, "default-secret.yaml", pull_secret("corp-pull", "default", ["registry.example.com"])
    )

    text = run("explain", "pod.yaml", "--policy", "policy.yaml", "--namespace", "team-apps",
               "--secret", "default-secret.yaml", cwd=files)  # fmt: skip
    as_json = run("explain", "pod.yaml", "--policy", "policy.yaml", "--namespace", "team-apps",
                  "--secret", "default-secret.yaml", "-o", "json", cwd=files)  # fmt: skip

    assert text.returncode == 0, text.stderr
    ignored = (
        "default-secret.yaml: Secret default/corp-pull ignored: default is not a source "
        "namespace of the policy (source namespaces: pull-secrets) nor the namespace "
        "explained (team-apps)"
    )
    assert f"  {ignored}" in text.stdout.splitlines()
    assert json.loads(as_json.stdout)["notes"] == [ignored]


def test_a_secret_no_rule_names_in_a_source_namespace_is_reported_as_ignored(files: Path) -> None:
    write(files, "stray.yaml", pull_secret("stray-pull", PS, ["registry.example.com"]))

    result = run("explain", "pod.yaml", "--policy", "policy.yaml", "--secret", "stray.yaml",
                 "-o", "json", cwd=files)  # fmt: skip

    assert json.loads(result.stdout)["notes"] == [
        "stray.yaml: Secret pull-secrets/stray-pull ignored: no rule names it as a source "
        "(sources in pull-secrets: corp-pull, strict-pull)"
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--namespace", "payments-sandbox-1", "--namespace-labels", "team=payments"],
            "    rule payments matches it but does not reach namespace payments-sandbox-1: "
            "excluded by name (exclude 'payments-sandbox-*')",
            id="a rule excluding the namespace by name glob is named",
        ),
        pytest.param(
            ["--namespace", "payments-1"],
            "    rule payments matches it but does not reach namespace payments-1: excluded by "
            "label (selector team in (payments) not matched: no label team)",
            id="a rule whose selector the namespace does not match is named",
        ),
    ],
)
def test_no_rule_covers_says_which_rule_matches_and_why_it_does_not_reach(
    scoped: Path, args: list[str], expected: str
) -> None:
    result = run("explain", "payments-pod.yaml", "--policy", "scoped.yaml",
                 "--secret", "payments-pull.yaml", *args, cwd=scoped)  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("spec.containers[0] (c0): quay.io/payments/api:1")
    assert lines[at + 2] == "  no rule covers this image here:"
    assert lines[at + 3] == expected


def test_no_rule_covers_says_when_no_rule_matches_the_image_at_all(scoped: Path) -> None:
    result = run("explain", "payments-pod.yaml", "--policy", "scoped.yaml",
                 "--namespace", "payments-1", "-o", "json", cwd=scoped)  # fmt: skip

    images = json.loads(result.stdout)["images"]
    assert images[1]["repository"] == "docker.io/library/nginx"
    assert images[1]["uncovered"] == {"notReaching": [], "unchecked": []}
    text = run("explain", "payments-pod.yaml", "--policy", "scoped.yaml",
               "--namespace", "payments-1", cwd=scoped).stdout  # fmt: skip
    assert "  no rule covers this image here: no rule matches docker.io/library/nginx" in text


def test_ephemeral_containers_in_a_pod_being_created_are_not_planned(files: Path) -> None:
    write(files, "debug.yaml", pod(["nginx:1.27"], ephemeral=[CORP_IMAGE], namespace="team-a"))

    result = run("explain", "debug.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "-o", "json", cwd=files)  # fmt: skip

    document = json.loads(result.stdout)
    assert document["patch"] == []
    assert document["imagePullSecrets"] == []
    assert [i["field"] for i in document["images"]] == ["spec.containers[0]"]
    assert document["notes"] == [
        "spec.ephemeralContainers ignored: the API server refuses them when a pod is created; "
        "to explain adding them to a running pod (kubectl debug), use --ephemeral"
    ]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--ephemeral"], id="--ephemeral explains the file's ephemeral containers"),
        pytest.param(
            ["--ephemeral", "--old-object", "running.yaml"],
            id="--old-object is the running pod",
        ),
        pytest.param(["--debug-image", CORP_IMAGE], id="--debug-image adds one like kubectl debug"),
    ],
)
def test_an_ephemeral_container_update_is_explained(files: Path, extra: list[str]) -> None:
    running = pod(["nginx:1.27"], namespace="team-a", pull_secrets=["other"])
    write(files, "running.yaml", running)
    debugged = copy.deepcopy(running)
    debugged["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": CORP_IMAGE}]
    write(files, "debugged.yaml", debugged)
    target = "running.yaml" if "--debug-image" in extra else "debugged.yaml"

    result = run("explain", target, "--policy", "policy.yaml", "--secret", "secret.yaml",
                 *extra, "-o", "json", cwd=files)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["operation"] == "ephemeral"
    assert [i["field"] for i in document["images"]] == ["spec.ephemeralContainers[0]"]
    assert document["images"][0]["secrets"] == ["corp-pull"]
    assert document["patch"] == []
    assert document["imagePullSecrets"] == ["other"]
    assert len(document["warnings"]) == 1
    assert (
        "needs corp-pull, which this running pod lacks and cannot gain" in (document["warnings"][0])
    )


def test_an_ephemeral_update_that_adds_nothing_is_unusable_input(files: Path) -> None:
    debugged = pod(["nginx:1.27"], ephemeral=[CORP_IMAGE], namespace="team-a")
    write(files, "debugged.yaml", debugged)

    result = run("explain", "debugged.yaml", "--policy", "policy.yaml", "--ephemeral",
                 "--old-object", "debugged.yaml", cwd=files)  # fmt: skip

    assert result.returncode == 2
    assert "the pod adds no ephemeral container" in result.stderr


def test_json_output_has_the_final_image_pull_secrets(files: Path) -> None:
    write(files, "listed.yaml", pod([CORP_IMAGE], namespace="team-a", pull_secrets=["other"]))

    result = run("explain", "listed.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
                 "-o", "json", cwd=files)  # fmt: skip
    text = run("explain", "listed.yaml", "--policy", "policy.yaml", "--secret", "secret.yaml",
               cwd=files).stdout  # fmt: skip

    assert json.loads(result.stdout)["imagePullSecrets"] == ["other", "corp-pull"]
    assert "imagePullSecrets after admission: other, corp-pull" in text.splitlines()


def test_a_label_without_value_is_blamed_on_namespace_labels_not_on_the_object(
    files: Path,
) -> None:
    result = run("explain", "--policy", "policy.yaml", "--namespace-labels", "team", "payments",
                 "pod.yaml", cwd=files)  # fmt: skip

    assert result.returncode == 2
    assert "argument --namespace-labels: label 'team' must be key=value" in result.stderr
    assert "unrecognized arguments" not in result.stderr


def test_two_secrets_without_a_usable_key_hold_none_one_holds_none(scoped: Path) -> None:
    write(scoped, "sso.yaml", [
        pull_secret("sso-a", PS, ["other.example.com"]),
        pull_secret("sso-b", PS, ["another.example.com"]),
    ])  # fmt: skip
    write(scoped, "sso-pod.yaml", pod(["sso.example.com/app:1"]))

    result = run("explain", "sso-pod.yaml", "--policy", "scoped.yaml", "--secret", "sso.yaml",
                 "-o", "json", cwd=scoped)  # fmt: skip

    (warning,) = json.loads(result.stdout)["warnings"]
    assert "rule sso: sso-a, sso-b hold no auths key the kubelet uses for" in warning


def test_an_unknown_resource_type_is_unusable_input(files: Path) -> None:
    result = run("explain", "configmap/settings", cwd=files)

    assert result.returncode == 2
    assert "'configmap' is not a resource explain reads" in result.stderr


# -- status and the kubectl plugin: what needs no cluster -------------------------------------


def test_status_without_a_kubeconfig_cannot_ask_and_exits_2(files: Path) -> None:
    result = run_env("status", cwd=files, env={"KUBECONFIG": str(files / "missing.kubeconfig")})

    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load")
    assert result.stdout == ""


def test_status_against_an_unreachable_api_server_exits_2(files: Path) -> None:
    with unreachable_kubeconfig(files) as kubeconfig:
        result = run_env("status", "--kubeconfig", kubeconfig, cwd=files, env={})

    assert result.returncode == 2
    assert "error: cannot reach the API server" in result.stderr


def test_the_kubectl_plugin_offers_the_operator_commands_only(files: Path) -> None:
    plugin = Path(sys.executable).with_name("kubectl-pullsecret")

    result = subprocess.run([str(plugin), "--help"], capture_output=True, text=True, check=True)

    assert result.stdout.startswith("usage: kubectl pullsecret")
    for command in ("status", "explain", "validate-policy"):
        assert command in result.stdout
    for command in ("controller", "secret", "certs"):
        assert command not in result.stdout.split("positional arguments:")[1]
    validated = subprocess.run([str(plugin), "validate-policy", "policy.yaml"],
                               capture_output=True, text=True, check=False, cwd=files)  # fmt: skip
    assert validated.returncode == 0
    assert validated.stdout.startswith("policy.yaml: valid, 2 rule(s)")
