"""Fuzz ``POST /mutate`` through the real Flask app: whatever arrives, the edge must hold.

Properties checked for every generated request (``_check``):

* the status is never 5xx, and no exception escapes the app (``PROPAGATE_EXCEPTIONS`` is on,
  so one would fail the test) nor is swallowed by the internal-error fallback (its warning
  must never appear: that path means our code raised);
* a body above ``max_body_bytes`` sent as JSON is a 413; at or below it, never a 413;
* a 2xx is a well-formed AdmissionReview v1 response echoing the request's uid; a denial
  carries a status; ``patch`` (only with ``patchType: JSONPatch``) is base64 of a JSONPatch
  that applies to the request's object, keeps existing ``imagePullSecrets`` in order, and
  planning the patched object again gives no patch;
* a 4xx about a review whose uid is readable echoes that uid;
* every log line the app writes is one JSON object.

Inputs: random bytes, truncated JSON of real reviews, valid reviews with any node replaced by
another JSON type (or deleted), huge arrays, deep nesting, unicode (lone surrogates, other
encodings), missing/odd uids, wrong apiVersion/kind, objects of other kinds and operations.

Budgets: the default run takes a few hundred examples (seconds). The dedicated run
``pytest tests/unit/test_fuzz_mutate.py -m slow -s`` draws >= 100,000 examples from all
generators at once and prints the count and the time (see RELIABILITY.md).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from webhook.app import create_app
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.policy import load_policy
from webhook.core.review import parse_body
from webhook.http.admission import INTERNAL_ERROR_WARNING
from webhook.http.backend import StaticBackend
from webhook.logs import JsonFormatter
from webhook.metrics import Metrics
from webhook.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MAX_BODY = 256 * 1024
SLOW_EXAMPLES = 100_000
RECYCLE_APP_EVERY = 2_000
"""Reviews of random kinds grow metric label sets; a fresh app keeps memory flat."""

_DATABASE = DirectoryBasedExampleDatabase(str(REPO / ".hypothesis" / "examples"))
_HEALTH = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
    HealthCheck.filter_too_much,
]
settings.register_profile(
    "fuzz-default",
    max_examples=40,
    deadline=None,
    database=_DATABASE,
    suppress_health_check=_HEALTH,
)
settings.register_profile(
    "fuzz-slow",
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    database=_DATABASE,
    suppress_health_check=_HEALTH,
)
DEFAULT = settings.get_profile("fuzz-default")
SLOW = settings.get_profile("fuzz-slow")

POLICY = """
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull]
    serviceAccounts: {names: [default, "build-*"]}
  - name: strict
    registries: [strict.example.com]
    secrets: [missing-pull]
    onFailure: Deny
  - name: labelled
    registries: ["*.labelled.example.com"]
    secrets: [{name: corp-pull, targetName: labelled-pull}]
    namespaces: {selector: {matchLabels: {pulls: corp}}}
  - name: subset
    registries: [subset.example.com/team]
    secrets: [multi-pull]
    credentialSubset: true
  - name: broken
    registries: [broken.example.com]
    secrets: [broken-pull]
