"""Two facts about the kubelet + containerd that our warnings and README rely on, measured.

(a) **Mirrors** (containerd's ``hosts.toml``, tried before the image's own registry): which
    pull-secret entry, if any, does the mirror see? Users report that pod secrets do not work
    with mirrors (containerd/containerd#10996).
(b) **Token auth** (distribution's ``auth: token``: the registry sends clients to a token
    service on another host, like registry.redhat.io → sso.redhat.com): does a pull need a
    secret entry for the registry host only, or one for the token host too?

Today's answers (kubelet v1.36.3, containerd 2.4.2; README "What the runtime does with a pod's
pull secrets"): (a) the entry keyed by the image's own registry goes to the mirror as well —
the mirror sees those credentials, and when it refuses them containerd falls back to the
registry — while an entry keyed by the mirror's host is never used, because the kubelet looks
keys up by the image's registry (the half of #10996 that holds); (b) the registry host's entry
alone pulls (containerd hands it to the token service), and an entry for the token host alone
is never used (containerd asks the token service anonymously and is refused).

No webhook runs here: the pull secrets are written by hand, because what is measured is what
the node does with a pod's secrets. When a version bump changes an answer, these fail and the
README and the warnings have to follow. Each wait is for an outcome, bounded generously.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import Api, unique
from tests.e2e.tokenservice import TokenService
from tools.controlplane import ControlPlane
from tools.node import Node, pod_messages, pod_state
from tools.registry import Registry, dockerconfigjson_secret, make_image

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
WAIT = 120.0  # a bound for a broken run, not a performance claim


@pytest.fixture
def facts_namespace(api: Api, control_plane: ControlPlane) -> Iterator[str]:
    name = unique("facts")
    api.ensure_namespace(name)
    control_plane.wait_for_service_account(name)
    yield name
    api.core.delete_namespace(name)


@pytest.fixture
def registries(node: Node, tmp_path: Path) -> Iterator[Any]:
    """``make(name)``: a registry of the test's own, trusted by the node; all stopped after."""
    made: list[Registry] = []

    def make(name: str) -> Registry:
        registry = Registry(tmp_path / name, node.bin_dir)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.stop()
        shutil.rmtree(node.layout.certs_d / registry.host, ignore_errors=True)


def push(node: Node, registry: Registry, repository: str, user: str | None = None) -> str:
    """Our sleeper pushed to ``registry`` as ``repository`` (``repo:tag``); digest-pinned ref."""
    tarball = make_image(
        node.bin_dir,
        node.bin_dir / "sleeper",
        f"{registry.host}/{repository}",
        node.layout.images / f"facts-{registry.port}-{repository.replace('/', '_')}.tar",
        entrypoint="/app",
    )
    return registry.push(tarball, repository, user=user)


def outcome(pod: Mapping[str, Any]) -> bool:
    return pod_state(pod) in ("Running", *PULL_FAILURES)


def run_pod(node: Node, api: Api, namespace: str, name: str, image: str, secret: Any) -> str:
    """Create a pod pulling ``image`` with the one pull secret ``secret`` (None: none) and
    return what became of it: ``Running`` or the pull failure's message."""
    pull_secrets = []
    if secret is not None:
        api.apply_secret({**secret, "metadata": {**secret["metadata"], "namespace": namespace}})
        pull_secrets = [secret["metadata"]["name"]]
    api.create_pod(namespace, node.pod(name, image, pull_secrets=pull_secrets))
    pod = node.wait_for_pod(namespace, name, outcome, "Running or a pull failure", WAIT)
    return "Running" if pod_state(pod) == "Running" else " ".join(pod_messages(pod))


def manifest_requests(registry: Registry, repository: str) -> list[str]:
    """For each request containerd made for ``repository``'s manifests: the user it was
    authorized as, ``refused`` (credentials sent and rejected) or ``anonymous`` (none)."""
    seen = []
    for record in registry.log_records():
        if not record.get("http.request.uri", "").startswith(f"/v2/{repository}/manifests/"):
            continue
        if not record.get("http.request.useragent", "").startswith("containerd/"):
            continue  # our pushes
        message = record.get("msg", "")
        if message == "authorized request":
            seen.append(record.get("auth.user.name", ""))
        elif "authentication failure" in message:
            seen.append("refused")
        elif "invalid authorization credential" in message:
            seen.append("anonymous")
    return seen


