"""A copy the API server refuses is warned about in the API server's words, the part that says
why first: an admission policy's preamble must not use up the warning's length (issue 20: a
new copy name refused by the chart's admission policy read "denied request: pullsecret-in…")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.factories import pull_secret
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.copies import CopySpec
from webhook.k8s.copies import CopyCreates, create_copies
from webhook.k8s.rest import ApiError
from webhook.metrics import Metrics

MANAGED_NAME = (
    "pullsecret-injector rule managed-name: the webhook may not write team-a/new-pull: a new "
    "copy name needs helm upgrade (or rbac.managedSecretNames); the copy names of this release "
    "are corp-pull"
)


class Refusing:
    """A core/v1 client whose create answers with one refusal."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message

    def create_namespaced_secret(self, *args: Any, **kwargs: Any) -> None:
        raise ApiError(
            self.status, "Forbidden", json.dumps({"kind": "Status", "message": self.message})
        )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            'secrets "new-pull" is forbidden: ValidatingAdmissionPolicy '
            "'rel-pullsecret-injector-secrets' with binding 'rel-pullsecret-injector-secrets' "
            f"denied request: {MANAGED_NAME}",
            f"(403: {MANAGED_NAME[:100]}",
            id="the chart's own rule: its words, without the preamble",
        ),
        pytest.param(
            "ValidatingAdmissionPolicy 'corp-guard' with binding 'b' denied request: "
            "no secrets here",
            "(403: admission policy corp-guard: no secrets here); not injected",
            id="another admission policy: named, then its words",
        ),
        pytest.param(
            'secrets "new-pull" is forbidden: exceeded quota: q, requested: secrets=1',
            "(403: exceeded quota: q, requested: secrets=1); not injected",
            id="anything else: as the API server said it",
        ),
    ],
)
def test_a_refused_copy_is_warned_about_with_the_reason_first(message: str, expected: str) -> None:
    store = ClusterStore()
    store.put_source(
        source_from_object(pull_secret("new-pull", "pull-secrets", ["new.example.com"]))
    )
    spec = CopySpec("team-a", "new-pull", "pull-secrets", "new-pull", ("fresh",), None)

    ensured = create_copies(
        Refusing(403, message),
        store,
        [spec],
        timeout=5,
        metrics=Metrics(CollectorRegistry()),
        creates=CopyCreates(),
    )

    (warning,) = ensured.warnings
    assert warning.startswith(
        "pullsecret-injector: the API server refused Secret new-pull in team-a "
    )
    assert expected in warning
    assert ensured.refused == {"new-pull"}
