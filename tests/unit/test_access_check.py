"""``validate-policy --cluster``: the pure part (what is reported, the exit decision, JSON).

The cluster I/O (SubjectAccessReviews, the dry-run create, finding the release) lives in the
Kubernetes shell and is exercised on the real control plane (tests/e2e/test_live_edits.py);
here the report built from its answers is checked case by case, and the command line's
own decisions (flags, exit codes) are run as a user runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_cli import INVALID_POLICY, run, run_env, unreachable_kubeconfig, write
from tests.unit.test_cli import POLICY as POLICY_FILE
from webhook.core.permissions import (
    AccessCheck,
    Identity,
    Missing,
    Need,
    check_document,
    copy_need,
    count_needs,
    needs,
    render_check,
    source_namespace_need,
    upgrade_command,
)
from webhook.core.policy import load_policy

POLICY = load_policy("""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - name: corp
    registries: [corp.example.com]
    secrets: [corp-pull]
  - name: builders
    registries: [build.example.com]
    secrets: [{name: build-pull, namespace: build-src}]
    serviceAccounts: {names: ["builder-*"], backfill: true}
""")

WEBHOOK = Identity("webhook", "psi", "rel-pullsecret-injector-webhook")
CONTROLLER = Identity("controller", "psi", "rel-pullsecret-injector-controller")

SOURCE = source_namespace_need(POLICY, "webhook", "build-src")
COPY = copy_need(POLICY, "webhook", "build-pull")
BACKFILL = next(n for n in needs(POLICY, "controller") if n.resource == "serviceaccounts")
WRITE = Need("webhook", ("create",), "secrets", fix="set webhook.writeCopies=true")
REFUSED_BY_VAP = (
    "secrets \"build-pull\" is forbidden: ValidatingAdmissionPolicy 'rel-secrets' with binding "
    "'rel-secrets' denied request: pullsecret-injector rule managed-name: ..."
)


def check(*missing: Missing, release: str = "rel") -> AccessCheck:
    return AccessCheck(release, "psi", (WEBHOOK, CONTROLLER), 12, missing)


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        pytest.param(
            Missing(SOURCE, ("get", "list", "watch")),
            "the webhook may not get/list/watch secrets in namespace build-src "
            "(needed by rule builders)",
            id="a new source namespace",
        ),
        pytest.param(
            Missing(COPY, ("watch",)),
            'the webhook may not watch secrets "build-pull" in all namespaces '
            "(needed by rule builders)",
            id="only the refused verbs are named",
        ),
        pytest.param(
            Missing(COPY, ("create",), REFUSED_BY_VAP),
            'the webhook may not create secrets "build-pull" in all namespaces '
            f"(needed by rule builders): {REFUSED_BY_VAP}",
            id="a write the admission policy refuses carries its words",
        ),
        pytest.param(
            Missing(BACKFILL, ("list", "watch", "patch")),
            "the controller may not list/watch/patch serviceaccounts in all namespaces "
            "(needed by rule builders)",
            id="backfill",
        ),
        pytest.param(
            Missing(WRITE, ("create",)),
            "the webhook may not create secrets in all namespaces",
            id="a permission of the product itself names no rule",
        ),
    ],
)
def test_each_missing_permission_is_named_with_the_rules_that_need_it(
    missing: Missing, expected: str
) -> None:
    assert str(missing) == expected


@pytest.mark.parametrize(
    ("missing", "ok"),
    [
        pytest.param((), True, id="nothing missing: apply it live"),
        pytest.param((Missing(SOURCE, ("watch",)),), False, id="one verb missing"),
        pytest.param((Missing(COPY, ("create",), REFUSED_BY_VAP),), False, id="a refused write"),
    ],
)
def test_the_check_passes_only_when_nothing_is_missing(
    missing: tuple[Missing, ...], ok: bool
) -> None:
    result = check(*missing)

    assert result.ok is ok
    assert check_document(result)["ok"] is ok
    assert bool(check_document(result)["upgrade"]) is not ok


def test_the_text_report_names_who_was_asked_each_gap_its_fix_and_the_upgrade() -> None:
    text = render_check(check(Missing(SOURCE, ("get", "list", "watch")),
                              Missing(BACKFILL, ("list", "watch", "patch"))))  # fmt: skip

    assert text.splitlines() == [
        "release rel in namespace psi (webhook as "
        "system:serviceaccount:psi:rel-pullsecret-injector-webhook, controller as "
        "system:serviceaccount:psi:rel-pullsecret-injector-controller):",
        "  2 of 12 permission(s) the policy needs are missing:",
        "  - the webhook may not get/list/watch secrets in namespace build-src "
        "(needed by rule builders)",
        f"    fix: {SOURCE.fix}",
        "  - the controller may not list/watch/patch serviceaccounts in all namespaces "
        "(needed by rule builders)",
        f"    fix: {BACKFILL.fix}",
        "to grant them, put this policy under `policy:` in the release's values.yaml and run:",
        "  helm upgrade rel charts/pullsecret-injector --namespace psi --reuse-values "
        "-f values.yaml",
    ]


def test_a_release_holding_everything_says_so_in_one_line() -> None:
    assert render_check(check()).splitlines()[1:] == [
        "  every permission the policy needs is held (12 checked)"
    ]


@pytest.mark.parametrize(
    ("release", "command"),
    [
        pytest.param("rel", "helm upgrade rel ", id="named by its instance label"),
        pytest.param("", "helm upgrade <release> ", id="no instance label: a placeholder"),
    ],
)
def test_the_upgrade_names_the_release_when_it_is_known(release: str, command: str) -> None:
    assert upgrade_command(check(release=release)).startswith(command)


def test_the_json_document_carries_every_field_of_a_gap() -> None:
    document = check_document(check(Missing(COPY, ("create",), REFUSED_BY_VAP)))

    assert document["identities"] == {"webhook": WEBHOOK.user, "controller": CONTROLLER.user}
    assert document["missing"] == [
        {
            "component": "webhook",
            "verbs": ["create"],
            "resource": "secrets",
            "group": "",
            "namespace": "",
            "name": "build-pull",
            "rules": ["builders"],
            "permission": 'create secrets "build-pull" in all namespaces',
            "detail": REFUSED_BY_VAP,
            "fix": COPY.fix,
        }
    ]


@pytest.mark.parametrize(
    ("components", "count"),
    [
        # webhook: 2 source namespaces, 2 copy names, create; controller: the same + backfill
        pytest.param(("webhook",), 5, id="webhook only (controller.enabled=false)"),
        pytest.param(("webhook", "controller"), 11, id="both components"),
    ],
)
def test_every_need_of_each_component_is_asked_about(components: Any, count: int) -> None:
    assert count_needs(POLICY, components) == count


# -- the command line's own decisions ----------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write(tmp_path, "policy.yaml", POLICY_FILE)
    write(tmp_path, "invalid-policy.yaml", INVALID_POLICY)
    return tmp_path


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--kubeconfig", "k"], id="--kubeconfig"),
        pytest.param(["-n", "psi"], id="-n"),
        pytest.param(["--context", "c"], id="--context"),
    ],
)
def test_cluster_flags_without_cluster_are_unusable_input(files: Path, flags: list[str]) -> None:
    result = run("validate-policy", "policy.yaml", *flags, cwd=files)

    assert result.returncode == 2
    assert "only with --cluster" in result.stderr
    assert result.stdout == ""


def test_an_invalid_policy_is_not_taken_to_the_cluster(files: Path) -> None:
    result = run_env("validate-policy", "invalid-policy.yaml", "--cluster", cwd=files,
                     env={"KUBECONFIG": str(files / "missing.kubeconfig")})  # fmt: skip

    assert result.returncode == 1
    assert "invalid-policy.yaml: 3 error(s)" in result.stderr


@pytest.mark.parametrize("output", ["text", "json"])
def test_an_unreachable_api_server_cannot_ask_and_exits_2(files: Path, output: str) -> None:
    with unreachable_kubeconfig(files) as kubeconfig:
        result = run_env("validate-policy", "policy.yaml", "--cluster", "-o", output,
                         "--kubeconfig", kubeconfig, cwd=files, env={})  # fmt: skip

    assert result.returncode == 2
    assert "error: cannot reach the API server" in result.stderr
    # text: the offline verdict stands; json: one document or none
    assert result.stdout == ("" if output == "json" else "policy.yaml: valid, 2 rule(s); "
                             "source namespaces: pull-secrets; managed secret names: "
                             "corp-pull, strict-pull\n")  # fmt: skip
