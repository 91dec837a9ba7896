"""Render the Helm chart with the real ``helm`` binary and hand the objects to the tests.

``helm`` is the one built by ``tools/build-control-plane.sh`` (or found in
``$PULLSECRET_BIN_DIR``). Without it the chart tests *fail*: a chart that was never rendered is
not a chart that passed. Nothing here talks to a cluster: ``helm template`` renders offline
(``lookup`` returns nothing, as in a fresh install).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pullsecret-injector"
OPENSHIFT_VALUES = CHART / "values-openshift.yaml"
RELEASE = "psi"
NAMESPACE = "psi-system"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a template that emits a key twice is a bug."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]


def _find_bin_dir() -> Path:
    configured = os.environ.get("PULLSECRET_BIN_DIR")
    if configured:
        return Path(configured)
    script = REPO / "tools" / "build-control-plane.sh"
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, timeout=3600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"tools/build-control-plane.sh failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    helm = _find_bin_dir() / "helm"
    if not os.access(helm, os.X_OK):
        pytest.fail(f"helm not found at {helm} (set PULLSECRET_BIN_DIR or build the tools)")
    return helm


@dataclass(frozen=True)
class RenderResult:
    returncode: int
    objects: list[dict[str, Any]]
    stderr: str


@dataclass(frozen=True)
class Chart:
    """``helm template`` with values given as a dict (written to a file, not ``--set``)."""

    helm: Path
    workdir: Path

    def run(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        value_files: tuple[Path, ...] = (),
        namespace: str = NAMESPACE,
        release: str = RELEASE,
        extra_args: tuple[str, ...] = (),
    ) -> RenderResult:
        args = [str(self.helm), "template", release, str(CHART), "--namespace", namespace]
        for path in value_files:
            args += ["--values", str(path)]
        if values:
            digest = hashlib.sha256(repr(values).encode()).hexdigest()[:16]
            # JSON is YAML that quotes every string: PyYAML leaves `n` or `y` bare, and Helm's
            # YAML 1.1 parser reads those as booleans (a namespace named `n` became false).
            path = self.workdir / f"values-{digest}.json"
            path.write_text(json.dumps(dict(values)))
            args += ["--values", str(path)]
        args += list(extra_args)
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        objects = load_documents(result.stdout) if result.returncode == 0 else []
        return RenderResult(result.returncode, objects, result.stderr)

    def render(
        self, values: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        result = self.run(values, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.objects

    def error(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
        result = self.run(values, **kwargs)
        assert result.returncode != 0, "expected helm template to fail"
        return result.stderr


@pytest.fixture(scope="session")
def chart(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(helm_bin, tmp_path_factory.mktemp("chart-values"))


@pytest.fixture(scope="session")
def render(chart: Chart) -> Callable[..., list[dict[str, Any]]]:
    return chart.render
