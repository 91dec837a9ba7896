"""reconcile(): the writes the sync controller makes so the cluster matches the policy.

Each table case is (policy, cluster view, ServiceAccounts) -> the exact writes. Every case is
then "applied" to the view the way the controller would (create/update write the rendered
copy, delete drops it, links append) and reconciled again: a second pass must ask for nothing
but the conflicts it cannot resolve, as a controller that converges would.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tests.unit.factories import (
    DOCKERCONFIGJSON,
    auth_entry,
    b64,
    cluster,
    decoded_auths,
    dockercfg_secret,
    pull_secret,
    raw_secret,
    target_secret,
)
from webhook.core.clusterview import (
    ClusterStore,
    TargetSecret,
    source_from_object,
    target_from_object,
)
from webhook.core.copies import CopySpec, render_copy
from webhook.core.policy import Policy, load_policy
from webhook.core.sync import (
    Action,
    Conflict,
    CreateCopy,
    DeleteCopy,
    LinkServiceAccount,
    ProtectedSource,
    ServiceAccountState,
    UpdateCopy,
    reconcile,
)

PS = "pull-secrets"

HEADER = f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {PS}
rules:
"""

CORP = (
    "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
    "     namespaces: {include: ['team-*']}}\n"
)
BACKFILL = (
    "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
    "     namespaces: {include: ['team-*']},\n"
    "     serviceAccounts: {names: [default, 'ci-*'], backfill: true}}\n"
)

# The source as it is now, and the states a copy of it may have been rendered from.
CORP_SOURCE = pull_secret("corp-pull", PS, {"registry.example.com": auth_entry(1)})
ROTATED = pull_secret("corp-pull", PS, {"registry.example.com": auth_entry(2)})
LEGACY = dockercfg_secret("corp-pull", PS, {"registry.example.com": auth_entry(1)})
MALFORMED = raw_secret(
    "corp-pull", PS, secret_type=DOCKERCONFIGJSON, data={".dockerconfigjson": b64("{nope")}
)
WRONG_TYPE = raw_secret("corp-pull", PS, secret_type="Opaque", data={"token": b64("fake-token")})
AUTH_SOURCE = pull_secret("auth-pull", PS, {"auth.example.com": auth_entry(3)})
OLD_SOURCE = pull_secret("old-pull", PS, {"old.example.com": auth_entry(4)})
MIXED = pull_secret(
    "corp-pull", PS, {"registry.example.com": auth_entry(1), "other.example.com": auth_entry(5)}
)
MIXED_OTHER_ROTATED = pull_secret(
    "corp-pull", PS, {"registry.example.com": auth_entry(1), "other.example.com": auth_entry(6)}
)
MIXED_GRANTED_ROTATED = pull_secret(
    "corp-pull", PS, {"registry.example.com": auth_entry(7), "other.example.com": auth_entry(5)}
)
QUAY_WIDE = pull_secret("corp-pull", PS, {"quay.io": auth_entry(8)})

NAMESPACES: dict[str, dict[str, str]] = {"team-a": {}, "sandbox": {}, PS: {}}

SUBSET_GRANT = (("registry.example.com", "registry.example.com"),)


def spec(
    namespace: str,
    name: str = "corp-pull",
    source: str = "corp-pull",
    rules: tuple[str, ...] = ("corp",),
    subset: tuple[tuple[str, str], ...] | None = None,
) -> CopySpec:
    return CopySpec(
        namespace=namespace,
        name=name,
        source_namespace=PS,
        source_name=source,
        rules=rules,
        subset=subset,
    )


def copy_of(wanted: CopySpec, source: Mapping[str, Any], uid: str) -> TargetSecret:
    """The copy a controller would have written for ``wanted`` from ``source``, as watched."""
    rendered = render_copy(wanted, source_from_object(source))
    rendered["metadata"]["uid"] = uid
    return target_from_object(rendered)


