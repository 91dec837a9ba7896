"""Every valid policy the repository holds as an example or a fixture, found rather than listed.

The chart's RBAC is compared with ``validate-policy --output json`` for each of them
(``test_policy_facts.py``). A hand-kept list would fall behind the day someone adds a test with
a new policy shape, so the policies are *collected*:

* the README's policy examples (the same blocks ``tests/unit/test_readme.py`` checks) and its
  chart-values example;
* the chart's own value files (``values.yaml``, ``values-openshift.yaml``) and ``examples/``;
* every module of ``tests/unit`` and ``tests/e2e`` and ``tools/demo.py``, imported and walked:
  module globals, dataclass tables, ``pytest.param`` values and ``parametrize`` arguments. A
  string is tried as it is and after each policy header the same module defines (fixtures are
  often ``HEADER + rules``); a mapping is tried when its keys are policy keys.

Whatever ``load_policy`` accepts is a fixture; everything else (the invalid-policy tables) is
dropped. Duplicates are folded by their parsed document.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from webhook.core.policy import API_VERSION, FIELDS, KIND, parse_policy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pullsecret-injector"
MODULE_DIRS = ("tests/unit", "tests/e2e")
EXTRA_MODULES = ("tools.demo",)
_MAX_DEPTH = 8


@dataclass(frozen=True)
class PolicyFixture:
    origin: str
    """Where it was found (module or file), for the test id."""
    document: dict[str, Any]
    """The policy as a decoded YAML document."""


def collect() -> list[PolicyFixture]:
    """Every valid policy fixture, each parsed document once (first origin wins)."""
    seen: dict[str, PolicyFixture] = {}
    for origin, document in _candidates():
        if not _valid(document):
            continue
        key = json.dumps(document, sort_keys=True, default=str)
        seen.setdefault(key, PolicyFixture(origin, document))
    return list(seen.values())


def _valid(document: Any) -> bool:
    policy, errors = parse_policy(document)
    return policy is not None and not errors


# libyaml when present: thousands of candidate texts are parsed per collection.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def _candidates() -> Iterator[tuple[str, Any]]:
    yield from _readme()
    for path in (CHART / "values.yaml", CHART / "values-openshift.yaml"):
        values = yaml.safe_load(path.read_text())
        yield path.name, _with_header(values["policy"])
    for path in sorted((REPO / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            yield str(path.relative_to(REPO)), document
    for module in _modules():
        yield from _walk_module(module)
    demo = importlib.import_module("tools.demo")
    yield "tools.demo", _with_header(demo.policy("127.0.0.1:5000"))  # built per run


def _readme() -> Iterator[tuple[str, Any]]:
    readme = (REPO / "README.md").read_text()
    for index, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)):
        document = yaml.safe_load(block)
        if "kind: PullSecretPolicy" in block:
            yield f"README block {index}", document
        elif isinstance(document, Mapping) and isinstance(document.get("policy"), Mapping):
            yield f"README block {index} (chart values)", _with_header(document["policy"])


def _modules() -> Iterator[ModuleType]:
    for directory in MODULE_DIRS:
        for path in sorted((REPO / directory).glob("*.py")):
            if path.name == "__init__.py":
                continue
            yield importlib.import_module(f"{directory.replace('/', '.')}.{path.stem}")
    for name in EXTRA_MODULES:
        yield importlib.import_module(name)


def _walk_module(module: ModuleType) -> Iterator[tuple[str, Any]]:
    values = [*_values(vars(module), set(), 0), *_literals(module)]
    strings = {v for v in values if isinstance(v, str)}
    headers = sorted(s for s in strings if f"kind: {KIND}" in s)
    for value in values:
        if _looks_like_policy(value):
            yield module.__name__, _with_header(value)
    for text in sorted(strings):
        if f"kind: {KIND}" in text:
            texts = [text]
        elif _FRAGMENT.match(text):
            texts = [h + text for h in headers]
        else:
            continue
        for candidate in texts:
            try:
                yield module.__name__, _load(candidate)
            except yaml.YAMLError:
                continue


# What follows a header: list items of `rules:` or more top-level policy keys.
_FRAGMENT = re.compile(r"^(\s+- |(" + "|".join(FIELDS["policy"]) + r"):)")


def _literals(module: ModuleType) -> Iterator[str]:
    """String literals of the module's source, for policies written inline in a test body."""
    source = Path(module.__file__ or "").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _values(node: Any, seen: set[int], depth: int) -> Iterator[Any]:
    """Strings and mappings reachable from ``node``: containers, dataclasses, pytest marks."""
    if depth > _MAX_DEPTH or id(node) in seen:
        return
    if isinstance(node, str):
        yield node
        return
    seen.add(id(node))
    if isinstance(node, Mapping):
        yield node
        children: list[Any] = list(node.values())
    elif isinstance(node, list | tuple | set | frozenset):
        children = list(node)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        children = [getattr(node, f.name) for f in dataclasses.fields(node)]
    elif type(node).__name__ == "ParameterSet":  # pytest.param(...)
        children = list(node.values)
    elif type(node).__name__ == "Mark":  # @pytest.mark.parametrize(...)
        children = list(node.args)
    elif callable(node) and hasattr(node, "pytestmark"):
        children = list(node.pytestmark)
    else:
        return
    for child in children:
        yield from _values(child, seen, depth + 1)


def _looks_like_policy(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and "rules" in value
        and all(isinstance(k, str) and k in FIELDS["policy"] for k in value)
    )


def _with_header(policy: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, **policy}
