"""Another mutating webhook rewrites images (issue 17 §3): the stored pod still pulls.

Registry proxies (Harbor proxy-cache rewriters, image swappers) change ``docker.io/x`` into
``harbor.example.com/proxy/x`` in their own webhook; the API server orders webhooks by
configuration name, so theirs may run after ours or before. Here a stub rewriter is registered
both ways. After ours (``zz-``): our webhook is called again (``reinvocationPolicy:
IfNeeded``) and adds the proxy's secret; the Hub secret chosen first stays (we never remove an
entry) and a warning says it no longer applies. Before ours (``aa-``): we only ever see the
final image. Never a duplicate entry.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stubwebhook import StubWebhook
from tests.e2e.support import (
    INJECT_LABEL,
    SOURCE_NAMESPACE,
    Api,
    WebhookServer,
    pod,
    pull_secret,
    register_webhook,
    secret_names,
    unregister_webhook,
    wait_until,
)

Policy = Callable[[str], str]
PROXY = "harbor.example.com/proxy"
RULES = (
    "rules:\n"
    "  - {name: hub, registries: [docker.io], secrets: [hub-pull]}\n"
    f"  - {{name: proxy, registries: ['{PROXY}'], secrets: [proxy-pull]}}\n"
)


def rewrite_docker_hub(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``nginx:1`` -> ``harbor.example.com/proxy/library/nginx:1``, as a proxy rewriter does."""
    if request.get("kind", {}).get("kind") != "Pod":
        return []
    ops = []
    for index, container in enumerate(
        (request.get("object") or {}).get("spec", {}).get("containers", [])
    ):
        image = str(container.get("image", ""))
        if "/" not in image.split(":", maxsplit=1)[0] or image.startswith("docker.io/"):
            name = image.removeprefix("docker.io/")
            name = name if "/" in name.split(":")[0] else f"library/{name}"
            ops.append(
                {
                    "op": "replace",
                    "path": f"/spec/containers/{index}/image",
                    "value": f"{PROXY}/{name}",
                }
            )
    return ops


def rewriter_configuration(name: str, ca_pem: bytes, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "rewrite.e2e.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/rewrite",
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "namespaceSelector": {"matchLabels": {INJECT_LABEL: "true"}},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
            }
        ],
    }


@pytest.fixture
def rewriter(tmp_path: Path) -> Iterator[StubWebhook]:
    with StubWebhook(tmp_path, ["127.0.0.1"], respond=rewrite_docker_hub) as stub:
        yield stub


@pytest.mark.parametrize(
    ("order", "expected", "warned"),
    [
        pytest.param("zz", ["hub-pull", "proxy-pull"], True, id="the rewriter runs after ours"),
        pytest.param("aa", ["proxy-pull"], False, id="the rewriter runs before ours"),
    ],
)
def test_the_stored_pod_carries_the_secret_for_its_final_image(
    api: Api,
    webhook: WebhookServer,
    policy: Policy,
    namespace: str,
    rewriter: StubWebhook,
    order: str,
    expected: list[str],
    warned: bool,
) -> None:
    for name in ("hub-pull", "proxy-pull"):
        api.apply_secret(pull_secret(name, SOURCE_NAMESPACE, {"docker.io": "x", PROXY: "y"}))
    policy(RULES)
    registration = f"{order}-e2e-image-rewriter"
    register_webhook(api, rewriter_configuration(registration, rewriter.ca_pem, rewriter.port))
    try:

        def rewritten() -> tuple[dict[str, Any], list[str]] | None:
            stored, warnings = api.create_pod(
                namespace, pod(f"probe-{len(rewriter.reviews)}", "nginx:1"), dry_run=True
            )
            return (
                (stored, warnings)
                if stored["spec"]["containers"][0]["image"].startswith(PROXY)
                else None
            )

        wait_until(rewritten, "the API server to call the rewriter", timeout=60, interval=0.5)
        stored, warnings = api.create_pod(namespace, pod("proxied", "nginx:1"))
    finally:
        unregister_webhook(api, registration)
    assert stored["spec"]["containers"][0]["image"] == f"{PROXY}/library/nginx:1"
    assert secret_names(stored) == expected
    stale = [w for w in warnings if "hub-pull is a pull secret the policy manages" in w]
    assert bool(stale) is warned, warnings
    for name in expected:
        wait_until(lambda name=name: api.secret(namespace, name), f"the copy {name}", timeout=60)
