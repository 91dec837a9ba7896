"""plan(): the patch, warnings and copies for an admitted Pod or ServiceAccount.

Each table case is (policy, cluster state, object) -> (object after the patch, warnings,
copies). Patches are tested by applying them to the object and comparing whole objects, then
planning again on the patched object: a second pass must produce no ops.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import pytest

from tests.unit.factories import (
    DOCKERCONFIGJSON,
    auth_entry,
    b64,
    cluster,
    decoded_auths,
    dockercfg_secret,
    pod,
    pull_secret,
    raw_secret,
    service_account,
    target_secret,
)
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.conventions import WARNING_PREFIX
from webhook.core.copies import (
    RULES_ANNOTATION,
    CopySpec,
    content_hash,
    desired_copies,
    grant_subset,
    render_copy,
)
from webhook.core.plan import MAX_WARNING_LENGTH, Plan, plan
from webhook.core.policy import Policy, load_policy
from webhook.core.review import AdmissionRequest

PS = "pull-secrets"

HEADER = f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {PS}
rules:
"""

SOURCES: tuple[dict[str, Any], ...] = (
    pull_secret("corp-pull", PS, ["registry.example.com"]),
    pull_secret("auth-pull", PS, ["auth.example.com"]),
    pull_secret("wild-pull", PS, ["*.example.com"]),
    pull_secret("hub-pull", PS, ["https://index.docker.io/v1/"]),
    pull_secret("mirror-pull", PS, ["docker.io"]),
    pull_secret("quay-pull", PS, ["quay.io"]),
    pull_secret("team-pull", PS, ["quay.io/team", "quay.io"]),
    pull_secret("ecr-pull", PS, ["123456789012.dkr.ecr.eu-west-1.amazonaws.com"]),
    dockercfg_secret("legacy-pull", PS, ["legacy.example.com"]),
    raw_secret("opaque", PS, secret_type="Opaque", data={"token": b64("fake-token")}),
    raw_secret(
        "not-json", PS, secret_type=DOCKERCONFIGJSON, data={".dockerconfigjson": b64("{nope")}
    ),
    pull_secret("bad-auth", PS, {"registry.example.com": {"auth": "!!!not-base64"}}),
)

NAMESPACES: dict[str, dict[str, str]] = {
    "team-a": {"team": "a", "env": "dev"},
    "team-b": {"team": "b", "env": "prod"},
    "sandbox": {},
    "kube-system": {},
    PS: {},
}

CORP = "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n"
CORP_IMAGE = "registry.example.com/app:1.0"


@dataclass(frozen=True)
class Case:
    rules: str
    obj: dict[str, Any]
    expected: dict[str, Any]
    warnings: Sequence[str] = ()
    """One substring per expected warning (the count must match too)."""
    copies: Sequence[tuple[str, str, str]] = ()
    """(namespace, name, source) of every copy to ensure, in plan order."""
    kind: str = "Pod"
    operation: str = "CREATE"
    namespace: str = "team-a"
    sub_resource: str = ""
    old: dict[str, Any] | None = None
    deny: str | None = None
    known: bool = True
    extra_sources: Sequence[dict[str, Any]] = ()
    targets: Sequence[dict[str, Any]] = ()
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: NAMESPACES)


def case(case_id: str, **kwargs: Any) -> Any:
    return pytest.param(Case(**kwargs), id=case_id)


def store_for(c: Case) -> ClusterStore:
    return cluster(sources=[*SOURCES, *c.extra_sources], namespaces=c.namespaces, targets=c.targets)


def request_for(c: Case, obj: Mapping[str, Any]) -> AdmissionRequest:
    return AdmissionRequest(
        kind=c.kind,
        operation=c.operation,
        namespace=c.namespace,
        object=obj,
        old_object=c.old,
        sub_resource=c.sub_resource,
    )


def assert_warnings(result: Plan, expected: Sequence[str]) -> None:
    for warning in result.warnings:
        assert warning.startswith(WARNING_PREFIX), warning
        assert len(warning) <= MAX_WARNING_LENGTH, warning
    assert len(result.warnings) == len(expected), result.warnings
    for substring in expected:
        assert any(substring in w for w in result.warnings), (substring, result.warnings)


