"""The view keeper: the one process per webhook pod that watches.

Forked (and forked again, should it die) from the preloaded gunicorn master through a zygote
(``webhook.http.viewkeeper``, started by ``gunicorn.conf.py``), with the same ``PSI_*``
environment as the workers; ``python -m webhook.k8s.viewkeeper`` runs it alone. It runs the
pod's ``LiveState`` over the shared store (``webhook.sharedview``), publishes each policy once
its new watches have listed, and states its readiness there; the workers read all of it. It
exits when its parent (the zygote) does, so a SIGKILLed master leaves no keeper behind, or on
SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from webhook import logs
from webhook.core.policy import Policy
from webhook.k8s import client as k8s_client
from webhook.k8s.live import LiveState
from webhook.metrics import Metrics
from webhook.settings import Settings, SettingsError
from webhook.sharedview import KeeperStatus, PublishedPolicy, SharedStore

__all__ = ["main", "run"]

STATUS_SECONDS = 0.5
"""How often the keeper restates its readiness (and checks that its parent is alive)."""


def run(settings: Settings) -> int:
    logs.configure(settings.log_level)
    if not settings.shared_view_dir:
        raise SettingsError("PSI_SHARED_VIEW_DIR must name the pod's shared view directory")
    parent = os.getppid()
    store = SharedStore(Path(settings.shared_view_dir))
    metrics = Metrics()
    state = LiveState(settings, metrics, k8s_client.api_client(settings), store=store)

    def publish(policy: Policy) -> None:
        store.publish_policy(PublishedPolicy(policy.generation, policy))

    state.on_policy(publish)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    state.start()
    published_error = ""
    while not done.wait(STATUS_SECONDS):
        if os.getppid() != parent:
            break  # the master is gone: so are we
        ready, why = state.readiness()
        store.publish_keeper_status(KeeperStatus(ready, why, os.getpid()))
        metrics.ready.set(1 if ready else 0)  # the master's /readyz is the min over processes
        if state.policy() is None and why != published_error:
            store.publish_policy(PublishedPolicy("", None, why))
            published_error = why
    store.publish_keeper_status(KeeperStatus(False, "view keeper stopped", os.getpid()))
    state.stop()
    return 0


def main() -> int:
    return run(Settings.from_env())


if __name__ == "__main__":
    raise SystemExit(main())
