"""`make demo` as a new user runs it: every step succeeds and shows what the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.controlplane import REPO


def test_the_demo_runs_end_to_end_and_stops_everything_it_started(tmp_path: Path) -> None:
    env = {**os.environ, "PULLSECRET_DEMO_DIR": str(tmp_path / "demo")}
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "up", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "stored imagePullSecrets: [{'name': 'corp-pull'}]" in out
    assert (
        "admission warning: pullsecret-injector: rule partner-registry: source secret "
        "pull-secrets/partner-pull not found" in out
    )
    assert "auths keys (credentials not shown): ['registry.example.com']" in out
    assert "not-a-real-password" not in out
    assert "rule corp-registry: matched registry.example.com" in out  # the explain step
    assert out.rstrip().endswith("stopped")
    assert not (tmp_path / "demo" / "state.json").exists()
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