POD_CASES = [
    # -- decisions a later webhook overtook -------------------------------------------------
    case(
        "a managed secret no image needs any more is kept, with a warning (a rewritten image)",
        rules=CORP + "  - {name: quay, secrets: [quay-pull]}\n",
        obj=pod(["quay.io/team/app"], pull_secrets=["corp-pull"]),
        expected=pod(["quay.io/team/app"], pull_secrets=["corp-pull", "quay-pull"]),
        copies=[("team-a", "quay-pull", "pull-secrets/quay-pull")],
        warnings=["corp-pull is a pull secret the policy manages, but no image of this pod"],
    ),
    case(
        "a managed secret the pod's ServiceAccount carries is not warned about",
        rules=CORP.replace("}", ", serviceAccounts: {names: [default]}}")
        + "  - {name: quay, secrets: [quay-pull]}\n",
        obj=pod(["quay.io/team/app"], pull_secrets=["corp-pull"]),
        expected=pod(["quay.io/team/app"], pull_secrets=["corp-pull", "quay-pull"]),
        copies=[("team-a", "quay-pull", "pull-secrets/quay-pull")],
    ),
    # -- how imagePullSecrets is patched ---------------------------------------------------
    case(
        "a pod without imagePullSecrets gets the whole list added",
        rules=CORP,
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a pod whose imagePullSecrets is null gets the whole list",
        rules=CORP,
        obj=pod([CORP_IMAGE], pull_secrets=None),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a pod with an empty imagePullSecrets list gets the secret appended",
        rules=CORP,
        obj=pod([CORP_IMAGE], pull_secrets=[]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "entries added by the ServiceAccount plugin and OpenShift are kept, in order, before ours",
        rules=CORP,
        obj=pod([CORP_IMAGE], pull_secrets=["default-dockercfg-xyz", "sa-added"]),
        expected=pod([CORP_IMAGE], pull_secrets=["default-dockercfg-xyz", "sa-added", "corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a pod that already lists the secret is left alone",
        rules=CORP,
        obj=pod([CORP_IMAGE], pull_secrets=["other", "corp-pull"]),
        expected=pod([CORP_IMAGE], pull_secrets=["other", "corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a pod whose images no rule covers gets no patch",
        rules=CORP,
        obj=pod(["busybox:1.36", "quay.io/team/app"], pull_secrets=["mine"]),
        expected=pod(["busybox:1.36", "quay.io/team/app"], pull_secrets=["mine"]),
    ),
    case(
        "an image in initContainers counts",
        rules=CORP,
        obj=pod(["busybox"], init=[CORP_IMAGE]),
        expected=pod(["busybox"], init=[CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "an image in ephemeralContainers of a new pod counts",
        rules=CORP,
        obj=pod(["busybox"], ephemeral=[CORP_IMAGE]),
        expected=pod(["busybox"], ephemeral=[CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "several images needing the same secret add it once",
        rules=CORP,
        obj=pod([CORP_IMAGE, "registry.example.com/sidecar"], init=["registry.example.com/x"]),
        expected=pod(
            [CORP_IMAGE, "registry.example.com/sidecar"],
            init=["registry.example.com/x"],
            pull_secrets=["corp-pull"],
        ),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "two rules covering the same image both inject, in policy order",
        rules=CORP + "  - {name: wild, registries: ['*.example.com'], secrets: [wild-pull]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull", "wild-pull"]),
        copies=[
            ("team-a", "corp-pull", "pull-secrets/corp-pull"),
            ("team-a", "wild-pull", "pull-secrets/wild-pull"),
        ],
    ),
    case(
        "secrets for different images are added in container order, init containers first",
        rules=CORP + "  - {name: quay, secrets: [quay-pull]}\n",
        obj=pod([CORP_IMAGE], init=["quay.io/team/init"]),
        expected=pod(
            [CORP_IMAGE], init=["quay.io/team/init"], pull_secrets=["quay-pull", "corp-pull"]
        ),
        copies=[
            ("team-a", "quay-pull", "pull-secrets/quay-pull"),
            ("team-a", "corp-pull", "pull-secrets/corp-pull"),
        ],
    ),
    case(
        "a registry delegating auth gets both secrets though only one holds its key",
        rules="  - {name: corp, registries: [registry.example.com],"
        " secrets: [corp-pull, auth-pull]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull", "auth-pull"]),
        copies=[
            ("team-a", "corp-pull", "pull-secrets/corp-pull"),
            ("team-a", "auth-pull", "pull-secrets/auth-pull"),
        ],
    ),
    case(
        "the copy is named targetName and comes from the source name",
        rules="  - name: corp\n    registries: [registry.example.com]\n"
        "    secrets: [{name: corp-pull, targetName: corp-copy}]\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-copy"]),
        copies=[("team-a", "corp-copy", "pull-secrets/corp-pull")],
    ),
    # -- matching --------------------------------------------------------------------------
    case(
        "a rule without registries matches with its secrets' auths keys",
        rules="  - {name: quay, secrets: [quay-pull]}\n",
        obj=pod(["quay.io/team/app:2", "registry.example.com/app"]),
        expected=pod(
            ["quay.io/team/app:2", "registry.example.com/app"], pull_secrets=["quay-pull"]
        ),
        copies=[("team-a", "quay-pull", "pull-secrets/quay-pull")],
    ),
    case(
        "a Docker Hub short name gets index.docker.io credentials through the kubelet fallback",
        rules="  - {name: hub, secrets: [hub-pull]}\n",
        obj=pod(["nginx"]),
        expected=pod(["nginx"], pull_secrets=["hub-pull"]),
        copies=[("team-a", "hub-pull", "pull-secrets/hub-pull")],
    ),
    case(
        "index.docker.io credentials are not used for a non-Hub registry",
        rules="  - {name: hub, secrets: [hub-pull]}\n",
        obj=pod(["quay.io/library/nginx", "localhost:5000/nginx"]),
        expected=pod(["quay.io/library/nginx", "localhost:5000/nginx"]),
    ),
    case(
        "a docker.io registry pattern covers Hub images and the Hub key serves them",
        rules="  - {name: hub, registries: [docker.io], secrets: [hub-pull]}\n",
        obj=pod(["myorg/app:1", "docker.io/library/redis"]),
        expected=pod(["myorg/app:1", "docker.io/library/redis"], pull_secrets=["hub-pull"]),
        copies=[("team-a", "hub-pull", "pull-secrets/hub-pull")],
    ),
    case(
        "a host glob in every label position matches ECR hosts with the same label count",
        rules="  - {name: ecr, registries: ['*.dkr.ecr.*.amazonaws.com'], secrets: [ecr-pull]}\n",
        obj=pod(["123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"]),
        expected=pod(
            ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"], pull_secrets=["ecr-pull"]
        ),
        copies=[("team-a", "ecr-pull", "pull-secrets/ecr-pull")],
    ),
    case(
        "a host glob does not match a host with fewer labels or a port",
        rules="  - {name: ecr, registries: ['*.dkr.ecr.*.amazonaws.com'], secrets: [ecr-pull]}\n",
        obj=pod(
            [
                "dkr.ecr.eu-west-1.amazonaws.com/app",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/app",
            ]
        ),
        expected=pod(
            [
                "dkr.ecr.eu-west-1.amazonaws.com/app",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/app",
            ]
        ),
    ),
    case(
        "a path-prefix pattern covers its repositories and, like the kubelet, string prefixes",
        rules="  - {name: team, registries: [quay.io/team], secrets: [quay-pull]}\n",
        obj=pod(["quay.io/team/app"], init=["quay.io/teamz/tool"]),
        expected=pod(["quay.io/team/app"], init=["quay.io/teamz/tool"], pull_secrets=["quay-pull"]),
        copies=[("team-a", "quay-pull", "pull-secrets/quay-pull")],
    ),
    case(
        "a path-prefix pattern does not cover another path on the same host",
        rules="  - {name: team, registries: [quay.io/team], secrets: [quay-pull]}\n",
        obj=pod(["quay.io/other/app", "quay.io/te"]),
        expected=pod(["quay.io/other/app", "quay.io/te"]),
    ),
    case(
        "a port in the pattern matches only that port",
        rules="  - {name: corp, registries: ['registry.example.com:5000'], secrets: [corp-pull]}\n",
        obj=pod([CORP_IMAGE, "registry.example.com:5000/app"]),
        expected=pod([CORP_IMAGE, "registry.example.com:5000/app"], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
        # the secret's key has no port, so the kubelet would not use it for :5000
        warnings=["rule corp: corp-pull holds no auths key the kubelet uses for registry"],
    ),
    case(
        "a legacy dockercfg secret is injected like a dockerconfigjson one",
        rules="  - {name: legacy, secrets: [legacy-pull]}\n",
        obj=pod(["legacy.example.com/app"]),
        expected=pod(["legacy.example.com/app"], pull_secrets=["legacy-pull"]),
        copies=[("team-a", "legacy-pull", "pull-secrets/legacy-pull")],
    ),
    # -- the kubelet cross-check -----------------------------------------------------------
    case(
        "an injected secret holding no key the kubelet would use draws a warning",
        rules="  - {name: team, registries: [quay.io/team], secrets: [corp-pull]}\n",
        obj=pod(["quay.io/team/app"]),
        expected=pod(["quay.io/team/app"], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
        warnings=[
            "rule team: corp-pull holds no auths key the kubelet uses for quay.io/team/app; "
            "the pull may fail or go anonymous"
        ],
    ),
    case(
        "an auths key ending inside a path segment still applies, first: we say so and how "
        "the kubelet goes on",
        rules="  - {name: teams, secrets: [team-pull]}\n",
        obj=pod(["quay.io/teamx/app", "quay.io/team/app", "quay.io/other/app"]),
        expected=pod(
            ["quay.io/teamx/app", "quay.io/team/app", "quay.io/other/app"],
            pull_secrets=["team-pull"],
        ),
        copies=[("team-a", "team-pull", "pull-secrets/team-pull")],
        warnings=[
            "quay.io/teamx/app: auths key quay.io/team applies too (the kubelet matches paths "
            "as string prefixes); the kubelet tries quay.io/team, quay.io in this order, the "
            "next only if the registry refuses one"
        ],
    ),
    case(
        "a docker.io key in another injected secret blocks the Hub fallback, and we say so",
        rules="  - {name: hub, registries: [docker.io], secrets: [hub-pull]}\n"
        "  - {name: mirror, registries: [docker.io], secrets: [mirror-pull]}\n",
        obj=pod(["nginx"]),
        expected=pod(["nginx"], pull_secrets=["hub-pull", "mirror-pull"]),
        copies=[
            ("team-a", "hub-pull", "pull-secrets/hub-pull"),
            ("team-a", "mirror-pull", "pull-secrets/mirror-pull"),
        ],
        warnings=["rule hub: hub-pull holds no auths key the kubelet uses for docker.io/library/"],
    ),
    # -- namespaces ------------------------------------------------------------------------
    case(
        "an include glob reaches a matching namespace",
        rules=CORP.replace("}", ", namespaces: {include: ['team-*']}}"),
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "an include glob does not reach another namespace",
        rules=CORP.replace("}", ", namespaces: {include: ['team-*']}}"),
        namespace="kube-system",
        obj=pod([CORP_IMAGE], namespace="kube-system"),
        expected=pod([CORP_IMAGE], namespace="kube-system"),
    ),
    case(
        "an exclude glob wins over an include glob",
        rules=CORP.replace("}", ", namespaces: {include: ['team-*'], exclude: ['*-b']}}"),
        namespace="team-b",
        obj=pod([CORP_IMAGE], namespace="team-b"),
        expected=pod([CORP_IMAGE], namespace="team-b"),
    ),
    case(
        "matchLabels reaches a namespace with the label",
        rules=CORP.replace("}", ", namespaces: {selector: {matchLabels: {env: dev}}}}"),
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "matchLabels does not reach a namespace with another value",
        rules=CORP.replace("}", ", namespaces: {selector: {matchLabels: {env: dev}}}}"),
        namespace="team-b",
        obj=pod([CORP_IMAGE], namespace="team-b"),
        expected=pod([CORP_IMAGE], namespace="team-b"),
    ),
    case(
        "NotIn holds for a namespace without the label",
        rules=CORP.replace(
            "}",
            ", namespaces: {selector: {matchExpressions: "
            "[{key: env, operator: NotIn, values: [prod]}]}}}",
        ),
        namespace="sandbox",
        obj=pod([CORP_IMAGE], namespace="sandbox"),
        expected=pod([CORP_IMAGE], namespace="sandbox", pull_secrets=["corp-pull"]),
        copies=[("sandbox", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "NotIn excludes a namespace with a listed value",
        rules=CORP.replace(
            "}",
            ", namespaces: {selector: {matchExpressions: "
            "[{key: env, operator: NotIn, values: [prod]}]}}}",
        ),
        namespace="team-b",
        obj=pod([CORP_IMAGE], namespace="team-b"),
        expected=pod([CORP_IMAGE], namespace="team-b"),
    ),
    case(
        "an unknown namespace still matches a selector on its name label (the API server sets "
        "it), but no copy is created there before its labels (opt-out) are known",
        rules=CORP.replace(
            "}", ", namespaces: {selector: {matchLabels: {kubernetes.io/metadata.name: ghost}}}}"
        ),
        namespace="ghost",
        obj=pod([CORP_IMAGE], namespace="ghost"),
        expected=pod([CORP_IMAGE], namespace="ghost", pull_secrets=["corp-pull"]),
        warnings=["namespace ghost could not be looked up: corp-pull not created now"],
        known=False,
    ),
    case(
        "a selector on other labels is never evaluated against an unknown namespace",
        rules=CORP.replace("}", ", namespaces: {selector: {matchLabels: {env: dev}}}}"),
        namespace="ghost",
        obj=pod([CORP_IMAGE], namespace="ghost"),
        expected=pod([CORP_IMAGE], namespace="ghost"),
        warnings=["rules that select namespaces by label were not applied"],
        known=False,
    ),
    case(
        "NotIn does not match an unknown namespace (its labels might hold the listed value)",
        rules=CORP.replace(
            "}",
            ", namespaces: {selector: {matchExpressions: "
            "[{key: env, operator: NotIn, values: [prod]}]}}}",
        ),
        namespace="ghost",
        obj=pod([CORP_IMAGE], namespace="ghost"),
        expected=pod([CORP_IMAGE], namespace="ghost"),
        warnings=["rules that select namespaces by label were not applied"],
        known=False,
    ),
    case(
        "DoesNotExist does not match an unknown namespace",
        rules=CORP.replace(
            "}",
            ", namespaces: {selector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}}",
        ),
        namespace="ghost",
        obj=pod([CORP_IMAGE], namespace="ghost"),
        expected=pod([CORP_IMAGE], namespace="ghost"),
        warnings=["rules that select namespaces by label were not applied"],
        known=False,
    ),
    case(
        "a rule without a selector reaches an unknown namespace by name (no copy yet)",
        rules=CORP,
        namespace="ghost",
        obj=pod([CORP_IMAGE], namespace="ghost"),
        expected=pod([CORP_IMAGE], namespace="ghost", pull_secrets=["corp-pull"]),
        warnings=["corp-pull not created now"],
        known=False,
    ),
    case(
        "a pod in the source namespace uses the source secret itself: nothing to copy",
        rules=CORP,
        namespace=PS,
        obj=pod([CORP_IMAGE], namespace=PS),
        expected=pod([CORP_IMAGE], namespace=PS, pull_secrets=["corp-pull"]),
    ),
    case(
        "a generateName pod without a namespace uses the request namespace",
        rules=CORP,
        obj=pod([CORP_IMAGE], name=None, namespace=None, generate_name="app-"),
        expected=pod(
            [CORP_IMAGE],
            name=None,
            namespace=None,
            generate_name="app-",
            pull_secrets=["corp-pull"],
        ),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "the request namespace wins over the object's",
        rules=CORP.replace("}", ", namespaces: {include: [team-a]}}"),
        obj=pod([CORP_IMAGE], namespace="team-b"),
        expected=pod([CORP_IMAGE], namespace="team-b", pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "without a request namespace the object's namespace is used",
        rules=CORP,
        namespace="",
        obj=pod([CORP_IMAGE], namespace="team-b"),
        expected=pod([CORP_IMAGE], namespace="team-b", pull_secrets=["corp-pull"]),
        copies=[("team-b", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "without any namespace nothing is decided",
        rules=CORP,
        namespace="",
        obj=pod([CORP_IMAGE], namespace=None),
        expected=pod([CORP_IMAGE], namespace=None),
    ),
    # -- broken sources --------------------------------------------------------------------
    case(
        "a missing source secret is not injected; the pod is admitted with a warning",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [gone]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE]),
        warnings=["rule corp: source secret pull-secrets/gone not found; not injecting gone"],
    ),
    case(
        "a source secret of the wrong type is not injected",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [opaque]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE]),
        warnings=["rule corp: source secret pull-secrets/opaque is not a usable pull secret (type"],
    ),
    case(
        "a source secret whose payload is not JSON is not injected",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [not-json]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE]),
        warnings=["pull-secrets/not-json is not a usable pull secret (the .dockerconfigjson"],
    ),
    case(
        "a source secret with a malformed auth field is not injected, its sibling is",
        rules="  - {name: corp, registries: [registry.example.com],"
        " secrets: [bad-auth, corp-pull]}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
        warnings=["pull-secrets/bad-auth is not a usable pull secret (entry 'registry.example"],
    ),
    case(
        "onFailure Deny turns a missing source secret into a denial",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [gone],"
        " onFailure: Deny}\n",
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE]),
        warnings=["source secret pull-secrets/gone not found"],
        deny="pullsecret-injector: rule corp requires gone: source secret pull-secrets/gone "
        "not found",
    ),
    case(
        "onFailure Deny does not deny a pod whose images the rule does not cover",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [gone],"
        " onFailure: Deny}\n",
        obj=pod(["quay.io/team/app"]),
        expected=pod(["quay.io/team/app"]),
    ),
    case(
        "a rule matching from auths keys silently matches nothing when its secret is missing",
        rules="  - {name: quay, secrets: [gone], onFailure: Deny}\n",
        obj=pod(["quay.io/team/app"]),
        expected=pod(["quay.io/team/app"]),
    ),
    # -- existing copies -------------------------------------------------------------------
    case(
        "an unmanaged Secret with the copy's name is injected by name, left alone, not copied",
        rules=CORP,
        targets=[target_secret("corp-pull", "team-a", managed=False)],
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        warnings=[
            "Secret corp-pull in team-a is not managed by pullsecret-injector; injected by name"
        ],
    ),
    case(
        "a managed copy that already exists is injected but not re-created at admission",
        rules=CORP,
        targets=[
            target_secret("corp-pull", "team-a", managed=True, source="pull-secrets/corp-pull")
        ],
        obj=pod([CORP_IMAGE]),
        expected=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[],
    ),
    # -- invalid and malformed objects -----------------------------------------------------
    case(
        "an invalid image reference draws a warning and gets nothing; valid ones still do",
        rules=CORP,
        obj=pod(["registry.example.com/App:1", CORP_IMAGE]),
        expected=pod(["registry.example.com/App:1", CORP_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
        warnings=[
            "spec.containers[0] (c0): invalid image 'registry.example.com/App:1': repository "
            "name 'App' must be lowercase; no pull secret injected"
        ],
    ),
    case(
        "a pod whose only image is invalid gets no patch",
        rules=CORP,
        obj=pod(["registry.example.com/app@sha256:abc"]),
        expected=pod(["registry.example.com/app@sha256:abc"]),
        warnings=["spec.containers[0] (c0): invalid image"],
    ),
    case(
        "a container without an image, or with a non-string image, is skipped quietly",
        rules=CORP,
        obj={
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "a"}, {"name": "b", "image": 7}, {"image": CORP_IMAGE}]
            },
        },
        expected={
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "a"}, {"name": "b", "image": 7}, {"image": CORP_IMAGE}],
                "imagePullSecrets": [{"name": "corp-pull"}],
            },
        },
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "imagePullSecrets entries without a name are kept and ours is appended",
        rules=CORP,
        obj={
            "kind": "Pod",
            "spec": {
                "containers": [{"image": CORP_IMAGE}],
                "imagePullSecrets": [{}, {"name": 5}, "junk"],
            },
        },
        expected={
            "kind": "Pod",
            "spec": {
                "containers": [{"image": CORP_IMAGE}],
                "imagePullSecrets": [{}, {"name": 5}, "junk", {"name": "corp-pull"}],
            },
        },
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a spec that is not a mapping gives no patch",
        rules=CORP,
        obj={"kind": "Pod", "metadata": [], "spec": ["containers"]},
        expected={"kind": "Pod", "metadata": [], "spec": ["containers"]},
    ),
    case(
        "containers that are not a list give no patch",
        rules=CORP,
        obj={"kind": "Pod", "spec": {"containers": {"image": CORP_IMAGE}, "initContainers": "x"}},
        expected={
            "kind": "Pod",
            "spec": {"containers": {"image": CORP_IMAGE}, "initContainers": "x"},
        },
    ),
    case(
        "containers that are not mappings give no patch",
        rules=CORP,
        obj={"kind": "Pod", "spec": {"containers": [CORP_IMAGE, None, 3]}},
        expected={"kind": "Pod", "spec": {"containers": [CORP_IMAGE, None, 3]}},
    ),
]

