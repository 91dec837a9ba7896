"""Exclusions hold without the webhook configuration's selectors (issue 16 §2).

Reproduced on the landed code: the controller copied a rule's credential into an opted-out
namespace, kube-system, kube-public and kube-node-lease, and a forged AdmissionReview posted
straight to the webhook port (no client certificate needed) created copies there too. Here a
rule reaches every namespace by name; the controller runs; forged reviews are posted for each
excluded namespace; afterwards not one copy exists where the one scope rule says none may.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.reliability import patched_secrets, post_mutate, review
from tests.e2e.support import (
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pod,
    pull_secret,
    unique,
    wait_until,
)
from tools.controlplane import ControlPlane

SECRET = "everywhere-pull"
IMAGE = "everywhere.example.com/team/app:1"
OPT_OUT = {"pullsecret-injector.io/inject": "false"}


@pytest.fixture
def namespaces(api: Api) -> Iterator[dict[str, str]]:
    """An opted-out namespace and a normal one (the control), created for the test."""
    made = {"opted_out": unique("optout"), "normal": unique("normal")}
    api.ensure_namespace(made["opted_out"], OPT_OUT)
    api.ensure_namespace(made["normal"])
    yield made
    for name in made.values():
        api.core.delete_namespace(name)


def test_neither_the_controller_nor_a_forged_review_puts_a_copy_where_scope_forbids(
    api: Api,
    control_plane: ControlPlane,
    webhook: WebhookServer,
    policy: object,
    namespaces: dict[str, str],
    tmp_path: Path,
) -> None:
    api.apply_secret(pull_secret(SECRET, SOURCE_NAMESPACE, {"everywhere.example.com": "x"}))
    rule = f"{{name: everywhere, registries: [everywhere.example.com], secrets: [{SECRET}]}}"
    policy(f"rules:\n  - {rule}\n")  # type: ignore[operator]
    forbidden = ["kube-system", "kube-public", "kube-node-lease", POLICY_NAMESPACE]
    forbidden.append(namespaces["opted_out"])
    with ControllerProcess(control_plane, tmp_path, "scope").running():
        wait_until(
            lambda: api.secret(namespaces["normal"], SECRET),
            "the control: a copy in an ordinary namespace",
            timeout=60,
        )
        answers = {}
        for namespace in forbidden:
            status, answer = post_mutate(webhook, review(namespace, pod("forged", IMAGE)))
            assert status == 200
            answers[namespace] = patched_secrets(answer)
        control, _ = post_mutate(webhook, review(namespaces["normal"], pod("ok", IMAGE)))
        time.sleep(3)  # two debounced controller passes: anything misplaced would appear now
        leaked = [n for n in forbidden if api.secret(n, SECRET) is not None]
    assert leaked == [], f"copies where no rule may reach: {leaked}"
    assert answers == {n: [] for n in forbidden}, "a forged review still got a patch"
    assert control == 200