"""

NAMESPACES = {
    "team-a": {"kubernetes.io/metadata.name": "team-a"},
    "team-b": {"kubernetes.io/metadata.name": "team-b", "pulls": "corp"},
}
NAMESPACE_CHOICES = ["team-a", "team-a", "team-b", "team-b", "unseen-ns", "", "kube-system"]
IMAGES = [
    "registry.example.com/team/app:1",
    "registry.example.com/app@sha256:" + "a" * 64,
    "strict.example.com/app",
    "x.labelled.example.com/app:2",
    "subset.example.com/team/app",
    "subset.example.com/other/app",
    "broken.example.com/app",
    "nginx",
    "docker.io/library/nginx:1.27",
    "localhost:5000/app",
    "REGISTRY.EXAMPLE.COM/Upper",
    "registry.example.com:443/app",
    ":bad",
    "",
]
KINDS = ["Pod", "ServiceAccount"]
OTHER_KINDS = ["Deployment", "Secret", "ConfigMap", "Namespace", "Pod ", "pod", "Binding", ""]
OPERATIONS = ["CREATE", "UPDATE", "DELETE", "CONNECT", "create", ""]
SUB_RESOURCES = ["", "ephemeralcontainers", "status", "exec", "binding", "eviction"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json-patch+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]


def _auth(user: str) -> str:
    return base64.b64encode(f"{user}:fake-fuzz-password".encode()).decode()


def _secret(name: str, auths: dict[str, Any], secret_type: str) -> dict[str, Any]:
    payload = json.dumps({"auths": auths}).encode()
    return {
        "metadata": {"namespace": "pull-secrets", "name": name, "resourceVersion": "1"},
        "type": secret_type,
        "data": {".dockerconfigjson": base64.b64encode(payload).decode()},
    }


def _backend() -> StaticBackend:
    store = ClusterStore()
    dockerconfigjson = "kubernetes.io/dockerconfigjson"
    store.put_source(
        source_from_object(
            _secret(
                "corp-pull", {"registry.example.com": {"auth": _auth("corp")}}, dockerconfigjson
            )
        )
    )
    store.put_source(
        source_from_object(
            _secret(
                "multi-pull",
                {
                    "subset.example.com/team": {"auth": _auth("team")},
                    "subset.example.com": {"auth": _auth("all")},
                },
                dockerconfigjson,
            )
        )
    )
    # Not base64 of user:password: never injectable (the core must warn, not inject).
    store.put_source(
        source_from_object(
            _secret("broken-pull", {"broken.example.com": {"auth": "%%%"}}, dockerconfigjson)
        )
    )
    for name, labels in NAMESPACES.items():
        store.put_namespace(name, labels)
    return StaticBackend(load_policy(POLICY), store)


# -- the app under test, shared by examples (hypothesis and function fixtures do not mix) ----


class _LogSink:
    """Stands in for stderr: checks every line is one JSON object, keeps nothing."""

    def __init__(self) -> None:
        self.lines = 0
        self.bad: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.strip():
                continue
            self.lines += 1
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) and len(self.bad) < 5:
                self.bad.append(line[:300])
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class _Harness:
    app: Flask
    client: FlaskClient
    backend: StaticBackend
    served: int = 0


class _State:
    harness: _Harness | None = None
    examples = 0
    """Generated inputs checked (what hypothesis calls examples)."""
    requests = 0
    """POSTs made: examples plus the second pass of each patched review."""


def _new_harness() -> _Harness:
    backend = _backend()
    app = create_app(
        Settings(cluster=False, max_body_bytes=MAX_BODY), backend=backend, metrics=Metrics()
    )
    app.config["PROPAGATE_EXCEPTIONS"] = True  # an exception escaping the view fails the test
    return _Harness(app, app.test_client(), backend)


def _harness() -> _Harness:
    harness = _State.harness
    if harness is None or harness.served >= RECYCLE_APP_EVERY:
        harness = _State.harness = _new_harness()
    return harness


@contextlib.contextmanager
def _json_log_sink() -> Iterator[_LogSink]:
    """Send the ``webhook.*`` loggers through our JSON formatter into a validating sink.

    The records stop there (``propagate`` off): a long run would otherwise pile hundreds of
    thousands of records into pytest's log capture.
    """
    sink = _LogSink()
    handler = logging.StreamHandler(sink)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("webhook")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield sink
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


# -- generators -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    body: bytes
    content_type: str = "application/json"
    what: str = ""


ANY_TEXT = st.text(
    st.characters(exclude_categories=()),  # includes lone surrogates
    max_size=40,
)
SHORT_TEXT = st.one_of(
    st.sampled_from(["", "a", "default", "corp-pull", "pull-secrets", "kube-system", "é", "\x00"]),
    ANY_TEXT,
)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    SHORT_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(SHORT_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)

_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(min_value=-(2**64), max_value=2**64),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": SHORT_TEXT,
    "list": st.lists(JSON_VALUES, max_size=3),
    "dict": st.dictionaries(SHORT_TEXT, JSON_VALUES, max_size=3),
}


def _type_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "dict"


@st.composite
def containers(draw: st.DrawFn, prefix: str = "c") -> list[Any]:
    count = draw(st.integers(0 if prefix != "c" else 1, 4))
    out: list[Any] = []
    for index in range(count):
        container: dict[str, Any] = {"name": draw(st.sampled_from([f"{prefix}{index}", "dup"]))}
        image = draw(
            st.integers(0, 9).flatmap(
                lambda n: st.sampled_from(IMAGES) if n < 7 else st.one_of(SHORT_TEXT, st.none())
            )
        )
        if image is not None:
            container["image"] = image
        out.append(container)
    return out


@st.composite
def pull_secret_list(draw: st.DrawFn) -> Any:
    choice = draw(st.sampled_from(["absent", "null", "list", "list"]))
    if choice == "absent":
        return ...
    if choice == "null":
        return None
    names = draw(
        st.lists(st.sampled_from(["corp-pull", "own-pull", "labelled-pull", "x"]), max_size=3)
    )
    return [{"name": n} for n in names]


@st.composite
def pod_object(draw: st.DrawFn, namespace: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if draw(st.booleans()):
        metadata["name"] = draw(st.sampled_from(["app", "web-1", ""]))
    else:
        metadata["generateName"] = "app-"
    if draw(st.booleans()):
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"containers": draw(containers())}
    if draw(st.booleans()):
        spec["initContainers"] = draw(containers("init"))
    if draw(st.integers(0, 3)) == 0:
        spec["ephemeralContainers"] = draw(containers("debug"))
    secrets = draw(pull_secret_list())
    if secrets is not ...:
        spec["imagePullSecrets"] = secrets
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def service_account_object(draw: st.DrawFn, namespace: str) -> dict[str, Any]:
    name = draw(st.sampled_from(["default", "build-bot", "other", ""]))
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    secrets = draw(pull_secret_list())
    if secrets is not ...:
        account["imagePullSecrets"] = secrets
    return account


@st.composite
def valid_reviews(draw: st.DrawFn) -> dict[str, Any]:
    """AdmissionReviews as the API server sends them for what we are registered for."""
    kind = draw(st.sampled_from(KINDS))
    namespace = draw(st.sampled_from(NAMESPACE_CHOICES))
    operation, sub_resource, old = "CREATE", "", None
    if kind == "Pod":
        obj = draw(pod_object(namespace))
        if draw(st.integers(0, 4)) == 0:
            operation, sub_resource = "UPDATE", "ephemeralcontainers"
            old = json.loads(json.dumps(obj))
            old["spec"].pop("ephemeralContainers", None)
    else:
        obj = draw(service_account_object(namespace))
    request: dict[str, Any] = {
        "uid": draw(st.one_of(st.uuids().map(str), SHORT_TEXT.filter(bool))),
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "requestKind": {"group": "", "version": "v1", "kind": kind},
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": obj,
        "oldObject": old,
        "dryRun": draw(st.booleans()),
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if namespace:
        request["namespace"] = namespace
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _dump(document: object) -> bytes:
    return json.dumps(document).encode()


def _node_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _node_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _node_paths(value, (*path, index))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated_reviews(draw: st.DrawFn) -> Case:
    """A valid review with 1-3 nodes replaced by another JSON type, deleted, or widened."""
    document: Any = draw(valid_reviews())
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_node_paths(document))
        path = paths[draw(st.integers(0, len(paths) - 1))]
        current = _get(document, path)
        action = draw(st.sampled_from(["retype", "retype", "retype", "delete", "extra-key"]))
        if action == "delete" and path:
            parent = _get(document, path[:-1])
            del parent[path[-1]]
            continue
        if action == "extra-key" and isinstance(current, dict):
            current[draw(SHORT_TEXT)] = draw(JSON_VALUES)
            continue
        other = draw(st.sampled_from(sorted(set(_TYPES) - {_type_of(current)})))
        replacement = draw(_TYPES[other])
        if not path:
            document = replacement
        else:
            _get(document, path[:-1])[path[-1]] = replacement
    return Case(_dump(document), what="mutated review")


@st.composite
def random_bytes(draw: st.DrawFn) -> Case:
    body = draw(
        st.one_of(
            st.binary(max_size=512),
            st.sampled_from([b"", b"null", b"[]", b"{}", b"0", b'""', b"NaN", b"-Infinity"]),
            ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
        )
    )
    return Case(body, draw(st.sampled_from(CONTENT_TYPES)), "random bytes")


@st.composite
def truncated_reviews(draw: st.DrawFn) -> Case:
    body = _dump(draw(valid_reviews()))
    cut = draw(st.integers(0, len(body) - 1))
    tail = draw(st.sampled_from([b"", b"", b"}", b"]", b'"', b"\\", b"\xff", b",}"]))
    return Case(body[:cut] + tail, what="truncated review")


@st.composite
def huge_arrays(draw: st.DrawFn) -> Case:
    """Thousands of containers / pull secrets / anything: both sides of the size cap."""
    document = draw(valid_reviews())
    request = document["request"]
    size = draw(st.sampled_from([1_000, 3_000, 10_000, 60_000]))
    where = draw(st.sampled_from(["containers", "imagePullSecrets", "anywhere", "top"]))
    obj = request["object"]
    if where == "containers" and request["kind"]["kind"] == "Pod":
        image = draw(st.sampled_from(IMAGES))
        obj["spec"]["containers"] = [{"name": f"c{i}", "image": image} for i in range(size)]
    elif where == "imagePullSecrets":
        entry = draw(st.sampled_from([{"name": "own"}, {"name": "corp-pull"}, 1, None]))
        target = obj["spec"] if request["kind"]["kind"] == "Pod" else obj
        target["imagePullSecrets"] = [entry] * size
    elif where == "top":
        return Case(_dump([document] * max(1, size // 100)), what="huge top-level array")
    else:
        paths = list(_node_paths(document))
        path = paths[draw(st.integers(1, len(paths) - 1))]
        _get(document, path[:-1])[path[-1]] = [draw(JSON_SCALARS)] * size
    return Case(_dump(document), what=f"huge array ({where}, {size})")


_PLACEHOLDER = "\x00deep-nesting-here\x00"


@st.composite
def deep_nesting(draw: st.DrawFn) -> Case:
    depth = draw(st.sampled_from([10, 100, 500, 900, 990, 1_000, 5_000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"spec":', "}")]))
    nested = opener * depth + draw(st.sampled_from(["1", "null", '"x"', "[]"])) + closer * depth
    if draw(st.booleans()):
        return Case(nested.encode(), what=f"deep nesting at the top ({depth})")
    document = draw(valid_reviews())
    paths = list(_node_paths(document))
    path = paths[draw(st.integers(1, len(paths) - 1))]
    _get(document, path[:-1])[path[-1]] = _PLACEHOLDER
    text = json.dumps(document).replace(json.dumps(_PLACEHOLDER), nested, 1)
    return Case(text.encode(), what=f"deep nesting inside a review ({depth})")


@st.composite
def unicode_reviews(draw: st.DrawFn) -> Case:
    """Unicode everywhere a string goes, lone surrogates included; other encodings too."""
    document = draw(valid_reviews())
    strings = [p for p in _node_paths(document) if p and isinstance(_get(document, p), str)]
    for path in draw(st.lists(st.sampled_from(strings), max_size=5)) if strings else []:
        _get(document, path[:-1])[path[-1]] = draw(ANY_TEXT)
    encoding = draw(st.sampled_from(["ascii-escapes", "utf-8", "utf-8-sig", "utf-16", "utf-32"]))
    if encoding == "ascii-escapes":
        body = json.dumps(document).encode()
    else:
        body = json.dumps(document, ensure_ascii=False).encode(encoding, "surrogatepass")
    return Case(body, what=f"unicode review ({encoding})")


@st.composite
def uid_variants(draw: st.DrawFn) -> Case:
    document = draw(valid_reviews())
    request = document["request"]
    variant = draw(st.sampled_from(["missing", "null", "empty", "number", "list", "huge"]))
    if variant == "missing":
        del request["uid"]
    else:
        request["uid"] = {
            "null": None,
            "empty": "",
            "number": 7,
            "list": ["uid"],
            "huge": "u" * 100_000,
        }[variant]
    return Case(_dump(document), what=f"uid {variant}")


@st.composite
def envelope_variants(draw: st.DrawFn) -> Case:
    document = draw(valid_reviews())
    versions = ["admission.k8s.io/v1beta1", "admission.k8s.io/v2", "v1", "", None, 1, []]
    kinds = ["AdmissionReviewList", "admissionreview", "Pod", "", None, {}]
    if draw(st.booleans()):
        document["apiVersion"] = draw(st.sampled_from(versions))
    else:
        document["kind"] = draw(st.sampled_from(kinds))
    if draw(st.booleans()):
        del document[draw(st.sampled_from(["apiVersion", "kind", "request"]))]
    return Case(_dump(document), what="wrong apiVersion/kind")


@st.composite
def other_kinds(draw: st.DrawFn) -> Case:
    """Objects and operations we are not registered for (or a mislabelled Pod)."""
    document = draw(valid_reviews())
    request = document["request"]
    request["kind"] = {
        "group": draw(st.sampled_from(["", "apps", "batch"])),
        "version": "v1",
        "kind": draw(st.one_of(st.sampled_from(OTHER_KINDS + KINDS), SHORT_TEXT)),
    }
    request["operation"] = draw(st.one_of(st.sampled_from(OPERATIONS), SHORT_TEXT))
    sub_resource = draw(st.sampled_from(SUB_RESOURCES))
    if sub_resource:
        request["subResource"] = sub_resource
    if draw(st.booleans()):
        request["object"] = draw(
            st.one_of(
                st.just({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}}),
                st.just({"apiVersion": "v1", "kind": "Secret", "data": {"x": "eQ=="}}),
                st.dictionaries(SHORT_TEXT, JSON_VALUES, max_size=4),
                st.none(),
            )
        )
    if draw(st.booleans()):
        request["oldObject"] = draw(st.one_of(st.none(), st.just(request["object"])))
    return Case(_dump(document), what="other kind/operation")


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    return Case(_dump(draw(valid_reviews())), what="valid review")


GENERATORS: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "valid": valid_cases,
    "random_bytes": random_bytes,
    "truncated": truncated_reviews,
    "mutated": mutated_reviews,
    "huge_arrays": huge_arrays,
    "deep_nesting": deep_nesting,
    "unicode": unicode_reviews,
    "uid": uid_variants,
    "envelope": envelope_variants,
    "other_kinds": other_kinds,
}
EVERYTHING = st.one_of(
    *(GENERATORS[name]() for name in GENERATORS if name != "huge_arrays"),
    # Huge arrays cost milliseconds each; keep them a small share of the long run.
    st.integers(0, 9).flatmap(lambda n: huge_arrays() if n == 0 else mutated_reviews()),
)


# -- the oracle -----------------------------------------------------------------------------------


def _parse(body: bytes) -> tuple[bool, Any]:
    """(parsed, document) the way the webhook parses: its codec on the raw bytes."""
    try:
        return True, parse_body(body)
    except ValueError:
        return False, None


def _readable_uid(document: Any) -> str | None:
    if isinstance(document, dict):
        request = document.get("request")
        if isinstance(request, dict) and isinstance(request.get("uid"), str):
            return str(request["uid"])
    return None


def _post(harness: _Harness, case: Case) -> Any:
    harness.served += 1
    _State.requests += 1
    return harness.client.post("/mutate", data=case.body, content_type=case.content_type)


def _check(case: Case) -> None:
    _State.examples += 1
    harness = _harness()
    response = _post(harness, case)
    status = response.status_code
    note = f"{case.what}: status {status}, body {response.get_data()[:300]!r}"
    assert status < 500, note
    is_json_type = case.content_type.split(";")[0].strip().lower() == "application/json"
    if is_json_type and len(case.body) > MAX_BODY:
        assert status == 413, note
        return
    assert status != 413, note
    if not is_json_type:
        assert status == 415, note
        return
    parsed, document = _parse(case.body)
    answer = response.get_json(silent=True)
    assert isinstance(answer, dict), note
    uid = _readable_uid(document) if parsed else None
    if status >= 400:
        assert status == 400, note
        assert isinstance(answer.get("error"), str), note
        if uid is not None:
            assert answer.get("uid") == uid, note
        return
    assert status == 200, note
    _check_review_response(harness, document, answer, note)


def _check_review_response(harness: _Harness, document: Any, answer: Any, note: str) -> None:
    assert answer.get("apiVersion") == "admission.k8s.io/v1", note
    assert answer.get("kind") == "AdmissionReview", note
    reply = answer.get("response")
    assert isinstance(reply, dict), note
    request = document["request"]
    assert reply.get("uid") == request["uid"], note
    assert isinstance(reply.get("allowed"), bool), note
    warnings = reply.get("warnings", [])
    assert isinstance(warnings, list), note
    assert all(isinstance(w, str) for w in warnings), note
    assert not any(w.startswith(INTERNAL_ERROR_WARNING) for w in warnings), (
        f"the internal-error fallback fired (our code raised): {note}"
    )
    if not reply["allowed"]:
        assert "patch" not in reply, note
        assert isinstance(reply.get("status", {}).get("code"), int), note
        assert isinstance(reply["status"].get("message"), str), note
        return
    if "patch" not in reply:
        assert "patchType" not in reply, note
        return
    assert reply.get("patchType") == "JSONPatch", note
    try:
        ops = json.loads(base64.b64decode(reply["patch"], validate=True))
    except (binascii.Error, ValueError) as exc:
        raise AssertionError(f"patch is not base64 JSON ({exc}): {note}") from None
    assert isinstance(ops, list), note
    assert ops, f"an empty patch must be omitted: {note}"
    obj = request.get("object") or {}
    before = _pull_secret_names(obj, request)
    patched = jsonpatch.apply_patch(obj, ops, in_place=True)
    after = _pull_secret_names(patched, request)
    if isinstance(before, list):
        assert after[: len(before)] == before, f"existing imagePullSecrets changed: {note}"
    _check_idempotent(harness, document, patched, note)


def _pull_secret_names(obj: Any, request: Any) -> Any:
    holder = obj.get("spec") if request["kind"]["kind"] == "Pod" else obj
    value = holder.get("imagePullSecrets") if isinstance(holder, dict) else None
    return json.loads(json.dumps(value)) if isinstance(value, list) else value


def _check_idempotent(harness: _Harness, document: Any, patched: Any, note: str) -> None:
    """Planning the patched object again must add nothing."""
    document["request"]["object"] = patched
    document["request"]["uid"] = "idempotence-check"
    try:
        body = json.dumps(document).encode()
    except RecursionError:
        return  # nesting the client-side encoder cannot re-serialise; the server coped
    again = _post(harness, Case(body))
    assert again.status_code == 200, note
    assert "patch" not in again.get_json()["response"], f"a second pass patched again: {note}"


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log_sink() -> Iterator[_LogSink]:
    with _json_log_sink() as sink:
        yield sink
    assert not sink.bad, f"log lines that are not JSON objects: {sink.bad}"


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_mutate_never_fails_on_generated_input(generator: str, log_sink: _LogSink) -> None:
    @DEFAULT
    @given(case=GENERATORS[generator]())
    def run(case: Case) -> None:
        _check(case)

    run()
    assert not log_sink.bad, log_sink.bad


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"x" * (MAX_BODY + 1), "application/json", 413, id="one byte over the cap"),
        pytest.param(b"[" * 100_000, "application/json", 400, id="unclosed deep nesting"),
        pytest.param(b'{"a": 1' + b"0" * 5000 + b"}", "application/json", 400, id="huge int"),
        pytest.param(b"\xff\xfe\x00", "application/json", 400, id="invalid utf-16"),
    ],
)
def test_mutate_edge_cases_found_while_fuzzing(
    body: bytes, content_type: str, status: int, log_sink: _LogSink
) -> None:
    response = _post(_harness(), Case(body, content_type))
    assert response.status_code == status


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_mutate_survives_a_hundred_thousand_generated_requests(log_sink: _LogSink) -> None:
    @SLOW
    @given(case=EVERYTHING)
    def run(case: Case) -> None:
        _check(case)

    examples, requests = _State.examples, _State.requests
    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    examples, requests = _State.examples - examples, _State.requests - requests
    print(
        f"\nfuzz /mutate: {examples} examples checked, {requests} requests posted, "
        f"in {elapsed:.1f}s ({requests / elapsed:.0f} req/s); {log_sink.lines} JSON log lines"
    )
    assert examples >= SLOW_EXAMPLES
    assert not log_sink.bad, log_sink.bad