SERVICE_ACCOUNT_CASES = [
    case(
        "an update that dropped the injected secret (a GitOps re-apply) gets it back",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['gitops-*']}}"),
        kind="ServiceAccount",
        operation="UPDATE",
        obj=service_account("gitops-ssa", pull_secrets=["own-secret"]),
        expected=service_account("gitops-ssa", pull_secrets=["own-secret", "corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "an OLM-style full replacement keeps its entries, in order, and gains ours at the end",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['*']}}"),
        kind="ServiceAccount",
        operation="UPDATE",
        obj=service_account("operator", pull_secrets=["b-pull", "a-pull"]),
        expected=service_account("operator", pull_secrets=["b-pull", "a-pull", "corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "an update that keeps the injected secret gets no patch (no write loop)",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['*']}}"),
        kind="ServiceAccount",
        operation="UPDATE",
        obj=service_account("operator", pull_secrets=["corp-pull", "x-dockercfg-1"]),
        expected=service_account("operator", pull_secrets=["corp-pull", "x-dockercfg-1"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a new ServiceAccount whose name matches a glob gets the rule's secrets",
        rules=CORP.replace("}", ", serviceAccounts: {names: [default, 'builder-*']}}"),
        kind="ServiceAccount",
        obj=service_account("builder-1"),
        expected=service_account("builder-1", pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a ServiceAccount with null imagePullSecrets gets the whole list",
        rules=CORP.replace("}", ", serviceAccounts: {names: [default]}}"),
        kind="ServiceAccount",
        obj=service_account(pull_secrets=None),
        expected=service_account(pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "ServiceAccount secrets are appended after existing (OpenShift) entries",
        rules=CORP.replace("}", ", serviceAccounts: {names: [default]}}")
        + "  - {name: quay, secrets: [quay-pull], serviceAccounts: {names: ['*']}}\n",
        kind="ServiceAccount",
        obj=service_account(pull_secrets=["default-dockercfg-xyz"]),
        expected=service_account(pull_secrets=["default-dockercfg-xyz", "corp-pull", "quay-pull"]),
        copies=[
            ("team-a", "corp-pull", "pull-secrets/corp-pull"),
            ("team-a", "quay-pull", "pull-secrets/quay-pull"),
        ],
    ),
    case(
        "a ServiceAccount that already lists the secret is not patched",
        rules=CORP.replace("}", ", serviceAccounts: {names: [default]}}"),
        kind="ServiceAccount",
        obj=service_account(pull_secrets=["corp-pull"]),
        expected=service_account(pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "a ServiceAccount whose name matches no glob is untouched",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['builder-*']}}"),
        kind="ServiceAccount",
        obj=service_account("default"),
        expected=service_account("default"),
    ),
    case(
        "a rule without serviceAccounts leaves ServiceAccounts untouched",
        rules=CORP,
        kind="ServiceAccount",
        obj=service_account("default"),
        expected=service_account("default"),
    ),
    case(
        "a ServiceAccount in a namespace the rule does not reach is untouched",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['*']}, namespaces: {include: [x]}}"),
        kind="ServiceAccount",
        obj=service_account("default"),
        expected=service_account("default"),
    ),
    case(
        "a ServiceAccount rule with a missing secret warns and adds nothing",
        rules="  - {name: corp, registries: [registry.example.com], secrets: [gone],"
        " serviceAccounts: {names: [default]}}\n",
        kind="ServiceAccount",
        obj=service_account("default"),
        expected=service_account("default"),
        warnings=["rule corp: source secret pull-secrets/gone not found; not injecting gone"],
    ),
]

DEBUG_IMAGE = "registry.example.com/debug:1"
EPHEMERAL_CASES = [
    case(
        "an ephemeral container needing a secret the pod lacks draws a warning and no ops",
        rules=CORP,
        operation="UPDATE",
        sub_resource="ephemeralcontainers",
        old=pod(["busybox"]),
        obj=pod(["busybox"], ephemeral=[DEBUG_IMAGE]),
        expected=pod(["busybox"], ephemeral=[DEBUG_IMAGE]),
        warnings=[
            "ephemeral container debug0 (registry.example.com/debug:1) needs corp-pull, which "
            "this running pod lacks and cannot gain; recreate the pod to pull it"
        ],
    ),
    case(
        "an ephemeral container whose secret the pod already has draws no warning",
        rules=CORP,
        operation="UPDATE",
        sub_resource="ephemeralcontainers",
        old=pod([CORP_IMAGE], pull_secrets=["corp-pull"]),
        obj=pod([CORP_IMAGE], ephemeral=[DEBUG_IMAGE], pull_secrets=["corp-pull"]),
        expected=pod([CORP_IMAGE], ephemeral=[DEBUG_IMAGE], pull_secrets=["corp-pull"]),
        copies=[("team-a", "corp-pull", "pull-secrets/corp-pull")],
    ),
    case(
        "ephemeral containers that were already there are not reported again",
        rules=CORP,
        operation="UPDATE",
        sub_resource="ephemeralcontainers",
        old=pod(["busybox"], ephemeral=[DEBUG_IMAGE]),
        obj=pod(["busybox"], ephemeral=[DEBUG_IMAGE]),
        expected=pod(["busybox"], ephemeral=[DEBUG_IMAGE]),
    ),
    case(
        "an ephemeral container no rule covers draws nothing",
        rules=CORP,
        operation="UPDATE",
        sub_resource="ephemeralcontainers",
        old=pod([CORP_IMAGE]),
        obj=pod([CORP_IMAGE], ephemeral=["busybox"]),
        expected=pod([CORP_IMAGE], ephemeral=["busybox"]),
    ),
]

SKIPPED_CASES = [
    case(
        f"{kind} {operation} {sub or '(no subresource)'} is skipped",
        rules=CORP.replace("}", ", serviceAccounts: {names: ['*']}}"),
        kind=kind,
        operation=operation,
        sub_resource=sub,
        obj=obj,
        expected=obj,
    )
    for kind, operation, sub, obj in [
        ("Pod", "UPDATE", "", pod([CORP_IMAGE])),
        ("Pod", "DELETE", "", pod([CORP_IMAGE])),
        ("Pod", "CREATE", "binding", pod([CORP_IMAGE])),
        ("Pod", "UPDATE", "status", pod([CORP_IMAGE])),
        (
            "Deployment",
            "CREATE",
            "",
            {"kind": "Deployment", "spec": {"template": pod([CORP_IMAGE])}},
        ),
    ]
]


@pytest.mark.parametrize(
    "c", [*POD_CASES, *SERVICE_ACCOUNT_CASES, *EPHEMERAL_CASES, *SKIPPED_CASES]
)
def test_plan(c: Case) -> None:
    policy = load_policy(HEADER + c.rules)
    view = store_for(c)
    original = copy.deepcopy(c.obj)

    result = plan(policy, request_for(c, c.obj), view)

    assert c.obj == original, "plan must not mutate the request object"
    patched = jsonpatch.apply_patch(copy.deepcopy(c.obj), list(result.ops))
    assert patched == c.expected
    assert all(op["op"] == "add" for op in result.ops)
    assert_warnings(result, c.warnings)
    assert [(s.namespace, s.name, s.source) for s in result.copies] == list(c.copies)
    assert result.deny == c.deny
    assert result.namespace_known is c.known

    again = plan(policy, request_for(c, patched), view)
    assert again.ops == ()
    assert again.deny == c.deny


# -- things the table cannot express ----------------------------------------------------------


def policy_of(rules: str) -> Policy:
    return load_policy(HEADER + rules)


def pod_plan(rules: str, obj: Mapping[str, Any], view: ClusterStore | None = None) -> Plan:
    view = view if view is not None else cluster(sources=SOURCES, namespaces=NAMESPACES)
    return plan(policy_of(rules), AdmissionRequest("Pod", "CREATE", "team-a", obj), view)


def test_existing_list_gets_one_append_op_per_missing_secret() -> None:
    rules = CORP + "  - {name: quay, secrets: [quay-pull]}\n"
    result = pod_plan(rules, pod([CORP_IMAGE, "quay.io/x/y"], pull_secrets=["sa-added"]))
    assert result.ops == (
        {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "corp-pull"}},
        {"op": "add", "path": "/spec/imagePullSecrets/-", "value": {"name": "quay-pull"}},
    )


