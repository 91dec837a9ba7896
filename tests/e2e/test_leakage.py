"""Credentials stay contained: randomised multi-namespace scenarios, decoys, logs, RBAC.

* Copies land exactly in the namespaces the policy reaches — checked against an independent
  oracle of the policy's namespace rules, with the webhook and the sync controller both at
  work on randomised namespace labels and rule selectors. The seed is printed; set
  ``LEAK_SEED`` to replay one.
* Nothing in an admitted object chooses a source: decoy secrets (one with a policy secret's
  very name) in another namespace, pods referencing them, annotations and labels naming
  them — only policy-named secrets from the policy's source namespace are ever copied.
* No credential byte (user names, passwords, ``auth`` values, the raw base64 data) appears
  in the webhook's or the controller's log, in their metrics, in Events or warnings, or in
  this test's own output.
* The chart's RBAC, rendered with helm and applied alone, does not let either ServiceAccount
  list Secrets cluster-wide.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    INJECT_LABEL,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pod,
    secret_names,
    wait_until,
)
from tools.controlplane import ControlPlane

Policy = Callable[[str], str]
MANAGED_BY = "app.kubernetes.io/managed-by"
BASE_SEED = int(os.environ.get("LEAK_SEED") or random.SystemRandom().randrange(10**6))
SCENARIOS = 2


@pytest.fixture(scope="module")
def controller(
    control_plane: ControlPlane, webhook: WebhookServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    workdir = tmp_path_factory.mktemp("leak-controller")
    with ControllerProcess(control_plane, workdir, "leak").running() as process:
        yield process


# -- made-up credentials, and every form they could leak in ---------------------------------


@dataclass
class Credentials:
    """Made-up pull credentials; ``forms`` are the strings that must never be seen."""

    forms: set[str] = field(default_factory=set)

    def secret(
        self, name: str, namespace: str, registries: list[str], secret_type: str = ""
    ) -> dict[str, Any]:
        auths = {}
        for registry in registries:
            user = f"leakuser{uuid.uuid4().hex[:10]}"
            password = f"leakpass{uuid.uuid4().hex[:16]}"
            auth = base64.b64encode(f"{user}:{password}".encode()).decode()
            auths[registry] = {"auth": auth, "username": user, "password": password}
            self.forms |= {user, password, auth}
        payload = json.dumps({"auths": auths}).encode()
        data = base64.b64encode(payload).decode()
        self.forms |= {data, payload.decode()}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": secret_type or "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": data},
        }

    def leaks(self, text: str) -> list[str]:
        return sorted(form[:12] + "..." for form in self.forms if form in text)


# -- a random scenario and its oracle --------------------------------------------------------------


@dataclass
class Rule:
    name: str
    registry: str
    secret: str
    target: str
    include: list[str]
    exclude: list[str]
    selector: dict[str, Any] | None

    def yaml(self) -> str:
        ref: dict[str, Any] = {"name": self.secret}
        if self.target != self.secret:
            ref["targetName"] = self.target
        scope: dict[str, Any] = {"include": self.include}
        if self.exclude:
            scope["exclude"] = self.exclude
        if self.selector:
            scope["selector"] = self.selector
        body = {
            "name": self.name,
            "registries": [self.registry],
            "secrets": [ref],
            "namespaces": scope,
        }
        return "  - " + json.dumps(body) + "\n"

    def reaches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """The oracle, written from the policy docs, not from the product's code."""
        if any(fnmatch.fnmatchcase(namespace, p) for p in self.exclude):
            return False
        if not any(fnmatch.fnmatchcase(namespace, p) for p in self.include):
            return False
        if not self.selector:
            return True
        for key, value in self.selector.get("matchLabels", {}).items():
            if labels.get(key) != value:
                return False
        for expr in self.selector.get("matchExpressions", []):
            key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
            present = key in labels
            if operator == "In" and not (present and labels[key] in values):
                return False
            if operator == "NotIn" and present and labels[key] in values:
                return False
            if operator == "Exists" and not present:
                return False
            if operator == "DoesNotExist" and present:
                return False
        return True