def foreign(namespace: str, name: str = "corp-pull", uid: str = "uid-foreign") -> TargetSecret:
    """A Secret someone else owns that happens to carry a managed name."""
    obj = target_secret(name, namespace, managed=False)
    obj["metadata"]["uid"] = uid
    return target_from_object(obj)


def account(
    name: str = "default",
    namespace: str = "team-a",
    secrets: Sequence[str] = (),
    *,
    has_list: bool | None = None,
    rv: str = "41",
) -> ServiceAccountState:
    return ServiceAccountState(
        namespace=namespace,
        name=name,
        pull_secrets=tuple(secrets),
        has_list=bool(secrets) if has_list is None else has_list,
        resource_version=rv,
    )


def link(
    add: Sequence[str],
    name: str = "default",
    namespace: str = "team-a",
    *,
    had_list: bool = False,
    rv: str = "41",
) -> LinkServiceAccount:
    return LinkServiceAccount(namespace, name, tuple(add), rv, had_list)


UP_TO_DATE_A = copy_of(spec("team-a"), CORP_SOURCE, "uid-a")


@dataclass(frozen=True)
class Case:
    rules: str
    expected: Sequence[Action]
    sources: Sequence[Mapping[str, Any]] = (CORP_SOURCE,)
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: NAMESPACES)
    targets: Sequence[TargetSecret] = ()
    accounts: Sequence[ServiceAccountState] = ()
    managed_names: Sequence[str] = ()
    only: Collection[str] | None = None


def case(case_id: str, **kwargs: Any) -> Any:
    return pytest.param(Case(**kwargs), id=case_id)


def policy_of(rules: str) -> Policy:
    return load_policy(HEADER + rules)


def store_for(c: Case) -> ClusterStore:
    return cluster(sources=c.sources, namespaces=c.namespaces, targets=c.targets)


def ordered(actions: Sequence[Action]) -> list[Action]:
    """The order of independent writes is not part of the contract."""
    return sorted(actions, key=repr)


