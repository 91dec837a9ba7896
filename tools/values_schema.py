"""Generate the chart's ``values.schema.json`` from its annotated ``values.yaml``.

``make generate`` runs it; ``tests/chart/test_values_schema.py`` fails when the committed
schema differs from what it generates (drift), so the schema is never edited by hand.

Why our own generator: cert-manager builds its schema with its ``helm-tool``, which is not
served here; ``@bitnami/readme-generator-for-helm`` (npm) writes a schema with types and
descriptions only, with no ``additionalProperties: false``, patterns, enums or ``$defs``, and
a strict schema is the point (a misspelt key or a ``Bad_Name`` must fail ``helm install``).

The annotations are comments, so ``values.yaml`` stays what users read:

* the comment block right above a key, at the key's indentation, is its **description**
  (a leading ``--``, the helm-docs marker, is dropped); every key needs one;
* ``# @schema {...}`` lines in that block are a YAML flow mapping merged into the key's schema
  (``enum``, ``minimum``, ``type`` for a ``null`` default, ``items`` for lists, ...);
  ``$ref: name`` points at a shared definition in ``DEFS`` (emitted as ``$defs``), and
  ``freeForm: true`` marks an object whose keys are not ours (a Kubernetes type, the policy).

The type comes from the default value; objects get ``additionalProperties: false``. Patterns
are written once, in ``DEFS``, from the DNS-1123 grammars in ``webhook.core.names`` (the
policy's validator uses the same ones), and every pattern is anchored.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.core.names import DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_NAME

__all__ = [
    "DEFS",
    "Annotation",
    "SchemaError",
    "generate",
    "main",
    "read_annotations",
    "render",
]

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "pullsecret-injector"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Schema = dict[str, Any]


def _anchored(regex: str) -> str:
    """A whole-string pattern: JSON Schema patterns match anywhere unless anchored."""
    return f"^(?:{regex})$"


def _optional(regex: str) -> str:
    """The same, also accepting the empty string (a value whose empty default means "derive")."""
    return f"^(?:{regex})?$"


_DURATION = r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+"
_LABEL_KEY = rf"(({DNS1123_SUBDOMAIN.pattern})/)?{LABEL_NAME.pattern}"

DEFS: Mapping[str, Schema] = {
    "dnsLabel": {
        "description": "A DNS-1123 label (namespace names): lower case, digits and '-'.",
        "type": "string",
        "maxLength": 63,
        "pattern": _anchored(DNS1123_LABEL.pattern),
    },
    "dnsSubdomain": {
        "description": "A DNS-1123 subdomain (Secret, ConfigMap and ServiceAccount names).",
        "type": "string",
        "maxLength": 253,
        "pattern": _anchored(DNS1123_SUBDOMAIN.pattern),
    },
    "dnsSubdomainOrEmpty": {
        "description": "A DNS-1123 subdomain, or empty for the chart's derived name.",
        "type": "string",
        "maxLength": 253,
        "pattern": _optional(DNS1123_SUBDOMAIN.pattern),
    },
    "labelKey": {
        "description": "A label key: an optional DNS-subdomain prefix and '/', then a name.",
        "type": "string",
        "maxLength": 317,
        "pattern": _anchored(_LABEL_KEY),
    },
    "configMapKey": {
        "description": "A ConfigMap data key.",
        "type": "string",
        "maxLength": 253,
        "pattern": _anchored(r"[-._a-zA-Z0-9]+"),
    },
    "envVarName": {
        "description": "An environment variable name.",
        "type": "string",
        "pattern": _anchored(r"[-._a-zA-Z][-._a-zA-Z0-9]*"),
    },
    "pemCertificates": {
        "description": "PEM certificates (one or more), or empty.",
        "type": "string",
        "pattern": _optional(r"\s*-----BEGIN CERTIFICATE-----[\s\S]*"),
    },
    "imageDigest": {
        "description": "An image digest (sha256:<64 hex>), or empty.",
        "type": "string",
        "pattern": _optional(r"sha256:[a-f0-9]{64}"),
    },
    "duration": {
        "description": "A Go duration (90s, 2160h, 1h30m).",
        "type": "string",
        "pattern": _anchored(_DURATION),
    },
    "port": {
        "description": "A TCP port.",
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
    },
    "stringMap": {
        "description": "Keys and string values (labels, annotations, a node selector).",
        "type": "object",
        "additionalProperties": {"type": "string"},
    },
    "kubernetesObject": {
        "description": "A Kubernetes API type, passed through as written (the API server "
        "validates it).",
        "type": "object",
    },
    "intOrPercent": {
        "description": "A number of pods, or a percentage such as '50%'.",
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": _anchored(r"[0-9]+%")},
        ],
    },
    "localObjectReference": {
        "description": "A reference to an object in the same namespace, by name.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": {"$ref": "#/$defs/dnsSubdomain", "description": "Its name."}},
    },
    "labelSelectorRequirement": {
        "description": "One matchExpressions entry of a Kubernetes label selector.",
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "operator"],
        "properties": {
            "key": {"$ref": "#/$defs/labelKey", "description": "The label key."},
            "operator": {
                "description": "How the key's value is compared with values.",
                "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
            },
            "values": {
                "description": "Values for In and NotIn; empty for Exists and DoesNotExist.",
                "type": "array",
                "items": {"type": "string"},
            },
        },
    },
    "selectorExpressions": {
        "description": "Extra label selector expressions, ANDed with the chart's own.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "matchExpressions": {
                "description": "matchExpressions entries.",
                "type": "array",
                "items": {"$ref": "#/$defs/labelSelectorRequirement"},
            }
        },
    },
    "matchCondition": {
        "description": "A CEL match condition of the webhook configuration.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "expression"],
        "properties": {
            "name": {
                "description": "Unique name of the condition.",
                "type": "string",
                "maxLength": 63,
                "pattern": _anchored(LABEL_NAME.pattern),
            },
            "expression": {
                "description": "CEL expression; the request is sent only when it is true.",
                "type": "string",
                "minLength": 1,
            },
        },
    },
    "envVar": {
        "description": "A container environment variable.",
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"$ref": "#/$defs/envVarName", "description": "Its name."},
            "value": {"description": "Its value.", "type": "string"},
            "valueFrom": {
                "$ref": "#/$defs/kubernetesObject",
                "description": "Where its value comes from (a Kubernetes EnvVarSource).",
            },
        },
    },
    "probe": {
        "description": "Probe timings; the handler (path and port) is fixed by the chart.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "initialDelaySeconds": {
                "description": "Seconds before the first probe.",
                "type": "integer",
                "minimum": 0,
            },
            "periodSeconds": {
                "description": "Seconds between probes.",
                "type": "integer",
                "minimum": 1,
            },
            "timeoutSeconds": {
                "description": "Seconds a probe may take.",
                "type": "integer",
                "minimum": 1,
            },
            "failureThreshold": {
                "description": "Failures in a row that count as failed.",
                "type": "integer",
                "minimum": 1,
            },
            "successThreshold": {
                "description": "Successes in a row that count as passed.",
                "type": "integer",
                "minimum": 1,
            },
        },
    },
    "podDisruptionBudget": {
        "description": "A PodDisruptionBudget for the component's pods.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "enabled": {"description": "Render the budget.", "type": "boolean"},
            "minAvailable": {
                "$ref": "#/$defs/intOrPercent",
                "description": "Pods that must stay up (default 1 unless maxUnavailable is set).",
            },
            "maxUnavailable": {
                "$ref": "#/$defs/intOrPercent",
                "description": "Pods that may be down at once (instead of minAvailable).",
            },
        },
    },
    "resources": {
        "description": "Container resource requests and limits.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "requests": {"$ref": "#/$defs/kubernetesObject", "description": "Requests."},
            "limits": {"$ref": "#/$defs/kubernetesObject", "description": "Limits."},
            "claims": {
                "description": "Dynamic resource claims.",
                "type": "array",
                "items": {"$ref": "#/$defs/kubernetesObject"},
            },
        },
    },
    "serviceAccount": {
        "description": "The component's ServiceAccount (its token is what the RBAC and the "
        "admission policies restrict).",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {
                "$ref": "#/$defs/dnsSubdomainOrEmpty",
                "description": 'Its name; empty: "<fullname>-<component>".',
            },
            "annotations": {"$ref": "#/$defs/stringMap", "description": "Annotations on it."},
        },
    },
    "issuerRef": {
        "description": "A cert-manager issuer reference.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"description": "The issuer's name.", "type": "string", "minLength": 1},
            "kind": {"description": "Its kind.", "enum": ["Issuer", "ClusterIssuer"]},
            "group": {"description": "Its API group (cert-manager.io).", "type": "string"},
        },
    },
}
"""Shared definitions, emitted as ``$defs`` and referenced with ``$ref: <name>``."""


class SchemaError(ValueError):
    """An annotation problem, located (``webhook.replicaCount: no description``)."""


@dataclass(frozen=True, slots=True)
class Annotation:
    """What the comments above one key say."""

    description: str
    hints: Mapping[str, Any]


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.$-]+):(?: |$)")
_COMMENT = re.compile(r"^(?P<indent> *)#(?P<text>.*)$")


def read_annotations(text: str) -> dict[tuple[str, ...], Annotation]:
    """The annotation of every mapping key in ``text``, by key path.

    Only block mappings are followed (``values.yaml`` has no keys inside list items); a key's
    path comes from the keys above it with less indentation.
    """
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    out: dict[tuple[str, ...], Annotation] = {}
    for number, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(key for _, key in stack), match["key"])
        stack.append((indent, match["key"]))
        out[path] = _annotation(lines, number, indent, ".".join(path))
    return out


def _annotation(lines: Sequence[str], number: int, indent: int, where: str) -> Annotation:
    block: list[str] = []
    for line in reversed(lines[:number]):
        comment = _COMMENT.match(line)
        if not comment or len(comment["indent"]) != indent:
            break
        block.insert(0, comment["text"].removeprefix(" "))
    words: list[str] = []
    hints: dict[str, Any] = {}
    for text in block:
        if text.startswith("@schema"):
            try:
                parsed = yaml.safe_load(text.removeprefix("@schema"))
            except yaml.YAMLError as exc:
                raise SchemaError(f"{where}: unreadable @schema hint: {exc}") from None
            if not isinstance(parsed, dict):
                raise SchemaError(f"{where}: @schema takes a mapping, got {text!r}")
            hints.update(parsed)
        else:
            words.append(text.removeprefix("--").strip())
    return Annotation(" ".join(w for w in words if w).strip(), hints)


def generate(values_text: str) -> Schema:
    """The schema for ``values_text`` (raises ``SchemaError`` naming the first bad key)."""
    values = yaml.safe_load(values_text)
    if not isinstance(values, dict):
        raise SchemaError("(root): values.yaml must be a mapping")
    notes = read_annotations(values_text)
    properties = {
        "global": {
            "description": "Values Helm passes down from a parent chart.",
            "type": "object",
        },
        **_properties(values, (), notes),
    }
    used: set[str] = set()
    _collect_refs(properties, used)
    pending = list(used)
    while pending:  # definitions may refer to others
        name = pending.pop()
        found: set[str] = set()
        _collect_refs(DEFS[name], found)
        for other in found - used:
            used.add(other)
            pending.append(other)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "pullsecret-injector values",
        "description": "Generated from values.yaml by tools/values_schema.py (make generate); "
        "do not edit.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "$defs": {name: DEFS[name] for name in sorted(used)},
    }


def _properties(
    mapping: Mapping[str, Any], path: tuple[str, ...], notes: Mapping[tuple[str, ...], Annotation]
) -> Schema:
    return {key: _schema(value, (*path, key), notes) for key, value in mapping.items()}


def _schema(
    value: Any, path: tuple[str, ...], notes: Mapping[tuple[str, ...], Annotation]
) -> Schema:
    where = ".".join(path)
    note = notes.get(path)
    if note is None or not note.description:
        raise SchemaError(f"{where}: no description (a comment right above the key)")
    hints = _expand(dict(note.hints), where)
    node: Schema = {"description": note.description}
    if "$ref" in hints:
        return {**node, **hints}
    free_form = bool(hints.pop("freeForm", False))
    if "type" not in hints and "enum" not in hints:
        node["type"] = _type_of(value, where)
    kind = hints.get("type", node.get("type"))
    if kind == "object" and not free_form:
        if not isinstance(value, Mapping):
            raise SchemaError(f"{where}: an object needs a mapping default")
        node["additionalProperties"] = False
        node["properties"] = _properties(value, path, notes)
    elif kind == "array" and "items" not in hints:
        raise SchemaError(f"{where}: a list needs an items hint (@schema {{items: ...}})")
    node.update(hints)
    return node


def _type_of(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise SchemaError(f"{where}: a null default needs a type hint (@schema {{type: ...}})")


def _expand(node: Any, where: str) -> Any:
    """``$ref: name`` -> ``$ref: '#/$defs/name'`` (checked), recursively."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref":
                if value not in DEFS:
                    raise SchemaError(f"{where}: unknown $ref {value!r} (see DEFS)")
                out[key] = f"#/$defs/{value}"
            else:
                out[key] = _expand(value, where)
        return out
    if isinstance(node, list):
        return [_expand(item, where) for item in node]
    return node


def _collect_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value.removeprefix("#/$defs/"))
            else:
                _collect_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect_refs(item, found)


def render(schema: Schema) -> str:
    """The file's exact text (stable, so the drift test can compare bytes)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.values_schema", description=__doc__)
    parser.add_argument("--chart", type=Path, default=CHART, help="chart directory")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed schema differs"
    )
    args = parser.parse_args(argv)
    values = (args.chart / "values.yaml").read_text()
    target = args.chart / "values.schema.json"
    try:
        text = render(generate(values))
    except SchemaError as exc:
        print(f"values.yaml: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if target.read_text() != text:
            print(f"{target} is stale: run make generate", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