def test_a_mirror_gets_the_registrys_pull_secret_entry_and_never_its_own(
    node: Node, api: Api, facts_namespace: str, registries: Any
) -> None:
    """(a) The image exists only on the mirror; both registries know user ``shared`` with
    the same password. A secret keyed by the image's registry pulls — from the mirror, with
    those credentials. The same credentials keyed by the mirror's host are not used at all.
    And credentials the mirror does not know are still presented to it before containerd
    falls back to the registry: a mirror sees every pod's registry credentials."""
    source, mirror = registries("source"), registries("mirror")
    source.start()
    mirror.start()
    password = mirror.set_password("shared")
    source.set_password("shared", password)
    source_only_user = unique("source-only")
    only_source = source.set_password(source_only_user)
    on_mirror = push(node, mirror, "mirrored/app:1", user="shared")
    image = f"{source.host}/mirrored/app@{on_mirror.rsplit('@', 1)[1]}"
    push(node, source, "both/app:1")
    push(node, mirror, "both/app:1")
    node.trust_registry(mirror)
    node.trust_registry(source, mirrors=[mirror])

    by_registry = dockerconfigjson_secret("by-registry", "", {source.host: ("shared", password)})
    by_mirror = dockerconfigjson_secret("by-mirror", "", {mirror.host: ("shared", password)})
    unknown_to_mirror = dockerconfigjson_secret(
        "source-only", "", {source.host: (source_only_user, only_source)}
    )

    assert run_pod(node, api, facts_namespace, "by-registry", image, by_registry) == "Running"
    assert "shared" in manifest_requests(mirror, "mirrored/app"), "not served by the mirror"
    assert "shared" not in manifest_requests(source, "mirrored/app")

    asked = len(manifest_requests(mirror, "mirrored/app"))
    result = run_pod(node, api, facts_namespace, "by-mirror", image, by_mirror)
    assert "no basic auth credentials" in result, result
    assert set(manifest_requests(mirror, "mirrored/app")[asked:]) == {"anonymous"}

    both = f"{source.host}/both/app@{on_mirror.rsplit('@', 1)[1]}"
    assert run_pod(node, api, facts_namespace, "fallback", both, unknown_to_mirror) == "Running"
    assert "refused" in manifest_requests(mirror, "both/app"), "not presented to the mirror"
    assert source_only_user in manifest_requests(source, "both/app"), "no fallback"


def test_token_auth_needs_the_registry_hosts_entry_only(
    node: Node, api: Api, facts_namespace: str, registries: Any, tmp_path: Path
) -> None:
    """(b) With the registry in token mode and the token service on another port (another
    host for the kubelet's keys): the registry host's entry pulls, containerd presenting it
    to the token service; an entry for the token host alone is never used — the token
    service is asked anonymously and refuses, as for a pod without any secret."""
    registry = registries("token-mode")
    registry.start()  # htpasswd first: our image tool refuses a token realm on 127.0.0.1
    image = push(node, registry, "token/app:1")
    registry.stop()
    tokens = TokenService(tmp_path / "token-service", registry.users, registry.tls_files)
    tokens.start()
    try:
        registry.token_auth = tokens.registry_auth()
        registry.start()
        node.trust_registry(registry)
        credentials = registry.credentials()

        by_registry = dockerconfigjson_secret("by-registry", "", {registry.host: credentials})
        by_token_host = dockerconfigjson_secret("by-token-host", "", {tokens.host: credentials})

        assert run_pod(node, api, facts_namespace, "by-registry", image, by_registry) == "Running"
        assert any(r.granted and r.user == credentials[0] for r in tokens.requests)

        asked = len(tokens.requests)
        result = run_pod(node, api, facts_namespace, "by-token-host", image, by_token_host)
        assert "failed to fetch anonymous token" in result, result
        assert tokens.requests[asked:], "the token service was not asked"
        assert all(not r.offered and not r.granted for r in tokens.requests[asked:])

        asked = len(tokens.requests)
        result = run_pod(node, api, facts_namespace, "no-secret", image, None)
        assert "failed to fetch anonymous token" in result, result
        assert all(not r.offered for r in tokens.requests[asked:])
    finally:
        tokens.stop()