def test_absent_list_gets_one_add_of_the_whole_list() -> None:
    rules = CORP + "  - {name: quay, secrets: [quay-pull]}\n"
    result = pod_plan(rules, pod([CORP_IMAGE, "quay.io/x/y"]))
    assert result.ops == (
        {
            "op": "add",
            "path": "/spec/imagePullSecrets",
            "value": [{"name": "corp-pull"}, {"name": "quay-pull"}],
        },
    )


def test_injections_and_image_decisions_explain_the_result() -> None:
    result = pod_plan(
        "  - {name: corp, registries: [registry.example.com], secrets: [corp-pull, auth-pull]}\n",
        pod([CORP_IMAGE, "busybox"]),
    )
    assert [(i.rule, i.secret, i.registry) for i in result.injections] == [
        ("corp", "corp-pull", "registry.example.com"),
        ("corp", "auth-pull", "registry.example.com"),
    ]
    first, second = result.images
    assert (first.field, first.container, first.repository) == (
        "spec.containers[0]",
        "c0",
        "registry.example.com/app",
    )
    assert first.secrets == ("corp-pull", "auth-pull")
    assert first.kubelet_keys == ("registry.example.com",)
    assert [m.rule.name for m in first.matches] == ["corp"]
    assert (second.repository, second.secrets, second.matches) == (
        "docker.io/library/busybox",
        (),
        (),
    )