CASES = [
    # -- copies that must appear -------------------------------------------------------------
    case(
        "a namespace a rule reaches gets a copy, one that it does not reach gets none",
        rules=CORP,
        expected=[CreateCopy(spec("team-a"))],
    ),
    case(
        "every namespace the rule reaches gets a copy of each of the rule's secrets",
        rules=(
            "  - {name: corp, registries: [registry.example.com],"
            " secrets: [corp-pull, auth-pull], namespaces: {include: ['team-*']}}\n"
        ),
        sources=[CORP_SOURCE, AUTH_SOURCE],
        namespaces={"team-a": {}, "team-b": {}, "sandbox": {}},
        expected=[
            CreateCopy(spec("team-a")),
            CreateCopy(spec("team-a", "auth-pull", "auth-pull")),
            CreateCopy(spec("team-b")),
            CreateCopy(spec("team-b", "auth-pull", "auth-pull")),
        ],
    ),
    case(
        "the source namespace itself gets no copy of a secret under its own name",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n",
        expected=[CreateCopy(spec("team-a")), CreateCopy(spec("sandbox"))],
    ),
    case(
        "the source Secret, seen by the watch on its name, is neither reported nor deleted",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n",
        namespaces={"team-a": {}, PS: {}},
        targets=[foreign(PS, uid="uid-source")],
        expected=[CreateCopy(spec("team-a"))],
    ),
    case(
        "a policy source carrying our label where no rule wants a copy is reported, not deleted",
        rules=CORP,
        namespaces={"team-a": {}, PS: {}},
        targets=[UP_TO_DATE_A, copy_of(spec(PS), CORP_SOURCE, "uid-cloned-source")],
        expected=[ProtectedSource(PS, "corp-pull", "uid-cloned-source")],
    ),
    case(
        "kube-system, kube-public and kube-node-lease never get a copy, whatever the rule says",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n",
        namespaces={"team-a": {}, "kube-system": {}, "kube-public": {}, "kube-node-lease": {}},
        expected=[CreateCopy(spec("team-a"))],
    ),
    case(
        "an opted-out namespace gets no copy, and a copy of ours already there is deleted",
        rules=CORP,
        namespaces={"team-a": {}, "team-b": {"pullsecret-injector.io/inject": "false"}},
        targets=[UP_TO_DATE_A, copy_of(spec("team-b"), CORP_SOURCE, "uid-b")],
        expected=[DeleteCopy("team-b", "corp-pull", "uid-b")],
    ),
    case(
        "with a targetName the source namespace does get a copy under that other name",
        rules=(
            "  - {name: corp, registries: [registry.example.com],"
            " secrets: [{name: corp-pull, targetName: corp-copy}]}\n"
        ),
        namespaces={"team-a": {}, PS: {}},
        expected=[
            CreateCopy(spec("team-a", name="corp-copy")),
            CreateCopy(spec(PS, name="corp-copy")),
        ],
    ),
    case(
        "a namespace selected by label gets the copy, one without the label does not",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     namespaces: {selector: {matchLabels: {pulls: corp}}}}\n"
        ),
        namespaces={"team-a": {"pulls": "corp"}, "team-b": {"pulls": "none"}, PS: {}},
        expected=[CreateCopy(spec("team-a"))],
    ),
    # -- copies that exist ------------------------------------------------------------------
    case(
        "a copy whose content hash matches the source is left alone",
        rules=CORP,
        targets=[UP_TO_DATE_A],
        expected=[],
    ),
    case(
        "a copy whose only difference is the rules annotation is left alone",
        rules=CORP,
        targets=[copy_of(spec("team-a", rules=("an-older-rule",)), CORP_SOURCE, "uid-a")],
        expected=[],
    ),
    case(
        "a copy of a source that has since rotated is updated in place, with its uid",
        rules=CORP,
        sources=[ROTATED],
        targets=[UP_TO_DATE_A],
        expected=[UpdateCopy(spec("team-a"), "uid-a", recreate=False)],
    ),
    case(
        "a managed copy without a content hash is rewritten",
        rules=CORP,
        targets=[target_from_object(target_secret("corp-pull", "team-a", managed=True))],
        expected=[UpdateCopy(spec("team-a"), "", recreate=False)],
    ),
    case(
        "a dockercfg copy of a source now of type dockerconfigjson is recreated",
        rules=CORP,
        targets=[copy_of(spec("team-a"), LEGACY, "uid-a")],
        expected=[UpdateCopy(spec("team-a"), "uid-a", recreate=True)],
    ),
    case(
        "a dockerconfigjson copy of a source now of type dockercfg is recreated",
        rules=CORP,
        sources=[LEGACY],
        targets=[UP_TO_DATE_A],
        expected=[UpdateCopy(spec("team-a"), "uid-a", recreate=True)],
    ),
    case(
        "a Secret with the copy's name that we do not own is reported, never updated",
        rules=CORP,
        sources=[ROTATED],
        targets=[foreign("team-a", uid="uid-theirs")],
        expected=[Conflict("team-a", "corp-pull", "uid-theirs", f"{PS}/corp-pull")],
    ),
    case(
        "a Secret we do not own in a namespace no rule reaches is neither reported nor deleted",
        rules=CORP,
        targets=[UP_TO_DATE_A, foreign("sandbox")],
        managed_names=["corp-pull"],
        expected=[],
    ),
    # -- copies that must go ----------------------------------------------------------------
    case(
        "a managed copy in a namespace the rule no longer reaches is deleted, with its uid",
        rules=CORP,
        targets=[UP_TO_DATE_A, copy_of(spec("sandbox"), CORP_SOURCE, "uid-sandbox")],
        expected=[DeleteCopy("sandbox", "corp-pull", "uid-sandbox")],
    ),
    case(
        "a managed copy in a namespace that lost the selected label is deleted",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     namespaces: {selector: {matchLabels: {pulls: corp}}}}\n"
        ),
        namespaces={"team-a": {"pulls": "corp"}, "team-b": {"pulls": "none"}, PS: {}},
        targets=[UP_TO_DATE_A, copy_of(spec("team-b"), CORP_SOURCE, "uid-b")],
        expected=[DeleteCopy("team-b", "corp-pull", "uid-b")],
    ),
    case(
        "a removed rule's managed copies are deleted when its name is passed as managed",
        rules="",
        targets=[
            UP_TO_DATE_A,
            copy_of(spec("sandbox"), CORP_SOURCE, "uid-sandbox"),
            foreign("team-b", uid="uid-theirs"),
        ],
        namespaces={"team-a": {}, "team-b": {}, "sandbox": {}},
        managed_names=["corp-pull"],
        expected=[
            DeleteCopy("team-a", "corp-pull", "uid-a"),
            DeleteCopy("sandbox", "corp-pull", "uid-sandbox"),
        ],
    ),
    case(
        "copies of a name only an earlier policy used are deleted, Secrets we do not own kept",
        rules=CORP,
        sources=[CORP_SOURCE, OLD_SOURCE],
        targets=[
            UP_TO_DATE_A,
            copy_of(spec("team-a", "old-pull", "old-pull", ("old",)), OLD_SOURCE, "uid-old"),
            foreign("sandbox", "old-pull", uid="uid-theirs"),
        ],
        managed_names=["old-pull"],
        expected=[DeleteCopy("team-a", "old-pull", "uid-old")],
    ),
    case(
        "a managed copy of a name the controller was not told about is left alone",
        rules=CORP,
        sources=[CORP_SOURCE, OLD_SOURCE],
        targets=[
            UP_TO_DATE_A,
            copy_of(spec("team-a", "old-pull", "old-pull", ("old",)), OLD_SOURCE, "uid-old"),
        ],
        expected=[],
    ),
    case(
        "a managed copy in a namespace missing from the view is not deleted",
        rules=CORP,
        targets=[UP_TO_DATE_A, copy_of(spec("unseen"), CORP_SOURCE, "uid-unseen")],
        managed_names=["corp-pull"],
        expected=[],
    ),
    # -- unusable sources -------------------------------------------------------------------
    case(
        "a missing source creates nothing and leaves the existing copies as they are",
        rules=CORP,
        sources=[],
        namespaces={"team-a": {}, "team-b": {}},
        targets=[copy_of(spec("team-b"), CORP_SOURCE, "uid-b")],
        expected=[],
    ),
    case(
        "a malformed source creates nothing and leaves the existing copies as they are",
        rules=CORP,
        sources=[MALFORMED],
        namespaces={"team-a": {}, "team-b": {}},
        targets=[copy_of(spec("team-b"), CORP_SOURCE, "uid-b")],
        expected=[],
    ),
    case(
        "a source that is not a pull secret creates nothing and leaves the copies",
        rules=CORP,
        sources=[WRONG_TYPE],
        namespaces={"team-a": {}, "team-b": {}},
        targets=[copy_of(spec("team-b"), CORP_SOURCE, "uid-b")],
        expected=[],
    ),
    # -- credential subsets -----------------------------------------------------------------
    case(
        "a credential-subset copy carries only the entries the rule grants",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        sources=[MIXED],
        expected=[CreateCopy(spec("team-a", subset=SUBSET_GRANT))],
    ),
    case(
        "a source entry broader than the grant is carried under the granted path",
        rules=(
            "  - {name: corp, registries: [quay.io/team], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        sources=[QUAY_WIDE],
        expected=[CreateCopy(spec("team-a", subset=(("quay.io", "quay.io/team"),)))],
    ),
    case(
        "a subset copy is not rewritten when only an entry outside the grant rotated",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        sources=[MIXED_OTHER_ROTATED],
        targets=[copy_of(spec("team-a", subset=SUBSET_GRANT), MIXED, "uid-a")],
        expected=[],
    ),
    case(
        "a subset copy is rewritten when the granted entry rotated",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        sources=[MIXED_GRANTED_ROTATED],
        targets=[copy_of(spec("team-a", subset=SUBSET_GRANT), MIXED, "uid-a")],
        expected=[UpdateCopy(spec("team-a", subset=SUBSET_GRANT), "uid-a")],
    ),
    case(
        "a verbatim copy becomes a subset copy when the rule starts restricting it",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        sources=[MIXED],
        targets=[copy_of(spec("team-a"), MIXED, "uid-a")],
        expected=[UpdateCopy(spec("team-a", subset=SUBSET_GRANT), "uid-a")],
    ),
    case(
        "a subset rule that grants none of the source's entries creates no copy",
        rules=(
            "  - {name: corp, registries: [elsewhere.example.com], secrets: [corp-pull],\n"
            "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
        ),
        expected=[],
    ),
    # -- ServiceAccount backfill ------------------------------------------------------------
    case(
        "a matching ServiceAccount without imagePullSecrets gets the list created",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account()],
        expected=[link(["corp-pull"], had_list=False)],
    ),
    case(
        "a ServiceAccount with other entries keeps them and gets only the missing one appended",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(secrets=["default-dockercfg-x", "mine"], rv="77")],
        expected=[link(["corp-pull"], had_list=True, rv="77")],
    ),
    case(
        "an empty imagePullSecrets list is appended to, not recreated",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(has_list=True)],
        expected=[link(["corp-pull"], had_list=True)],
    ),
    case(
        "a ServiceAccount that already lists the secret needs nothing",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(secrets=["mine", "corp-pull"])],
        expected=[],
    ),
    case(
        "ServiceAccount name globs are honoured, other names are left alone",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account("ci-runner"), account("builder"), account("ci")],
        expected=[link(["corp-pull"], "ci-runner")],
    ),
    case(
        "a rule without backfill never touches existing ServiceAccounts",
        rules=(
            "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
            "     namespaces: {include: ['team-*']}, serviceAccounts: {names: [default]}}\n"
        ),
        targets=[UP_TO_DATE_A],
        accounts=[account()],
        expected=[],
    ),
    case(
        "a ServiceAccount in a namespace the rule does not reach is left alone",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(namespace="sandbox")],
        expected=[],
    ),
    case(
        "a ServiceAccount in a namespace missing from the view is left alone",
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(namespace="team-unseen")],
        expected=[],
    ),
    case(
        "a malformed source is neither copied nor linked",
        rules=BACKFILL,
        sources=[MALFORMED],
        accounts=[account()],
        expected=[],
    ),
    case(
        "a missing source is neither copied nor linked",
        rules=BACKFILL,
        sources=[],
        accounts=[account()],
        expected=[],
    ),
    case(
        "each ServiceAccount gets the secrets of the backfill rules naming it, in rule order",
        rules=(
            BACKFILL + "  - {name: auth, registries: [auth.example.com], secrets: [auth-pull],\n"
            "     namespaces: {include: ['team-*']},\n"
            "     serviceAccounts: {names: [default, builder], backfill: true}}\n"
        ),
        sources=[CORP_SOURCE, AUTH_SOURCE],
        targets=[
            UP_TO_DATE_A,
            copy_of(spec("team-a", "auth-pull", "auth-pull", ("auth",)), AUTH_SOURCE, "uid-auth"),
        ],
        accounts=[account(), account("builder", secrets=["auth-pull"])],
        expected=[link(["corp-pull", "auth-pull"])],
    ),
    # -- only_namespaces --------------------------------------------------------------------
    case(
        "only the namespaces asked for are worked on",
        rules=BACKFILL,
        namespaces={"team-a": {}, "team-b": {}, "sandbox": {}},
        targets=[copy_of(spec("sandbox"), CORP_SOURCE, "uid-sandbox")],
        accounts=[account(), account(namespace="team-b")],
        managed_names=["corp-pull"],
        only={"team-b"},
        expected=[CreateCopy(spec("team-b")), link(["corp-pull"], namespace="team-b")],
    ),
    case(
        "a namespace asked for, when it is not in the view, gets nothing",
        rules=BACKFILL,
        targets=[copy_of(spec("team-gone"), CORP_SOURCE, "uid-gone")],
        accounts=[account(namespace="team-gone")],
        managed_names=["corp-pull"],
        only={"team-gone"},
        expected=[],
    ),
    case(
        "an empty set of namespaces means no work at all",
        rules=BACKFILL,
        targets=[copy_of(spec("sandbox"), CORP_SOURCE, "uid-sandbox")],
        accounts=[account()],
        only=set(),
        expected=[],
    ),
]


