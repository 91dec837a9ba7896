"""``make demo-down`` stops what ``make demo`` recorded, by identity (tools/demo.py ``down``).

``down`` may run long after ``up`` was killed, when the PIDs in ``.demo/state.json`` can belong
to anything. These write such a state file for real ``sleep`` processes standing in for
``up`` and a node daemon, and check that ``down`` stops the recorded ones and never a process
whose PID merely matches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import demo
from tools.processes import Child, ProcessRecord, is_running

SLEEP = str(Path(shutil.which("sleep") or "/bin/sleep").resolve())


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "demo"
    directory.mkdir()
    monkeypatch.setattr(demo, "DEMO_DIR", directory)
    return directory


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[list[Child]]:
    """Two processes that would outlive the test: stand-ins for ``up`` and a daemon."""
    children = [
        Child.spawn(name, [SLEEP, "600"], log=tmp_path / f"{name}.log", cwd=tmp_path)
        for name in ("demo up", "containerd")
    ]
    try:
        yield children
    finally:
        for child in children:
            child.stop(timeout=5.0)


def _write_state(demo_dir: Path, up: ProcessRecord, daemons: list[ProcessRecord]) -> None:
    state = {
        "up": dataclasses.asdict(up),
        "cluster": str(demo_dir / "no-cluster-here"),
        "node_processes": [dataclasses.asdict(r) for r in daemons],
    }
    (demo_dir / "state.json").write_text(json.dumps(state))


def test_down_stops_a_recorded_up_and_what_it_left(demo_dir: Path, sleepers: list[Child]) -> None:
    up, daemon = sleepers
    _write_state(demo_dir, up.record, [daemon.record])

    assert demo.down(timeout=5.0) == 0

    assert not is_running(up.record)
    assert not is_running(daemon.record)
    assert not (demo_dir / "state.json").exists()


def test_down_never_signals_a_pid_that_is_not_the_recorded_process(
    demo_dir: Path, sleepers: list[Child]
) -> None:
    """Same PIDs, other start times: what a state file looks like once the kernel has handed
    the PIDs of a killed demo to new processes."""
    up, daemon = sleepers
    stale = [
        dataclasses.replace(child.record, start_ticks=child.record.start_ticks - 1)
        for child in sleepers
    ]
    _write_state(demo_dir, stale[0], stale[1:])

    assert demo.down(timeout=5.0) == 0

    assert is_running(up.record)
    assert is_running(daemon.record)
    assert not (demo_dir / "state.json").exists()


def test_up_records_itself_by_identity(demo_dir: Path) -> None:
    """What ``up`` writes for ``down``: its own process, with start time, like the daemons."""
    demo._record(demo_dir / "cluster", None)

    state = json.loads((demo_dir / "state.json").read_text())
    up = ProcessRecord(**state["up"])
    assert up.pid == os.getpid()
    assert is_running(up)
    assert state["cluster"] == str(demo_dir / "cluster")
    assert state["node_processes"] == []


def test_down_without_a_recorded_demo_does_nothing(demo_dir: Path) -> None:
    assert demo.down() == 0