def test_hub_fallback_is_reported_as_the_matching_pattern() -> None:
    result = pod_plan("  - {name: hub, secrets: [hub-pull]}\n", pod(["nginx"]))
    (decision,) = result.images
    (match,) = decision.matches
    assert (match.via, match.patterns) == ("auths", ("index.docker.io",))
    assert decision.kubelet_keys == ("https://index.docker.io/v1/",)


def test_a_long_warning_is_cut_to_the_api_server_limit() -> None:
    long_name = "a" * 200 + "." + "b" * 52  # a 253-character Secret name
    rules = f"  - {{name: corp, registries: [registry.example.com], secrets: [{long_name}]}}\n"
    result = pod_plan(rules, pod([CORP_IMAGE]))
    (warning,) = result.warnings
    assert warning.startswith("pullsecret-injector: rule corp: source secret pull-secrets/aaa")
    assert len(warning) == MAX_WARNING_LENGTH
    assert warning.endswith("…")


def test_warnings_are_capped_and_deduplicated() -> None:
    images = [f"registry.example.com/Bad{n}" for n in range(30)] + ["registry.example.com/Bad0"]
    result = pod_plan(CORP, pod(images))
    assert len(result.warnings) == 20
    assert len(set(result.warnings)) == 20


def test_a_request_object_that_is_not_a_mapping_is_skipped() -> None:
    request = AdmissionRequest("Pod", "CREATE", "", ["not", "a", "pod"])  # type: ignore[arg-type]
    result = plan(policy_of(CORP), request, cluster(sources=SOURCES))
    assert (result.ops, result.warnings, result.namespace) == ((), (), "")