def run(c: Case, store: ClusterStore, accounts: Sequence[ServiceAccountState]) -> list[Action]:
    return reconcile(
        policy_of(c.rules),
        store,
        service_accounts=accounts,
        managed_names=c.managed_names,
        only_namespaces=c.only,
    )


@pytest.mark.parametrize("c", CASES)
def test_reconcile_asks_for_exactly_these_writes(c: Case) -> None:
    actions = run(c, store_for(c), c.accounts)

    assert ordered(actions) == ordered(c.expected)


_uids = itertools.count(1)


def apply(
    store: ClusterStore, accounts: Sequence[ServiceAccountState], actions: Sequence[Action]
) -> list[ServiceAccountState]:
    """Perform ``actions`` against the view as the controller's writes (and watches) would."""
    by_key = {(a.namespace, a.name): a for a in accounts}
    for action in actions:
        if isinstance(action, CreateCopy | UpdateCopy):
            source = store.source_secret(action.spec.source_namespace, action.spec.source_name)
            assert source is not None
            rendered = render_copy(action.spec, source)
            rendered["metadata"]["uid"] = f"uid-written-{next(_uids)}"
            store.put_target(target_from_object(rendered))
        elif isinstance(action, DeleteCopy):
            store.delete_target(action.namespace, action.name)
        elif isinstance(action, LinkServiceAccount):
            before = by_key[(action.namespace, action.name)]
            by_key[(action.namespace, action.name)] = replace(
                before, pull_secrets=before.pull_secrets + action.add, has_list=True
            )
    return list(by_key.values())


