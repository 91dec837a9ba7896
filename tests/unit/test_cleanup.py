"""plan_cleanup: after uninstall, remove exactly what we made, and never what we did not."""

from __future__ import annotations

from typing import Any

from webhook.core.cleanup import Delete, Unlink, plan_cleanup

OURS = {"app.kubernetes.io/managed-by": "pullsecret-injector"}


def secret(namespace: str, name: str, labels: dict[str, str], source: str = "") -> dict[str, Any]:
    annotations = {"pullsecret-injector.io/source": source} if source else {}
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{namespace}-{name}",
            "labels": labels,
            "annotations": annotations,
        }
    }


def account(namespace: str, name: str, entries: list[Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "resourceVersion": "7"},
        "imagePullSecrets": entries,
    }


def test_copies_and_the_entries_naming_them_go_everything_else_stays() -> None:
    plan = plan_cleanup(
        secrets=[
            secret("team-a", "corp-pull", OURS, source="pull-secrets/corp-pull"),
            secret("team-a", "theirs", {"app.kubernetes.io/managed-by": "Helm"}),
        ],
        service_accounts=[
            account("team-a", "default", [{"name": "own"}, {"name": "corp-pull"}, {"x": 1}]),
            account("team-b", "default", [{"name": "corp-pull"}]),  # no copy of ours there
        ],
        role_bindings=[],
        leases=[],
    )
    assert plan.actions == (
        Delete("Secret", "team-a", "corp-pull", "uid-team-a-corp-pull"),
        Unlink("team-a", "default", ("corp-pull",), (1,), "7"),
    )


def test_a_source_that_carries_our_label_is_kept_and_said_so() -> None:
    plan = plan_cleanup(
        secrets=[
            secret("pull-secrets", "corp-pull", OURS),  # cloned from a copy, now a source
            secret("team-a", "corp-pull", OURS, source="pull-secrets/corp-pull"),
        ],
        service_accounts=[],
        role_bindings=[],
        leases=[],
    )
    assert [a for a in plan.actions if isinstance(a, Delete)] == [
        Delete("Secret", "team-a", "corp-pull", "uid-team-a-corp-pull")
    ]
    assert plan.kept == (
        "secret/corp-pull in pull-secrets: kept, it is the source of other copies",
    )


def test_grants_and_the_controllers_lease_go_other_leases_stay() -> None:
    plan = plan_cleanup(
        secrets=[],
        service_accounts=[],
        role_bindings=[secret("shared", "pullsecret-injector-image-puller-web", OURS)],
        leases=[
            {
                "metadata": {
                    "namespace": "psi",
                    "name": "psi-controller",
                    "uid": "uid-lease",
                    "annotations": {"pullsecret-injector.io/managed-names": "corp-pull"},
                }
            },
            {"metadata": {"namespace": "kube-system", "name": "kube-scheduler", "uid": "u"}},
        ],
    )
    assert plan.actions == (
        Delete(
            "RoleBinding",
            "shared",
            "pullsecret-injector-image-puller-web",
            "uid-shared-pullsecret-injector-image-puller-web",
        ),
        Delete("Lease", "psi", "psi-controller", "uid-lease"),
    )


def test_several_entries_are_removed_from_the_highest_position_down() -> None:
    plan = plan_cleanup(
        secrets=[secret("ns", "a", OURS, "s/a"), secret("ns", "b", OURS, "s/b")],
        service_accounts=[account("ns", "sa", [{"name": "a"}, {"name": "keep"}, {"name": "b"}])],
        role_bindings=[],
        leases=[],
    )
    unlink = plan.actions[-1]
    assert isinstance(unlink, Unlink)
    assert unlink.indices == (2, 0)
    assert unlink.remove == ("a", "b")