def test_ephemeral_request_with_malformed_old_object_never_raises() -> None:
    request = AdmissionRequest(
        "Pod",
        "UPDATE",
        "team-a",
        {"spec": {"ephemeralContainers": [{"name": "d", "image": DEBUG_IMAGE}, "junk"]}},
        old_object={"spec": "junk"},
        sub_resource="ephemeralcontainers",
    )
    result = plan(policy_of(CORP), request, cluster(sources=SOURCES, namespaces=NAMESPACES))
    assert result.ops == ()
    assert len(result.warnings) == 1
    assert (
        "ephemeral container d (registry.example.com/debug:1) needs corp-pull"
        in (result.warnings[0])
    )


@pytest.mark.parametrize("obj", [None, ["x"], "pod"])
def test_ephemeral_request_with_a_non_mapping_object_never_raises(obj: Any) -> None:
    request = AdmissionRequest(
        "Pod", "UPDATE", "team-a", obj, old_object=None, sub_resource="ephemeralcontainers"
    )
    result = plan(policy_of(CORP), request, cluster(sources=SOURCES, namespaces=NAMESPACES))
    assert result.ops == ()


def test_a_non_mapping_service_account_gets_no_ops() -> None:
    rules = CORP.replace("}", ", serviceAccounts: {names: ['*']}}")
    request = AdmissionRequest("ServiceAccount", "CREATE", "team-a", ["x"])  # type: ignore[arg-type]
    result = plan(policy_of(rules), request, cluster(sources=SOURCES, namespaces=NAMESPACES))
    assert result.ops == ()


def test_dry_run_does_not_change_the_decision() -> None:
    """Skipping the copy writes on dryRun is the shell's job; the plan is the same."""
    policy = policy_of(CORP)
    view = cluster(sources=SOURCES, namespaces=NAMESPACES)
    normal = plan(policy, AdmissionRequest("Pod", "CREATE", "team-a", pod([CORP_IMAGE])), view)
    dry = plan(
        policy,
        AdmissionRequest("Pod", "CREATE", "team-a", pod([CORP_IMAGE]), dry_run=True),
        view,
    )
    assert (dry.ops, dry.copies, dry.warnings) == (normal.ops, normal.copies, normal.warnings)
    assert len(dry.copies) == 1


