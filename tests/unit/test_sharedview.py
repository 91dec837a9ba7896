"""SharedStore: the pod's shared view answers exactly as the in-process ClusterStore does.

The same random sequence of writes (what watches deliver: puts, deletes, relists of one name,
of a namespace's sources, of all namespaces, denials) goes into a ``ClusterStore`` and into a
``SharedStore``; every read must then agree. A second process sees each write at once, and the
policy and keeper status published by the keeper come back as written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.factories import pull_secret, target_secret
from webhook.core.clusterview import ClusterStore, source_from_object, target_from_object
from webhook.core.policy import load_policy
from webhook.sharedview import SharedStore

NAMESPACES = ["a", "b", "pull-secrets"]
EMPTY = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\nrules: []\n"
NAMES = ["corp-pull", "quay-pull"]


def source(namespace: str, name: str, n: int) -> object:
    return source_from_object(pull_secret(name, namespace, [f"r{n}.example.com"]))


def target(namespace: str, name: str, managed: bool) -> object:
    return target_from_object(target_secret(name, namespace, managed=managed, source="x/y"))


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put_namespace"), st.sampled_from(NAMESPACES), st.sampled_from(["1", "2"])
        ),
        st.tuples(st.just("delete_namespace"), st.sampled_from(NAMESPACES)),
        st.tuples(
            st.just("replace_namespaces"), st.lists(st.sampled_from(NAMESPACES), unique=True)
        ),
        st.tuples(
            st.just("put_source"),
            st.sampled_from(NAMESPACES),
            st.sampled_from(NAMES),
            st.integers(0, 3),
        ),
        st.tuples(st.just("delete_source"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
        st.tuples(
            st.just("replace_named_source"),
            st.sampled_from(NAMESPACES),
            st.sampled_from(NAMES),
            st.booleans(),
        ),
        st.tuples(
            st.just("replace_namespace_sources"),
            st.sampled_from(NAMESPACES),
            st.lists(st.sampled_from(NAMES), unique=True),
        ),
        st.tuples(
            st.just("put_target"),
            st.sampled_from(NAMESPACES),
            st.sampled_from(NAMES),
            st.booleans(),
        ),
        st.tuples(st.just("delete_target"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
        st.tuples(
            st.just("replace_targets"),
            st.sampled_from(NAMES),
            st.lists(st.sampled_from(NAMESPACES), unique=True),
        ),
        st.tuples(
            st.just("set_denied"), st.sampled_from(NAMESPACES), st.sampled_from(["", *NAMES])
        ),
    ),
    max_size=30,
)


def apply(store: object, op: tuple[object, ...]) -> None:
    kind, *args = op
    write = getattr(store, str(kind))
    if kind == "put_namespace":
        write(args[0], {"v": args[1]})
    elif kind == "replace_namespaces":
        write({n: {"v": "r"} for n in args[0]})  # type: ignore[attr-defined]
    elif kind == "put_source":
        write(source(*args))  # type: ignore[arg-type]
    elif kind == "replace_named_source":
        ns, name, present = args
        write(ns, name, [source(ns, name, 9)] if present else [])  # type: ignore[arg-type]
    elif kind == "replace_namespace_sources":
        ns, names = args
        write(ns, [source(ns, n, 7) for n in names])  # type: ignore[attr-defined, arg-type]
    elif kind == "put_target":
        write(target(*args))  # type: ignore[arg-type]
    elif kind == "replace_targets":
        name, namespaces = args
        write(name, [target(ns, name, True) for ns in namespaces])  # type: ignore[attr-defined]
    elif kind == "set_denied":
        write({(args[0], args[1]): "the webhook may not get/list/watch secrets"})
    else:
        write(*args)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
def test_the_shared_store_reads_back_what_the_in_process_store_does(
    tmp_path_factory: object, sequence: list[tuple[object, ...]]
) -> None:
    directory = tmp_path_factory.mktemp("view")  # type: ignore[attr-defined]
    shared, local = SharedStore(directory), ClusterStore()
    try:
        versions = []
        for op in sequence:
            apply(shared, op)
            apply(local, op)
            versions.append(shared.sources_version)
        assert versions == sorted(versions), "sources_version never goes back"
        for ns in NAMESPACES:
            assert shared.namespace_labels(ns) == local.namespace_labels(ns)
            for name in NAMES:
                assert shared.source_secret(ns, name) == local.source_secret(ns, name)
                assert shared.target_secret(ns, name) == local.target_secret(ns, name)
                assert shared.source_denied(ns, name) == local.source_denied(ns, name)
            assert shared.target_secrets(ns, NAMES) == local.target_secrets(ns, NAMES)
        assert shared.sizes() == local.sizes()
        assert shared.namespaces() == local.namespaces()
        assert sorted(shared.targets(), key=repr) == sorted(local.targets(), key=repr)
    finally:
        shared.close()


def test_another_process_sees_each_write_at_once_and_the_published_policy(tmp_path: Path) -> None:
    reader = SharedStore(tmp_path)
    keeper = f"""
import os
from pathlib import Path
from webhook.core.policy import load_policy
from webhook.sharedview import KeeperStatus, PublishedPolicy, SharedStore
store = SharedStore(Path({str(tmp_path)!r}))
policy = load_policy({EMPTY!r}, "7")
store.publish_policy(PublishedPolicy("7", policy))
store.publish_keeper_status(KeeperStatus(True, "", os.getpid()))
store.put_namespace("team-a", {{"team": "a"}})
"""
    assert reader.published_policy() is None
    assert reader.keeper_status().ready is False
    subprocess.run([sys.executable, "-c", keeper], check=True, timeout=60)
    published = reader.published_policy()
    assert published is not None
    assert published.policy == load_policy(EMPTY, "7")
    assert reader.policy_generation() is not None
    assert reader.keeper_status().ready is True
    assert reader.namespace_labels("team-a") == {"team": "a"}
