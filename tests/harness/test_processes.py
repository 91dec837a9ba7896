"""The process helper every part of the harness stops its processes with (tools/processes.py).

Its promise is that a signal reaches only the process that was recorded: a PID whose start
time or executable differs is someone else's (the kernel reuses PIDs), and is left alone.
These start real ``sleep`` children on this machine and look at them through /proc, as the
helper itself does; every child is stopped by the fixture, whatever a test did.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import processes
from tools.processes import (
    Child,
    ProcessError,
    ProcessRecord,
    adopt,
    is_running,
    kill,
    spawn,
    stop,
    tail,
    terminate,
)

SLEEP = str(Path(shutil.which("sleep") or "/bin/sleep").resolve())


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Child]:
    """A ``sleep`` child that would outlive any test, stopped (by record) afterwards."""
    child = Child.spawn("sleeper", [SLEEP, "600"], log=tmp_path / "sleeper.log", cwd=tmp_path)
    try:
        yield child
    finally:
        child.stop(timeout=5.0)


def _alive(pid: int) -> bool:
    """Seen from outside the helper: the PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_spawned_child_is_recorded_with_its_executable_and_start_time(
    sleeper: Child,
) -> None:
    record = sleeper.record
    stat = Path(f"/proc/{record.pid}/stat").read_text()
    start_ticks = int(stat[stat.rindex(")") + 2 :].split()[19])

    assert record.name == "sleeper"
    assert record.exe == os.readlink(f"/proc/{record.pid}/exe") == SLEEP
    assert record.start_ticks == start_ticks
    assert is_running(record)


def test_terminate_stops_the_recorded_process(sleeper: Child) -> None:
    terminate(sleeper.record, timeout=5.0)

    assert not is_running(sleeper.record)
    assert not _alive(sleeper.pid)


SLOW_EXIT = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def test_terminate_waits_for_an_exit_that_proc_shows_without_its_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a process exits, /proc has already dropped its ``exe`` link and ``cmdline`` but
    it is no zombie yet: ``terminate`` must wait for the exit, not take the missing link for
    "gone" (CI once saw a ``sleep`` alive after ``terminate`` returned). Simulated here by
    hiding both after the signal from a child that takes half a second to exit."""
    exe = str(Path(sys.executable).resolve())
    child = Child.spawn("slow", [exe, "-c", SLOW_EXIT], log=tmp_path / "slow.log", cwd=tmp_path)
    try:
        for _ in range(200):
            if "ready" in tail(tmp_path / "slow.log", 5):
                break
            time.sleep(0.05)
        signalled: list[int] = []
        real_kill = os.kill

        def kill_and_hide(pid: int, sig: int) -> None:
            real_kill(pid, sig)
            signalled.append(pid)

        monkeypatch.setattr(os, "kill", kill_and_hide)
        monkeypatch.setattr(processes, "_proc_exe", lambda pid: None if signalled else exe)
        monkeypatch.setattr(processes, "_proc_argv0", lambda pid: None)

        terminate(child.record, timeout=20.0)

        assert signalled == [child.pid]
        assert not _alive(child.pid)
    finally:
        monkeypatch.undo()
        child.kill()


def test_stop_keeps_the_exit_status_of_a_child_we_hold(sleeper: Child) -> None:
    stop(sleeper.record, sleeper.process, timeout=5.0)

    assert sleeper.process.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    # An ignored signal stays ignored across exec: the sleep the shell becomes ignores SIGTERM
    # (spawn returns once the exec happened).
    child = Child.spawn(
        "stubborn",
        ["/bin/sh", "-c", f"trap '' TERM; exec {SLEEP} 600"],
        log=tmp_path / "stubborn.log",
        cwd=tmp_path,
        exe=SLEEP,
    )
    try:
        child.stop(timeout=0.5)
        assert child.process.returncode == -signal.SIGKILL
    finally:
        child.kill()


def test_a_recycled_pid_with_another_start_time_is_never_signalled(sleeper: Child) -> None:
    """A state file read after its processes died may name a PID the kernel gave to another
    process: same PID, later start time. Neither check nor signal touches it."""
    stale = dataclasses.replace(sleeper.record, start_ticks=sleeper.record.start_ticks - 1)

    assert not is_running(stale)
    terminate(stale, timeout=1.0)
    kill(stale)
    stop(stale)

    assert _alive(sleeper.pid)
    assert is_running(sleeper.record)


def test_a_pid_now_running_another_executable_is_never_signalled(sleeper: Child) -> None:
    other = dataclasses.replace(sleeper.record, exe=sys.executable)

    assert not is_running(other)
    terminate(other, timeout=1.0)

    assert _alive(sleeper.pid)


def test_a_record_survives_a_state_file_round_trip(sleeper: Child) -> None:
    """``up`` writes records as JSON objects and ``down`` (another process) reads them back."""
    again = ProcessRecord(**dataclasses.asdict(sleeper.record))

    assert again == sleeper.record
    assert is_running(again)
    terminate(again, timeout=5.0)
    assert not _alive(sleeper.pid) or not is_running(sleeper.record)


def test_adopt_records_a_live_process_we_did_not_spawn(sleeper: Child) -> None:
    adopted = adopt("adopted", sleeper.pid)
    this = adopt("this", os.getpid())

    assert adopted is not None
    assert (adopted.pid, adopted.exe, adopted.start_ticks) == (
        sleeper.pid,
        SLEEP,
        sleeper.record.start_ticks,
    )
    assert this is not None
    assert is_running(this)
    kill(adopted)
    assert not is_running(sleeper.record)


def test_an_exited_child_is_gone_and_stopping_it_is_harmless(tmp_path: Path) -> None:
    child = Child.spawn("sleeper", [SLEEP, "600"], log=tmp_path / "s.log", cwd=tmp_path)
    child.kill()

    assert child.exit_code() == -signal.SIGKILL
    assert not is_running(child.record)
    child.stop()
    child.kill()


def test_an_exec_that_never_comes_fails_with_the_log_tail(tmp_path: Path) -> None:
    """``exe`` is the program a wrapper should exec; a wrapper that exits instead is reported
    with what it logged."""
    with pytest.raises(ProcessError, match="wrapper gave up") as raised:
        spawn(
            "wrapped",
            ["/bin/sh", "-c", "echo wrapper gave up; exit 3"],
            exe=SLEEP,
            log=tmp_path / "wrapped.log",
            cwd=tmp_path,
        )
    assert "exit 3" in str(raised.value)


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "component.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 1001)))

    assert tail(log, 3) == "line 998\nline 999\nline 1000"
    assert tail(log, 5000).splitlines()[0] == "line 1"


def test_tail_of_a_large_log_reads_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * (4 * 1024 * 1024) + b"\nlast\n")

    assert tail(log, 1) == "last"


def test_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "never-written.log", 10) == ""


def test_a_child_logs_to_its_file(tmp_path: Path) -> None:
    # spawn returns once the shell has exec'd sleep, i.e. after it wrote every line.
    child = Child.spawn(
        "talker",
        ["/bin/sh", "-c", f"for n in 1 2 3 4; do echo said $n; done; exec {SLEEP} 600"],
        log=tmp_path / "talker.log",
        cwd=tmp_path,
        exe=SLEEP,
    )
    try:
        assert child.log_tail(2) == "said 3\nsaid 4"
    finally:
        child.stop()