def test_deny_collects_every_unsatisfied_secret_once() -> None:
    rules = (
        "  - {name: corp, registries: [registry.example.com], secrets: [gone, opaque],"
        " onFailure: Deny}\n"
    )
    result = pod_plan(rules, pod([CORP_IMAGE, "registry.example.com/other"]))
    assert result.deny is not None
    assert result.deny.startswith("pullsecret-injector: rule corp requires gone: ")
    assert result.deny.count("requires gone") == 1
    assert result.deny.count("requires opaque") == 1
    assert result.ops == ()


def test_the_plan_follows_source_changes_in_the_same_store() -> None:
    """Derived state is cached per policy and view; a changed source must invalidate it."""
    policy = policy_of("  - {name: quay, secrets: [quay-pull]}\n")
    view = cluster(sources=SOURCES, namespaces=NAMESPACES)
    request = AdmissionRequest("Pod", "CREATE", "team-a", pod(["ghcr.io/org/app"]))
    assert plan(policy, request, view).ops == ()
    view.put_source(source_from_object(pull_secret("quay-pull", PS, ["quay.io", "ghcr.io"])))
    assert plan(policy, request, view).ops == (
        {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "quay-pull"}]},
    )
    view.delete_source(PS, "quay-pull")
    assert plan(policy, request, view).ops == ()


def test_a_namespace_relabel_is_seen_by_the_next_plan() -> None:
    policy = policy_of(CORP.replace("}", ", namespaces: {selector: {matchLabels: {pulls: corp}}}}"))
    view = cluster(sources=SOURCES, namespaces=NAMESPACES)
    request = AdmissionRequest("Pod", "CREATE", "team-a", pod([CORP_IMAGE]))
    assert plan(policy, request, view).ops == ()
    view.put_namespace("team-a", {"pulls": "corp"})
    assert len(plan(policy, request, view).ops) == 1


# -- credential subset ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "patterns", "expected"),
    [
        pytest.param(
            ["quay.io/team/app"],
            ["quay.io/team"],
            (("quay.io/team/app", "quay.io/team/app"),),
            id="a key inside the granted pattern is kept as is",
        ),
        pytest.param(
            ["quay.io"],
            ["quay.io/team"],
            (("quay.io", "quay.io/team"),),
            id="a broader key is re-keyed to the pattern",
        ),
        pytest.param(
            ["https://quay.io/v1/"],
            ["quay.io/team"],
            (("https://quay.io/v1/", "quay.io/team"),),
            id="a broader key written as a URL is re-keyed too",
        ),
        pytest.param(
            ["*.example.com"],
            ["registry.example.com"],
            (("*.example.com", "registry.example.com"),),
            id="a glob key covering the pattern is re-keyed to it",
        ),
        pytest.param(
            ["registry.example.com"],
            ["*.example.com"],
            (("registry.example.com", "registry.example.com"),),
            id="a literal key inside a glob pattern is kept",
        ),
        pytest.param(
            ["registry.example.com", "quay.io/other"],
            ["quay.io/team"],
            (),
            id="unrelated keys and sibling paths are dropped",
        ),
        pytest.param(
            ["https://index.docker.io/v1/"],
            ["docker.io"],
            (("https://index.docker.io/v1/", "https://index.docker.io/v1/"),),
            id="index.docker.io is kept for a docker.io grant",
        ),
        pytest.param(
            ["index.docker.io"],
            ["index.docker.io"],
            (("index.docker.io", "index.docker.io"),),
            id="index.docker.io is kept for an index.docker.io grant",
        ),
        pytest.param(
            ["quay.io"],
            ["quay.io/a", "quay.io/b"],
            (("quay.io", "quay.io/a"), ("quay.io", "quay.io/b")),
            id="one broad key is re-keyed to every pattern it covers",
        ),
        pytest.param(
            ["quay.io:abc", "quay.io/team/x"],
            ["quay.io/team"],
            (("quay.io/team/x", "quay.io/team/x"),),
            id="a key the kubelet cannot parse is skipped",
        ),
        pytest.param(
            ["registry.example.com:5000", "registry.example.com"],
            ["registry.example.com"],
            (("registry.example.com", "registry.example.com"),),
            id="a key with a port is not inside a pattern without one",
        ),
    ],
)
def test_grant_subset(
    keys: list[str], patterns: list[str], expected: tuple[tuple[str, str], ...]
) -> None:
    assert grant_subset(keys, patterns) == expected


def test_grant_subset_rekeys_hub_credentials_to_a_docker_io_path() -> None:
    assert grant_subset(["https://index.docker.io/v1/"], ["docker.io/myorg"]) == (
        ("https://index.docker.io/v1/", "docker.io/myorg"),
    )


def source_of(secret: Mapping[str, Any]) -> Any:
    return source_from_object(secret)


def spec(subset: tuple[tuple[str, str], ...] | None, source: str = "quay-pull") -> CopySpec:
    return CopySpec(
        namespace="team-a",
        name="quay-copy",
        source_namespace=PS,
        source_name=source,
        rules=("zeta", "alpha"),
        subset=subset,
    )


SUBSET_SOURCE = pull_secret(
    "quay-pull",
    PS,
    {
        "quay.io": auth_entry(1),
        "quay.io/team/app": auth_entry(2),
        "registry.example.com": auth_entry(3),
    },
)


