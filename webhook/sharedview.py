"""One cluster view per pod, shared by every gunicorn worker: a memory-mapped LMDB store.

Why: each worker used to run its own watches and hold its own copy of the view. With 500
source and copy names, 3 replicas of 2 workers and 2 controllers that was ~8,000 long-lived
watches on the API server, ~1,000 threads per worker, and the view (namespace labels, source
secrets, copies) once per worker. Now one process per pod, the view keeper
(``webhook.k8s.viewkeeper``), runs the watches and writes what they see here; the workers read
it. Watches per pod = source namespaces/secrets + managed names, whatever the worker count.

Why LMDB (the ``lmdb`` binding): readers in other processes see each write as soon as it
commits, through a shared memory map, without locks or copies (MVCC: a read transaction is a
consistent snapshot, and costs about a microsecond); pages are mapped from one file, so the
view exists once in memory and the kernel accounts it once (PSS), however many workers read;
a worker killed or recycled by gunicorn opens the map and serves at once, without a relist.
Alternatives measured or considered: fork-time sharing (copy-on-write decays as soon as
refcounts are touched, and updates after the fork do not reach the workers); a per-worker
copy fed over pipes (one watch set, but still one view per worker); SQLite (a query costs
tens of microseconds, and every review makes several lookups).

The policy is validated once, by the keeper, which also starts the watches it names and
publishes it only once they have listed (so no worker answers "not found" for a secret whose
watch is still listing). It is stored here as a pickled ``Policy`` (written by our own keeper
in the same pod: trusted): a worker loads it in milliseconds in a background thread and
builds its own rule index (85 ms and ~3 MiB at 2,000 rules; a compiled index cannot be
shared between processes without forking per edit).

Layout (one LMDB environment, four named databases):

* ``namespaces``: name -> labels (JSON);
* ``sources``: ``namespace\\0name`` -> the Secret's type, data and resourceVersion (JSON),
  decoded by each worker once per change of ``sources_version``;
* ``targets``: ``name\\0namespace`` -> the ownership facts of a Secret with a managed name
  (name first, so that relisting one name is a prefix scan);
* ``meta``: ``sources_version``, the denials, the published policy and the keeper's status.

Every writer method of ``ClusterStore`` exists here with the same meaning, so the watches
write into either. Writes from the keeper and, for copies the webhook just created and
namespaces it just looked up, from workers are serialised by LMDB's own lock.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lmdb
import orjson

from webhook.core.clusterview import SourceSecret, TargetSecret, source_from_object
from webhook.core.policy import Policy

__all__ = ["KeeperStatus", "PublishedPolicy", "SharedStore"]

MAP_SIZE = 4 * 1024**3
"""Upper bound of the map (virtual; the file grows as data does): ~100x a 50,000-namespace
cluster's view."""

_SEP = b"\x00"


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    """The policy in force, as the keeper published it."""

    generation: str
    policy: Policy | None
    """``None`` until a valid policy has loaded."""
    error: str = ""
    """Why no policy is in force (set only while ``policy`` is ``None``)."""


@dataclass(frozen=True, slots=True)
class KeeperStatus:
    """What the view keeper says about itself (workers derive their readiness from it)."""

    ready: bool
    reason: str = ""
    pid: int = 0