@dataclass
class Scenario:
    seed: int
    prefix: str
    namespaces: dict[str, dict[str, str]]
    rules: list[Rule]

    @classmethod
    def generate(cls, seed: int) -> Scenario:
        rng = random.Random(seed)
        prefix = f"lk{seed}{uuid.uuid4().hex[:4]}"  # unique per run; the shape is the seed's
        words = ["alpha", "beta", "prod", "dev"]
        namespaces: dict[str, dict[str, str]] = {}
        for index in range(8):
            labels: dict[str, str] = {}
            if rng.random() < 0.7:
                labels["team"] = rng.choice(["a", "b", "c"])
            if rng.random() < 0.6:
                labels["env"] = rng.choice(["prod", "dev"])
            if rng.random() < 0.75:
                labels[INJECT_LABEL] = "true"
            namespaces[f"{prefix}-{index}-{rng.choice(words)}"] = labels
        rules = []
        for index in range(3):
            include = rng.choice(
                [
                    [f"{prefix}-*"],
                    [f"{prefix}-*-{rng.choice(words)}"],
                    [f"{prefix}-{rng.randrange(8)}-*", f"{prefix}-{rng.randrange(8)}-*"],
                ]
            )
            exclude = [f"{prefix}-{rng.randrange(8)}-*"] if rng.random() < 0.4 else []
            selector = rng.choice(
                [
                    None,
                    {"matchLabels": {"team": rng.choice(["a", "b", "c"])}},
                    {
                        "matchExpressions": [
                            {
                                "key": "env",
                                "operator": rng.choice(["In", "NotIn"]),
                                "values": [rng.choice(["prod", "dev"])],
                            }
                        ]
                    },
                    {
                        "matchExpressions": [
                            {"key": rng.choice(["env", "team"]), "operator": op}
                            for op in [rng.choice(["Exists", "DoesNotExist"])]
                        ]
                    },
                ]
            )
            secret = f"{prefix}-s{index}"
            target = f"{prefix}-t{index}" if index == 2 else secret
            rules.append(
                Rule(
                    f"r{index}",
                    f"r{index}.{prefix}.example.com",
                    secret,
                    target,
                    include,
                    exclude,
                    selector,
                )
            )
        return cls(seed, prefix, namespaces, rules)

    @property
    def decoy_namespace(self) -> str:
        return f"{self.prefix}x-decoy"  # outside every include glob ("<prefix>-*")

    def policy_yaml(self) -> str:
        return "rules:\n" + "".join(rule.yaml() for rule in self.rules)

    def allowed(self) -> set[tuple[str, str]]:
        """(namespace, copy name) pairs the policy reaches."""
        return {
            (namespace, rule.target)
            for namespace, labels in self.namespaces.items()
            for rule in self.rules
            if rule.reaches(namespace, {"kubernetes.io/metadata.name": namespace, **labels})
        }

    def describe(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "namespaces": self.namespaces,
                "rules": [rule.yaml().strip() for rule in self.rules],
            },
            indent=1,
        )


