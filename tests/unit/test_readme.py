"""The README is executable documentation: what it shows must be what the product does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from webhook.core.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CLI = str(Path(sys.executable).parent / "pullsecret-injector")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


POLICIES = [b for b in _blocks("yaml") if "kind: PullSecretPolicy" in b]


def test_the_readme_has_its_worked_examples() -> None:
    assert len(POLICIES) >= 8


@pytest.mark.parametrize(
    "text", POLICIES, ids=[f"policy example {i}" for i in range(len(POLICIES))]
)
def test_every_policy_example_is_a_valid_policy(text: str) -> None:
    load_policy(text)


def test_the_chart_values_example_holds_a_valid_policy() -> None:
    values = next(b for b in _blocks("yaml") if b.startswith("policy:"))
    policy = yaml.safe_load(values)["policy"]
    load_policy(
        yaml.safe_dump(
            {"apiVersion": "pullsecret-injector.io/v1", "kind": "PullSecretPolicy", **policy}
        )
    )


def test_every_make_target_named_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)`|^make ([a-z-]+)", README, flags=re.MULTILINE)):
        name = target[0] or target[1]
        assert re.search(rf"^{name}:", makefile, flags=re.MULTILINE), name


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_subcommand_named_exists() -> None:
    helptext = subprocess.run([CLI, "--help"], capture_output=True, text=True, check=True).stdout
    named = re.findall(r"(?:`|\$ )pullsecret-injector ([a-z][a-z-]+)", README)
    assert named
    for command in set(named):
        assert command in helptext, command


def test_every_value_in_the_values_table_exists_in_the_chart() -> None:
    values = yaml.safe_load((ROOT / "charts" / "pullsecret-injector" / "values.yaml").read_text())
    table = README.split("### Values worth knowing", 1)[1].split("\n\n", 2)[1]
    names = [
        name
        for row in re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
        for name in re.findall(r"`([a-zA-Z][a-zA-Z.]+)`", row)
    ]
    assert len(names) >= 10
    for name in names:
        node: object = values
        for part in name.split("."):
            assert isinstance(node, dict), name
            assert part in node, name
            node = node[part]


def test_the_validate_policy_transcript_is_what_the_command_prints(tmp_path: Path) -> None:
    section = README.split("**A single private registry**", 1)[1]
    policy = tmp_path / "policy.yaml"
    policy.write_text(re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)[0])
    output = subprocess.run(
        [CLI, "validate-policy", str(policy)], capture_output=True, text=True, check=True
    ).stdout
    assert output.replace(str(policy), "policy.yaml").startswith("policy.yaml: valid, 1 rule(s)")
