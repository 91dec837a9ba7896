"""values.schema.json: generated from values.yaml, strict, and refusing what the API would.

The generator (tools/values_schema.py) is tested on small inputs; the committed schema is
compared with a fresh generation (drift: run `make generate`), walked for strictness, and tried
through `helm template` with values a user could mistype.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, Chart
from tools.values_schema import DEFS, SchemaError, generate, read_annotations, render

SCHEMA_FILE = CHART / "values.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
DEFINITIONS: Mapping[str, Any] = SCHEMA["$defs"]


# -- the generator -------------------------------------------------------------------------


def test_the_committed_schema_is_what_values_yaml_generates() -> None:
    fresh = render(generate((CHART / "values.yaml").read_text()))
    assert SCHEMA_FILE.read_text() == fresh, "values.schema.json is stale: run make generate"


def test_descriptions_come_from_the_comment_above_the_key() -> None:
    text = (
        "# -- Replicas: three survive a drain\n"
        "# and a failure.\n"
        "# @schema {minimum: 0}\n"
        "replicas: 3\n"
    )
    assert read_annotations(text)[("replicas",)].description == (
        "Replicas: three survive a drain and a failure."
    )
    assert generate(text)["properties"]["replicas"] == {
        "description": "Replicas: three survive a drain and a failure.",
        "type": "integer",
        "minimum": 0,
    }


def test_nested_objects_are_closed_and_refs_point_at_shared_definitions() -> None:
    text = (
        "# -- The webhook.\n"
        "webhook:\n"
        "  # -- Its port.\n"
        "  # @schema {$ref: port}\n"
        "  port: 8443\n"
        "  # -- Pod labels.\n"
        "  # @schema {$ref: stringMap}\n"
        "  podLabels: {}\n"
    )
    schema = generate(text)
    webhook = schema["properties"]["webhook"]
    assert webhook["additionalProperties"] is False
    assert webhook["properties"]["port"] == {"description": "Its port.", "$ref": "#/$defs/port"}
    # Only the definitions in use are emitted.
    assert sorted(schema["$defs"]) == ["port", "stringMap"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("replicas: 3\n", "replicas: no description"),
        ("# -- x\na:\n  b: 1\n", "a.b: no description"),
        ("# -- x\n# @schema {$ref: nope}\na: 1\n", "a: unknown $ref 'nope'"),
        ("# -- x\na: null\n", "a: a null default needs a type hint"),
        ("# -- x\na: []\n", "a: a list needs an items hint"),
        ("# -- x\n# @schema [1]\na: 1\n", "a: @schema takes a mapping"),
    ],
    ids=[
        "a key without a comment",
        "a nested key without a comment",
        "a reference to a definition that does not exist",
        "a null default without a type",
        "a list without an items schema",
        "a hint that is not a mapping",
    ],
)
def test_annotation_mistakes_fail_generation_naming_the_key(text: str, error: str) -> None:
    with pytest.raises(SchemaError, match=error.replace("$", r"\$").replace("[", r"\[")):
        generate(text)


# -- the committed schema ------------------------------------------------------------------


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        yield path, node
        for key, child in node.items():
            yield from _nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _nodes(child, f"{path}/{index}")


def test_every_pattern_is_anchored_and_written_once() -> None:
    patterns = [(path, node["pattern"]) for path, node in _nodes(SCHEMA, "") if "pattern" in node]
    assert patterns
    for path, pattern in patterns:
        assert pattern.startswith("^") and pattern.endswith("$"), path  # noqa: PT018
        assert path.startswith("/$defs/"), f"{path}: patterns live in $defs"


def test_no_sub_schema_is_copied() -> None:
    """Shapes used twice are definitions: no object schema with properties repeats."""

    def shape(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: shape(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [shape(v) for v in node]
        return node

    seen: dict[str, str] = {}
    for path, node in _nodes(SCHEMA["properties"], ""):
        if "properties" in node or (
            isinstance(node.get("items"), Mapping) and "properties" in node["items"]
        ):
            key = json.dumps(shape(node), sort_keys=True)
            assert key not in seen, f"{path} repeats {seen.get(key)}"
            seen[key] = path


def test_every_value_is_described() -> None:
    for path, node in _nodes(SCHEMA, ""):
        for key, child in (node.get("properties") or {}).items():
            assert child.get("description"), f"{path}/properties/{key}"


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    return DEFINITIONS[ref.removeprefix("#/$defs/")] if ref else node


FREE_FORM = {"#/$defs/kubernetesObject", "#/$defs/stringMap"}


def test_every_object_is_closed_except_kubernetes_types_maps_and_the_policy() -> None:
    def walk(node: Mapping[str, Any], path: str) -> None:
        if node.get("$ref") in FREE_FORM:
            return
        node = _resolve(node)
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")
        elif node.get("type") == "object":
            assert path in ("(root).global", "(root).policy"), f"{path} is free-form"
        if isinstance(node.get("items"), Mapping):
            walk(node["items"], f"{path}[]")

    walk(SCHEMA, "(root)")


def test_every_key_of_values_yaml_is_in_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def covered(value: Any, node: Mapping[str, Any], path: str) -> None:
        node = _resolve(node)
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} missing from the schema"
                covered(child, node["properties"][key], f"{path}.{key}")

    covered(values, SCHEMA, "(root)")


def test_definitions_are_the_generator_s() -> None:
    assert set(DEFINITIONS) <= set(DEFS)


# -- what it refuses, through helm -----------------------------------------------------------

REFUSED = [
    ("existingPolicyConfigMap", {"existingPolicyConfigMap": "Bad_Name"}),
    ("certificates.secretName", {"certificates": {"secretName": "Bad_Name"}}),
    ("a ServiceAccount name", {"webhook": {"serviceAccount": {"name": "Bad_Name"}}}),
    ("a source namespace", {"rbac": {"extraSourceNamespaces": ["pull.secrets"]}}),
    ("a by-name source namespace", {"rbac": {"sourceSecretsByName": ["Openshift-Config"]}}),
    ("a copy name", {"rbac": {"managedSecretNames": ["Corp_Pull"]}}),
    ("a name with a valid prefix and junk after it", {"existingPolicyConfigMap": "ok/../x"}),
    ("a policy key", {"policyKey": "policy yaml"}),
    ("an image digest", {"image": {"digest": "sha256:abc"}}),
    ("an opt-out label key", {"admissionWebhook": {"optOutLabel": "bad key"}}),
    ("a duration", {"certificates": {"certManager": {"duration": "90 days"}}}),
    ("a budget percentage", {"webhook": {"podDisruptionBudget": {"minAvailable": "x%"}}}),
    ("a probe timing", {"controller": {"readinessProbe": {"periodSeconds": 0}}}),
    ("an unknown probe field", {"controller": {"readinessProbe": {"exec": {}}}}),
    ("an env var without a name", {"webhook": {"extraEnv": [{"value": "x"}]}}),
    ("a port", {"service": {"port": 70000}}),
]  # fmt: skip


@pytest.mark.parametrize(
    "values", [c[1] for c in REFUSED], ids=[f"{c[0]} is checked" for c in REFUSED]
)
def test_invalid_names_and_shapes_are_refused(chart: Chart, values: dict[str, Any]) -> None:
    assert "values don't meet the specifications of the schema" in chart.error(values)


ACCEPTED = [
    ("an existing ConfigMap with a dotted name", {
        "existingPolicyConfigMap": "team.policy",
        "rbac": {"extraSourceNamespaces": ["pull-secrets"], "managedSecretNames": ["corp-pull"]},
    }),
    ("a TLS Secret name", {"certificates": {"secretName": "webhook-tls"}}),
    ("a percentage budget", {"webhook": {"podDisruptionBudget": {"minAvailable": "50%"}}}),
    ("an env var from a field", {
        "webhook": {"extraEnv": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
    }),
]  # fmt: skip


@pytest.mark.parametrize(
    "values", [c[1] for c in ACCEPTED], ids=[f"{c[0]} is accepted" for c in ACCEPTED]
)
def test_valid_values_pass(chart: Chart, values: dict[str, Any]) -> None:
    chart.render(values)
