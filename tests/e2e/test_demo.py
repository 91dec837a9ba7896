"""`make demo` as a new user runs it: every step succeeds and shows what the README says.

The demo brings up its own control plane and node, installs the chart from our image as pods
on that node, and ends with two pods of the same private image side by side: the one the
webhook pod admitted runs, the opted-out one is in ImagePullBackOff.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.controlplane import REPO

# A cold cache builds the image first (~3 min on 2 cores); warm, the demo is ready in ~40 s.
pytestmark = pytest.mark.timeout(1800)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the demo's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_the_demo_runs_end_to_end_and_stops_everything_it_started(tmp_path: Path) -> None:
    # Short: the node's containerd sockets live under it (unix socket paths are limited).
    demo_dir = tmp_path / "d"
    env = {**os.environ, "PULLSECRET_DEMO_DIR": str(demo_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "up", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    assert result.returncode == 0, out + result.stderr
    registry = re.search(r"registry https://(127\.0\.0\.1:\d+) ", out)
    assert registry, out
    host = registry.group(1)
    for component in ("webhook", "controller"):  # the chart's pods, on the node
        assert re.search(rf"pullsecret-injector-{component}-\S+\s+1/1\s+Running\s+0 ", out), out
    assert "stored imagePullSecrets: [{'name': 'corp-pull'}]" in out
    assert (
        "admission warning: pullsecret-injector: rule partner-registry: source secret "
        "pull-secrets/partner-pull not found" in out
    )
    assert f"auths keys (credentials not shown): ['{host}']" in out
    assert re.search(r"\n\s+admitted\s+corp-pull\s+Running\n", out), out
    assert re.search(r"\n\s+opted-out\s+-\s+ImagePullBackOff\n", out), out
    assert "(no basic auth credentials)" in out
    assert "not-a-real-password" not in out
    assert f"rule corp-registry: matched {host}" in out  # the explain step
    assert out.rstrip().endswith("stopped")
    assert not (demo_dir / "state.json").exists()
    assert processes_mentioning(str(demo_dir)) == []
    down = subprocess.run(
        [sys.executable, "-m", "tools.demo", "down"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 0
    assert "no demo is recorded" in down.stdout