@pytest.mark.parametrize("c", CASES)
def test_after_the_writes_a_second_pass_asks_only_for_what_it_must_leave_alone(c: Case) -> None:
    store = store_for(c)
    accounts = apply(store, c.accounts, run(c, store, c.accounts))

    again = run(c, store, accounts)

    assert again == [a for a in c.expected if isinstance(a, Conflict | ProtectedSource)]


def test_existing_imagepullsecrets_survive_backfill_in_order() -> None:
    c = Case(
        rules=BACKFILL,
        targets=[UP_TO_DATE_A],
        accounts=[account(secrets=["first", "second"])],
        expected=[],
    )
    store = store_for(c)

    [after] = apply(store, c.accounts, run(c, store, c.accounts))

    assert after.pull_secrets == ("first", "second", "corp-pull")


def test_a_created_copy_is_what_the_admission_path_would_render() -> None:
    """The controller writes ``render_copy`` of its spec: the same bytes admission writes."""
    store = cluster(sources=[MIXED], namespaces=NAMESPACES)
    rules = (
        "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull],\n"
        "     credentialSubset: true, namespaces: {include: ['team-*']}}\n"
    )

    [action] = reconcile(policy_of(rules), store)

    assert isinstance(action, CreateCopy)
    source = store.source_secret(PS, "corp-pull")
    assert source is not None
    rendered = render_copy(action.spec, source)
    assert rendered["metadata"]["namespace"] == "team-a"
    assert rendered["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "pullsecret-injector"}
    assert list(rendered["data"]) == [".dockerconfigjson"]
    assert decoded_auths(rendered) == {"registry.example.com": auth_entry(1)}


def test_backfill_does_not_link_a_subset_copy_that_is_never_created() -> None:
    rules = (
        "  - {name: corp, registries: [elsewhere.example.com], secrets: [corp-pull],\n"
        "     credentialSubset: true, namespaces: {include: ['team-*']},\n"
        "     serviceAccounts: {names: [default], backfill: true}}\n"
    )
    store = cluster(sources=[CORP_SOURCE], namespaces=NAMESPACES)

    actions = reconcile(policy_of(rules), store, service_accounts=[account()])

    assert actions == []
