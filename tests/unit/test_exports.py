"""Every module says what it offers: ``__all__`` names exist and list every public definition.

A stale ``__all__`` misleads the reader (and star-imports); a public function missing from it
is either an export someone forgot to declare or dead code waiting to be found.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import certs
import tools
import webhook


def _modules() -> list[ModuleType]:
    found = []
    for package in (webhook, certs, tools):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            found.append(importlib.import_module(info.name))
    return found


MODULES = [m for m in _modules() if not m.__name__.endswith("__init__")]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_definitions(module: ModuleType) -> None:
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
    }
    declared = set(getattr(module, "__all__", ()))
    missing = sorted(name for name in declared if not hasattr(module, name))
    assert not missing, f"__all__ names what does not exist: {missing}"
    undeclared = sorted(defined - declared)
    assert not undeclared, f"public but not in __all__ (export it or make it private): {undeclared}"