def test_render_copy_of_a_subset_carries_only_granted_entries() -> None:
    source = source_of(SUBSET_SOURCE)
    subset = grant_subset(source.config.keys, ["quay.io/team"])
    rendered = render_copy(spec(subset), source)

    assert decoded_auths(rendered) == {
        "quay.io/team": auth_entry(1),
        "quay.io/team/app": auth_entry(2),
    }
    assert rendered["type"] == "kubernetes.io/dockerconfigjson"
    assert list(rendered["data"]) == [".dockerconfigjson"]
    metadata = rendered["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("quay-copy", "team-a")
    assert metadata["labels"] == {"app.kubernetes.io/managed-by": "pullsecret-injector"}
    assert metadata["annotations"] == {
        "pullsecret-injector.io/source": "pull-secrets/quay-pull",
        "pullsecret-injector.io/content-hash": content_hash(rendered["type"], rendered["data"]),
        RULES_ANNOTATION: "alpha,zeta",
    }
    assert len(metadata["annotations"]["pullsecret-injector.io/content-hash"]) == 32


def test_render_copy_verbatim_keeps_the_source_bytes() -> None:
    source = source_of(SUBSET_SOURCE)
    rendered = render_copy(spec(None), source)
    assert rendered["data"] == SUBSET_SOURCE["data"]
    assert rendered["type"] == SUBSET_SOURCE["type"]
    assert rendered["metadata"]["annotations"]["pullsecret-injector.io/content-hash"] == (
        content_hash(SUBSET_SOURCE["type"], SUBSET_SOURCE["data"])
    )


def test_render_copy_of_a_dockercfg_subset_stays_dockercfg() -> None:
    source = source_of(dockercfg_secret("legacy", PS, ["legacy.example.com", "quay.io"]))
    rendered = render_copy(spec((("quay.io", "quay.io"),), "legacy"), source)
    assert rendered["type"] == "kubernetes.io/dockercfg"
    assert list(rendered["data"]) == [".dockercfg"]
    assert decoded_auths(rendered) == {"quay.io": auth_entry(2)}


def test_render_copy_is_deterministic_and_the_hash_follows_content() -> None:
    source = source_of(SUBSET_SOURCE)
    first = render_copy(spec((("quay.io", "quay.io/team"),)), source)
    assert first == render_copy(spec((("quay.io", "quay.io/team"),)), source)
    other = render_copy(spec((("quay.io", "quay.io/other"),)), source)
    hash_key = "pullsecret-injector.io/content-hash"
    assert first["metadata"]["annotations"][hash_key] != other["metadata"]["annotations"][hash_key]


def test_render_copy_refuses_an_unusable_source() -> None:
    source = source_of(raw_secret("opaque", PS, secret_type="Opaque", data={}))
    with pytest.raises(ValueError, match="pull-secrets/quay-pull is not a usable pull secret"):
        render_copy(spec(None), source)


def test_subset_keeps_the_narrower_entry_when_a_broader_key_is_rekeyed_onto_it() -> None:
    secret = pull_secret("quay-pull", PS, {"quay.io/team": auth_entry(1), "quay.io": auth_entry(2)})
    source = source_of(secret)
    rendered = render_copy(spec(grant_subset(source.config.keys, ["quay.io/team"])), source)
    assert decoded_auths(rendered) == {"quay.io/team": auth_entry(1)}


def test_render_copy_verbatim_of_a_string_data_source() -> None:
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "quay-pull", "namespace": PS},
        "stringData": {
            ".dockerconfigjson": json.dumps({"auths": {"quay.io": {"auth": b64("u:p")}}})
        },
    }
    rendered = render_copy(spec(None), source_of(secret))
    assert decoded_auths(rendered) == {"quay.io": {"auth": b64("u:p")}}


SUBSET_RULES = """\
  - name: team-a-images
    registries: [quay.io/team-a]
    secrets: [{name: quay-pull, targetName: quay-copy}]
    credentialSubset: true
  - name: team-b-images
    registries: [quay.io/team-b]
    secrets: [{name: quay-pull, targetName: quay-copy}]
    credentialSubset: true
"""


def test_two_subset_rules_wanting_one_copy_merge_their_grants() -> None:
    policy = policy_of(SUBSET_RULES)
    view = cluster(sources=SOURCES, namespaces=NAMESPACES)
    copies = desired_copies(policy, "team-a", NAMESPACES["team-a"], view)
    assert copies == {
        "quay-copy": CopySpec(
            namespace="team-a",
            name="quay-copy",
            source_namespace=PS,
            source_name="quay-pull",
            rules=("team-a-images", "team-b-images"),
            subset=(("quay.io", "quay.io/team-a"), ("quay.io", "quay.io/team-b")),
        )
    }
    rendered = render_copy(copies["quay-copy"], view.source_secret(PS, "quay-pull"))  # type: ignore[arg-type]
    assert decoded_auths(rendered) == {
        "quay.io/team-a": auth_entry(1),
        "quay.io/team-b": auth_entry(1),
    }


def test_a_verbatim_rule_wins_over_a_subset_rule_for_the_same_copy() -> None:
    rules = SUBSET_RULES.replace("    credentialSubset: true\n", "", 1)
    view = cluster(sources=SOURCES, namespaces=NAMESPACES)
    copies = desired_copies(policy_of(rules), "team-a", NAMESPACES["team-a"], view)
    assert copies["quay-copy"].subset is None
    assert copies["quay-copy"].rules == ("team-a-images", "team-b-images")


def test_a_pod_using_both_subset_rules_gets_one_merged_copy() -> None:
    result = pod_plan(SUBSET_RULES, pod(["quay.io/team-a/app", "quay.io/team-b/app"]))
    assert result.ops == (
        {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "quay-copy"}]},
    )
    (copy_spec,) = result.copies
    assert copy_spec.subset == (("quay.io", "quay.io/team-a"), ("quay.io", "quay.io/team-b"))
    assert result.warnings == ()
    assert [d.kubelet_keys for d in result.images] == [("quay.io/team-a",), ("quay.io/team-b",)]


def test_a_subset_granting_nothing_is_not_injected() -> None:
    rules = (
        "  - {name: ghcr, registries: [ghcr.io/org], secrets: [quay-pull],"
        " credentialSubset: true}\n"
    )
    result = pod_plan(rules, pod(["ghcr.io/org/app"]))
    assert result.ops == ()
    assert result.copies == ()
    assert result.warnings == (
        "pullsecret-injector: rule ghcr: pull-secrets/quay-pull has no auths entry for the "
        "granted registries; not injecting quay-pull",
    )


def test_a_subset_copy_is_checked_with_its_rekeyed_keys() -> None:
    """The copy carries quay.io/team, which the kubelet uses for quay.io/team/app: no warning."""
    rules = (
        "  - {name: team, registries: [quay.io/team], secrets: [quay-pull],"
        " credentialSubset: true}\n"
    )
    result = pod_plan(rules, pod(["quay.io/team/app"]))
    assert result.warnings == ()
    assert result.images[0].kubelet_keys == ("quay.io/team",)


def test_copy_specs_know_when_they_are_the_source_itself() -> None:
    assert CopySpec(PS, "s", PS, "s", ("r",), None).is_source_itself
    assert not CopySpec("team-a", "s", PS, "s", ("r",), None).is_source_itself
    assert not CopySpec(PS, "copy", PS, "s", ("r",), None).is_source_itself


def test_every_secret_fixture_decodes_as_intended() -> None:
    """Guard the fixtures: the broken ones must be broken for the reason their name says."""
    problems = {s["metadata"]["name"]: source_of(s).problem for s in SOURCES}
    assert "type is 'Opaque'" in str(problems["opaque"])
    assert "not valid JSON" in str(problems["not-json"])
    assert "'auth' is not valid base64" in str(problems["bad-auth"])
    usable = {name for name, problem in problems.items() if problem is None}
    assert usable == {
        "corp-pull",
        "auth-pull",
        "wild-pull",
        "hub-pull",
        "mirror-pull",
        "quay-pull",
        "team-pull",
        "ecr-pull",
        "legacy-pull",
    }