def managed_copies(api: Api, namespaces: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for namespace in namespaces:
        for item in api.read(api.core.list_namespaced_secret, namespace)["items"]:
            if item.get("type") == "kubernetes.io/service-account-token":
                continue
            out[(namespace, item["metadata"]["name"])] = item
    return out


def scan_everything(
    credentials: Credentials,
    webhook: WebhookServer,
    controller: ControllerProcess,
    api: Api,
    namespaces: list[str],
    extra: str,
) -> None:
    """Every captured byte we have: logs, metrics, Events, warnings and our own output."""
    sources = {
        "webhook log": webhook.log_path.read_text(errors="replace"),
        "controller log": controller.log_path.read_text(errors="replace"),
        "webhook metrics": webhook.metrics(),
        "controller metrics": _controller_metrics(controller),
        "events": json.dumps(
            [api.read(api.core.list_namespaced_event, ns)["items"] for ns in namespaces]
        ),
        "warnings and test output": extra,
    }
    found = {where: credentials.leaks(text) for where, text in sources.items()}
    assert not any(found.values()), f"credential bytes leaked: {found}"
    assert len(credentials.forms) >= 20


def _controller_metrics(controller: ControllerProcess) -> str:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(
        f"http://127.0.0.1:{controller.metrics_port}/metrics", timeout=5
    ) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("offset", range(SCENARIOS), ids=lambda n: f"scenario {n}")
def test_copies_land_exactly_where_the_policy_reaches_and_nothing_leaks(
    api: Api,
    control_plane: ControlPlane,
    webhook: WebhookServer,
    controller: ControllerProcess,
    policy: Policy,
    capsys: pytest.CaptureFixture[str],
    offset: int,
) -> None:
    scenario = Scenario.generate(BASE_SEED + offset)
    print(f"\nleakage scenario seed={scenario.seed} (replay: LEAK_SEED={BASE_SEED})")
    print(scenario.describe())
    credentials = Credentials()
    sources = {}
    for rule in scenario.rules:
        body = credentials.secret(rule.secret, SOURCE_NAMESPACE, [rule.registry])
        api.apply_secret(body)
        sources[rule.target] = body["data"]
    # Decoys: in another namespace, one with a policy secret's very name, for every registry.
    decoy = scenario.decoy_namespace
    api.ensure_namespace(decoy)
    registries = [rule.registry for rule in scenario.rules] + ["decoy.example.com"]
    decoy_names = ["decoy-pull", scenario.rules[0].secret]
    decoy_data = []
    for name in decoy_names:
        body = credentials.secret(name, decoy, registries)
        api.apply_secret(body)
        decoy_data.append(body["data"])
    names = list(scenario.namespaces)
    warnings_seen: list[str] = []
    try:
        for namespace, labels in scenario.namespaces.items():
            api.ensure_namespace(namespace, labels)
        policy(scenario.policy_yaml())
        allowed = scenario.allowed()
        images = [f"{rule.registry}/app:1" for rule in scenario.rules] + ["decoy.example.com/x"]
        for namespace in names:
            control_plane.wait_for_service_account(namespace)
            body = pod("tempt", *images, pull_secrets=["decoy-pull"])
            body["metadata"]["annotations"] = {
                "pullsecret-injector.io/source": f"{decoy}/decoy-pull",
                "pullsecret-injector.io/source-namespace": decoy,
                "pullsecret-injector.io/secret": "decoy-pull",
            }
            body["metadata"]["labels"] = {"pullsecret-injector.io/secret": "decoy-pull"}
            stored, warnings = api.create_pod(namespace, body)
            warnings_seen.extend(warnings)
            injected = INJECT_LABEL in scenario.namespaces[namespace]
            expected = sorted(t for ns, t in allowed if ns == namespace) if injected else []
            got = secret_names(stored)
            assert got[0] == "decoy-pull", "the pod's own reference is kept, first"
            assert sorted(got[1:]) == expected, (namespace, got, expected)

        def converged() -> bool:
            return allowed <= set(managed_copies(api, names))

        wait_until(converged, "the controller to provision every allowed copy", timeout=30)
        assert controller.ready()
        time.sleep(1.0)  # a last chance for anything misplaced to appear
        copies = managed_copies(api, names)
        assert set(copies) == allowed, {
            "unexpected": sorted(set(copies) - allowed),
            "missing": sorted(allowed - set(copies)),
        }
        for (namespace, name), secret in copies.items():
            assert secret["data"] == sources[name], f"{namespace}/{name} has foreign content"
            assert secret["data"] not in decoy_data
            assert secret["metadata"]["labels"][MANAGED_BY] == "pullsecret-injector"
            source = secret["metadata"]["annotations"]["pullsecret-injector.io/source"]
            assert source.startswith(f"{SOURCE_NAMESPACE}/"), source
        for name in decoy_names:
            leaked = [ns for ns in names if (ns, name) in copies and name not in sources]
            assert not leaked, f"decoy {name} was copied into {leaked}"
        output = capsys.readouterr()
        print(output.out, end="")
        scan_everything(
            credentials,
            webhook,
            controller,
            api,
            [*names, decoy, SOURCE_NAMESPACE],
            "\n".join(warnings_seen) + output.out + output.err,
        )
        print(f"{len(allowed)} copies in {len(names)} namespaces, exactly as the policy says")
    finally:
        for namespace in [*names, decoy]:
            try:
                api.core.delete_namespace(namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise


# -- RBAC of the chart -------------------------------------------------------------------------


RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def can_i(plane: ControlPlane, subject: str, *args: str) -> bool:
    result = plane.kubectl("auth", "can-i", *args, f"--as={subject}")
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_the_charts_service_accounts_cannot_list_secrets_cluster_wide(
    api: Api, control_plane: ControlPlane, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    release, namespace, source = f"rbac{tag}", f"rbac-{tag}", f"rbac-src-{tag}"
    values = {
        "policy": {
            "defaults": {"sourceNamespace": source},
            "rules": [{"name": "corp", "registries": ["r.example.com"], "secrets": ["corp-pull"]}],
        }
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    rendered = subprocess.run(
        [
            str(control_plane.bin_dir / "helm"),
            "template",
            release,
            str(Path(__file__).resolve().parents[2] / "charts" / "pullsecret-injector"),
            "--namespace",
            namespace,
            "-f",
            str(tmp_path / "values.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] in RBAC_KINDS]
    accounts = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    assert len(accounts) == 2, accounts
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    api.ensure_namespace(namespace)
    api.ensure_namespace(source)
    try:
        applied = control_plane.kubectl("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        for account in accounts:
            subject = f"system:serviceaccount:{namespace}:{account}"
            assert not can_i(control_plane, subject, "list", "secrets", "-A"), account
            assert not can_i(control_plane, subject, "watch", "secrets", "-A"), account
            assert not can_i(control_plane, subject, "get", "secrets", "-A"), account
            assert not can_i(control_plane, subject, "list", "secrets", "-n", "kube-system")
            assert not can_i(control_plane, subject, "list", "secrets", "-n", namespace)
            # Not vacuous: the grants the product needs are there (the source, the copies).
            assert can_i(control_plane, subject, "get", "secrets/corp-pull", "-n", source)
            assert can_i(control_plane, subject, "get", "secrets/corp-pull", "-n", "default")
            assert not can_i(control_plane, subject, "get", "secrets/other", "-n", "default")
            # And a real request with the account's own token is refused the same way.
            token = api.core.create_namespaced_service_account_token(
                account, namespace, {"spec": {"expirationSeconds": 600}}
            ).status.token
            as_account = Api(control_plane, control_plane.kubeconfig_for_token(token))
            try:
                with pytest.raises(ApiException) as refused:
                    as_account.core.list_secret_for_all_namespaces(_preload_content=False)
                assert refused.value.status == 403
                by_name = as_account.core.list_secret_for_all_namespaces(
                    field_selector="metadata.name=corp-pull", _preload_content=False
                )
                by_name.read()  # return the connection to the pool, so close() closes it
                assert by_name.status == 200, "the copy watch the product uses is allowed"
            finally:
                as_account.api.close()
    finally:
        control_plane.kubectl("delete", "-f", str(manifest), "--ignore-not-found", "--wait=false")
        api.core.delete_namespace(namespace)
        api.core.delete_namespace(source)
