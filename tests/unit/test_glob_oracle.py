"""glob_match against Go's own filepath.Match, the function the kubelet runs on host labels.

The Go program in tests/oracle/filepathmatch is built once into the tools cache and fed
every case at once. Cases: every pattern and name over a small alphabet that exercises
stars, '?', classes, ranges, negation and escapes (exhaustive up to a length), plus random
longer ones. Go's error (a malformed pattern) counts as "no match", as in the kubelet.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from webhook.core.registry import glob_match

ORACLE = Path(__file__).resolve().parents[1] / "oracle" / "filepathmatch"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pullsecret-injector"


@pytest.fixture(scope="module")
def go_match(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = CACHE / "oracle" / "filepathmatch"
    source = (ORACLE / "main.go").stat().st_mtime_ns
    if not binary.exists() or binary.stat().st_mtime_ns < source:
        binary.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        subprocess.run(
            ["go", "build", "-o", str(binary), "."], cwd=ORACLE, env=env, check=True, timeout=600
        )
    return binary


def ask_go(binary: Path, pairs: list[tuple[str, str]]) -> list[bool]:
    lines = "".join(json.dumps(list(pair)) + "\n" for pair in pairs)
    result = subprocess.run(
        [str(binary)], input=lines, capture_output=True, text=True, check=True, timeout=300
    )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    return [a["match"] and not a["error"] for a in answers]


PATTERN_PARTS = ["a", "b", "-", "*", "?", "[a-b]", "[^a]", "\\*", "[", "]", "\\"]
NAME_CHARS = "ab-*"


def exhaustive_cases() -> list[tuple[str, str]]:
    patterns = {
        "".join(parts)
        for size in range(4)
        for parts in itertools.product(PATTERN_PARTS, repeat=size)
    }
    names = {
        "".join(chars) for size in range(5) for chars in itertools.product(NAME_CHARS, repeat=size)
    }
    return [(p, n) for p in sorted(patterns) for n in sorted(names)]


def random_cases(count: int, seed: int = 20261201) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        pattern = "".join(rng.choice(PATTERN_PARTS) for _ in range(rng.randint(0, 9)))
        name = "".join(rng.choice(NAME_CHARS) for _ in range(rng.randint(0, 40)))
        cases.append((pattern, name))
    return cases


def test_glob_match_answers_exactly_as_go_filepath_match(go_match: Path) -> None:
    cases = exhaustive_cases() + random_cases(50000)
    expected = ask_go(go_match, cases)
    wrong = [
        (pattern, name, want)
        for (pattern, name), want in zip(cases, expected, strict=True)
        if glob_match(pattern, name) is not want
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ from Go, e.g. {wrong[:5]}"


def test_many_stars_against_a_long_label_agree_with_go(go_match: Path) -> None:
    """The cases that were exponential before: the answer, not the time, is asserted here."""
    cases = [
        ("*-*-cache", "a" * 4000),
        ("*a*a*a*b", "a" * 100),
        ("*a*a*a*a*a*a*a*a*a*b", "a" * 250 + "b"),
        ("*a?[a-b]*-", "ab" * 500 + "-"),
    ]
    assert [glob_match(p, n) for p, n in cases] == ask_go(go_match, cases)