class SharedStore:
    """``ClusterView`` and view writer over one LMDB environment in ``directory``."""

    def __init__(self, directory: Path, *, readonly: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._env = lmdb.open(
            str(directory),
            map_size=MAP_SIZE,
            max_dbs=4,
            readonly=readonly,
            readahead=False,
            meminit=False,
            max_readers=1024,
            # A read transaction that ends is kept and renewed by the next begin(): without
            # it (lmdb 3's default) every lookup locks the reader table, a mutex shared by
            # every process of the pod, which a review must then wait for whenever a keeper
            # thread holding it is off the CPU (BENCHMARKS.md §7; not separately measurable
            # there within the run-to-run spread).
            max_spare_txns=1,
        )
        self._namespaces = self._env.open_db(b"namespaces", create=not readonly)
        self._sources = self._env.open_db(b"sources", create=not readonly)
        self._targets = self._env.open_db(b"targets", create=not readonly)
        self._meta = self._env.open_db(b"meta", create=not readonly)
        self._decoded: dict[tuple[str, str], SourceSecret | None] = {}
        self._decoded_version = -1
        self._lock = threading.Lock()

    def close(self) -> None:
        self._env.close()

    # -- ClusterView --------------------------------------------------------------------------

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        raw = self._get(self._namespaces, namespace.encode())
        return None if raw is None else orjson.loads(raw)

    def source_secret(self, namespace: str, name: str) -> SourceSecret | None:
        version = self.sources_version
        key = (namespace, name)
        with self._lock:
            if version != self._decoded_version:
                self._decoded, self._decoded_version = {}, version
            if key in self._decoded:
                return self._decoded[key]
        raw = self._get(self._sources, _key(namespace, name))
        secret = None if raw is None else source_from_object(orjson.loads(raw))
        with self._lock:
            if self._decoded_version == version:
                self._decoded[key] = secret
        return secret

    def target_secret(self, namespace: str, name: str) -> TargetSecret | None:
        raw = self._get(self._targets, _key(name, namespace))
        return None if raw is None else TargetSecret(**orjson.loads(raw))

    def target_secrets(
        self, namespace: str, names: Sequence[str]
    ) -> tuple[TargetSecret | None, ...]:
        with self._env.begin(db=self._targets) as txn:
            found = [txn.get(_key(name, namespace)) for name in names]
        return tuple(None if raw is None else TargetSecret(**orjson.loads(raw)) for raw in found)

    def source_denied(self, namespace: str, name: str) -> str | None:
        denied = self._meta_json(b"denied") or {}
        return denied.get(f"{namespace}/{name}") or denied.get(f"{namespace}/")

    @property
    def sources_version(self) -> int:
        raw = self._get(self._meta, b"sources_version")
        return int(raw) if raw else 0

    # -- writers (the same meaning as ClusterStore's) ------------------------------------------

    def put_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(name.encode(), orjson.dumps(dict(labels)), db=self._namespaces)

    def delete_namespace(self, name: str) -> None:
        with self._env.begin(write=True) as txn:
            txn.delete(name.encode(), db=self._namespaces)

    def replace_namespaces(self, items: Mapping[str, Mapping[str, str]]) -> None:
        with self._env.begin(write=True) as txn:
            txn.drop(self._namespaces, delete=False)
            for name, labels in items.items():
                txn.put(name.encode(), orjson.dumps(dict(labels)), db=self._namespaces)

    def put_source(self, secret: SourceSecret) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(_key(secret.namespace, secret.name), _source_record(secret), db=self._sources)
            self._bump(txn)

    def delete_source(self, namespace: str, name: str) -> None:
        with self._env.begin(write=True) as txn:
            if txn.delete(_key(namespace, name), db=self._sources):
                self._bump(txn)

    def replace_named_source(
        self, namespace: str, name: str, items: Iterable[SourceSecret]
    ) -> None:
        with self._env.begin(write=True) as txn:
            txn.delete(_key(namespace, name), db=self._sources)
            for secret in items:
                txn.put(
                    _key(secret.namespace, secret.name), _source_record(secret), db=self._sources
                )
            self._bump(txn)

    def replace_namespace_sources(self, namespace: str, items: Iterable[SourceSecret]) -> None:
        with self._env.begin(write=True) as txn:
            _delete_prefix(txn, self._sources, namespace.encode() + _SEP)
            for secret in items:
                txn.put(
                    _key(secret.namespace, secret.name), _source_record(secret), db=self._sources
                )
            self._bump(txn)

    def set_denied(self, denied: dict[tuple[str, str], str]) -> None:
        record = orjson.dumps({f"{ns}/{name}": why for (ns, name), why in sorted(denied.items())})
        with self._env.begin(write=True) as txn:
            if txn.get(b"denied", db=self._meta) != record:
                txn.put(b"denied", record, db=self._meta)
                self._bump(txn)

    def put_target(self, secret: TargetSecret) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(
                _key(secret.name, secret.namespace), orjson.dumps(asdict(secret)), db=self._targets
            )

    def delete_target(self, namespace: str, name: str) -> None:
        with self._env.begin(write=True) as txn:
            txn.delete(_key(name, namespace), db=self._targets)

    def replace_targets(self, name: str, items: Iterable[TargetSecret]) -> None:
        with self._env.begin(write=True) as txn:
            _delete_prefix(txn, self._targets, name.encode() + _SEP)
            for secret in items:
                txn.put(
                    _key(secret.name, secret.namespace),
                    orjson.dumps(asdict(secret)),
                    db=self._targets,
                )

    # -- what the keeper publishes --------------------------------------------------------------

    def publish_policy(self, published: PublishedPolicy) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(b"policy", pickle.dumps(published), db=self._meta)
            txn.put(b"policy_generation", _stamp(published), db=self._meta)

    def published_policy(self) -> PublishedPolicy | None:
        raw = self._get(self._meta, b"policy")
        return None if raw is None else pickle.loads(raw)  # noqa: S301 - written by our keeper

    def policy_generation(self) -> str | None:
        """Cheap check for a new policy (without unpickling it)."""
        published = self._get(self._meta, b"policy_generation")
        return None if published is None else published.decode()

    def publish_keeper_status(self, status: KeeperStatus) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(b"keeper", orjson.dumps(asdict(status)), db=self._meta)

    def keeper_status(self) -> KeeperStatus:
        record = self._meta_json(b"keeper")
        return KeeperStatus(**record) if record else KeeperStatus(False, "view keeper not started")

    # -- introspection (metrics, the controller's reconcile) -----------------------------------

    def sizes(self) -> dict[str, int]:
        with self._env.begin() as txn:
            return {
                "namespaces": txn.stat(self._namespaces)["entries"],
                "source_secrets": txn.stat(self._sources)["entries"],
                "target_secrets": txn.stat(self._targets)["entries"],
            }

    def namespaces(self) -> dict[str, Mapping[str, str]]:
        return {k.decode(): orjson.loads(v) for k, v in self._items(self._namespaces)}

    def targets(self) -> list[TargetSecret]:
        return [TargetSecret(**orjson.loads(v)) for _, v in self._items(self._targets)]

    def sources(self) -> list[SourceSecret]:
        return [source_from_object(orjson.loads(v)) for _, v in self._items(self._sources)]

    # -- plumbing ------------------------------------------------------------------------------

    def _get(self, db: Any, key: bytes) -> bytes | None:
        with self._env.begin(db=db) as txn:
            value = txn.get(key)
            return None if value is None else bytes(value)

    def _meta_json(self, key: bytes) -> Any:
        raw = self._get(self._meta, key)
        return None if raw is None else orjson.loads(raw)

    def _items(self, db: Any) -> Iterator[tuple[bytes, bytes]]:
        with self._env.begin(db=db) as txn:
            yield from ((bytes(k), bytes(v)) for k, v in txn.cursor())

    def _bump(self, txn: Any) -> None:
        current = txn.get(b"sources_version", db=self._meta)
        txn.put(b"sources_version", str(int(current or 0) + 1).encode(), db=self._meta)


def _stamp(published: PublishedPolicy) -> bytes:
    """Changes with every publication that matters to a worker (a new policy or new error)."""
    in_force = published.policy.generation if published.policy is not None else ""
    return f"{published.generation}|{in_force}|{hash(published.error)}".encode()


def _key(first: str, second: str) -> bytes:
    return first.encode() + _SEP + second.encode()


def _source_record(secret: SourceSecret) -> bytes:
    """What ``source_from_object`` needs to rebuild ``secret`` (type, data, identity)."""
    return orjson.dumps(
        {
            "metadata": {
                "namespace": secret.namespace,
                "name": secret.name,
                "resourceVersion": secret.resource_version,
            },
            "type": secret.secret_type,
            "data": dict(secret.data),
        }
    )


def _delete_prefix(txn: Any, db: Any, prefix: bytes) -> None:
    cursor = txn.cursor(db=db)
    if not cursor.set_range(prefix):
        return
    while cursor.key().startswith(prefix):
        if not cursor.delete():
            break
