"""examples/: every worked example of the README, ready to run, and still true.

Each directory holds the README's policy (the same text), a Secret with made-up credentials
and a Pod, and ``explain.txt``: the ``explain`` command and what it prints. The tests run
that command in the directory and compare, so an example cannot drift from the product or
from the README.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from webhook.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
README = (ROOT / "README.md").read_text()
WORKED = README.split("### Worked examples", 1)[1].split("\n## ", 1)[0]
BIN = Path(sys.executable).parent


def test_there_is_one_example_per_worked_example_of_the_readme() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", WORKED, flags=re.DOTALL)
    assert len(blocks) == len(EXAMPLES) == 6
    assert sorted((e / "policy.yaml").read_text() for e in EXAMPLES) == sorted(blocks)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_the_readme_shows_the_example_policy_and_links_to_it(example: Path) -> None:
    policy = (example / "policy.yaml").read_text()
    block = f"```yaml\n{policy}```\n([examples/{example.name}](examples/{example.name}/))"

    assert block in WORKED


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_the_example_policy_is_valid(example: Path) -> None:
    result = subprocess.run(
        [str(BIN / "pullsecret-injector"), "validate-policy", "policy.yaml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=example,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("policy.yaml: valid, 1 rule(s)")
    load_policy((example / "policy.yaml").read_text())


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_explain_prints_what_the_transcript_shows(example: Path) -> None:
    command, _, expected = (example / "explain.txt").read_text().partition("\n")
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[0] == "pullsecret-injector"

    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, check=False, cwd=example
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    assert "patch:\n  {" in expected, "each example injects something"
    assert "notes:" not in expected, "every file given is used"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_the_example_credentials_are_made_up(example: Path) -> None:
    for secret in yaml.safe_load_all((example / "secret.yaml").read_text()):
        payload = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
        for entry in payload["auths"].values():
            _, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            assert password.startswith("fake-pass-"), example.name


def test_the_readme_explain_transcript_is_the_single_registry_example() -> None:
    transcript = (ROOT / "examples" / "single-registry" / "explain.txt").read_text()

    assert "```console\n$ pullsecret-injector validate-policy policy.yaml\n" in README
    assert transcript in README
