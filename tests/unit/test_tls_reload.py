"""ReloadingServerContext: rotated certificate files reach new connections, without a restart.

Every test serves real TLS on 127.0.0.1 through a server that asks ``ReloadingServerContext.get``
for its context on each accepted connection, as gunicorn's ``ssl_context`` hook does, and
talks to it with a client that verifies the chain and the name the API server would use.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.files import write_atomic
from certs.pki import issue, new_ca
from webhook.http.tls import ReloadingServerContext

HOST = "psi.tools.svc"


@dataclass(frozen=True)
class Pair:
    """A CA (written to ``ca_file`` for clients) and a serving certificate it signed."""

    ca_file: Path
    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def make_pair(directory: Path, label: str) -> Pair:
    now = datetime.now(UTC)
    ca = new_ca(f"{label} CA", now, 1)
    leaf = issue(ca, HOST, now=now, days=1, hosts=[HOST, "127.0.0.1"])
    ca_file = directory / f"{label}-ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return Pair(ca_file, leaf.cert_pem, leaf.key_pem)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Mounted:
    """A directory holding ``tls.crt``/``tls.key``, as the webhook pod sees it."""

    directory: Path
    generation: int = 0

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"

    def install_atomically(self, pair: Pair) -> None:
        write_atomic(self.cert, pair.cert_pem, 0o644)
        write_atomic(self.key, pair.key_pem, 0o600)

    def install_like_kubelet(self, pair: Pair) -> None:
        """A Secret volume update: a new timestamped dir, then one rename of ``..data``."""
        self.generation += 1
        version = self.directory / f"..2025_01_01_00_00_0{self.generation}"
        version.mkdir()
        (version / "tls.crt").write_bytes(pair.cert_pem)
        (version / "tls.key").write_bytes(pair.key_pem)
        staging = self.directory / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.directory / "..data")
        for name in ("tls.crt", "tls.key"):
            link = self.directory / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for old in self.directory.glob("..2025_*"):
            if old != version:
                for file in old.iterdir():
                    file.unlink()
                old.rmdir()


@pytest.fixture
def mounted(tmp_path: Path) -> Mounted:
    directory = tmp_path / "tls"
    directory.mkdir()
    return Mounted(directory)


@pytest.fixture
def pair_a(tmp_path: Path) -> Pair:
    return make_pair(tmp_path, "first")


@pytest.fixture
def pair_b(tmp_path: Path) -> Pair:
    return make_pair(tmp_path, "second")


def served(conn: ssl.SSLSocket) -> x509.Certificate:
    der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_the_pair_is_loaded_and_served(
    mounted: Mounted, pair_a: Pair, tls_server: Callable[..., Any]
) -> None:
    mounted.install_atomically(pair_a)
    tls = ReloadingServerContext(mounted.cert, mounted.key)
    assert not tls.loaded

    server = tls_server(tls.get)
    conn = server.connect(pair_a.ca_file, HOST)

    assert server.exchange(conn, b"ping") == b"echo:ping"
    assert served(conn) == pair_a.certificate
    assert tls.loaded
    assert tls.loads == 1


@pytest.mark.parametrize(
    "install",
    [
        pytest.param(Mounted.install_atomically, id="files replaced by rename"),
        pytest.param(Mounted.install_like_kubelet, id="a Secret volume's ..data symlink swap"),
    ],
)
def test_after_rotation_new_connections_get_the_new_certificate_and_old_ones_keep_working(
    mounted: Mounted,
    pair_a: Pair,
    pair_b: Pair,
    tls_server: Callable[..., Any],
    install: Callable[[Mounted, Pair], None],
) -> None:
    install(mounted, pair_a)
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=5, clock=clock)
    server = tls_server(tls.get)
    before = server.connect(pair_a.ca_file, HOST)
    assert server.exchange(before, b"one") == b"echo:one"

    install(mounted, pair_b)
    clock.now += 5

    after = server.connect(pair_b.ca_file, HOST)
    assert served(after) == pair_b.certificate
    assert server.exchange(after, b"new") == b"echo:new"
    with pytest.raises(ssl.SSLCertVerificationError):
        server.connect(pair_a.ca_file, HOST)
    assert server.exchange(before, b"two") == b"echo:two"
    assert served(before) == pair_a.certificate
    assert tls.loads == 2


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)  # deliberately not atomic: what a careless tool does


def _new_cert_old_key(mounted: Mounted, new: Pair) -> None:
    _write(mounted.cert, new.cert_pem)


def _new_key_old_cert(mounted: Mounted, new: Pair) -> None:
    _write(mounted.key, new.key_pem)


def _truncated_cert(mounted: Mounted, new: Pair) -> None:
    _write(mounted.cert, new.cert_pem[: len(new.cert_pem) // 2])
    _write(mounted.key, new.key_pem)


def _empty_cert(mounted: Mounted, new: Pair) -> None:
    _write(mounted.cert, b"")
    _write(mounted.key, new.key_pem)


def _garbage(mounted: Mounted, new: Pair) -> None:
    _write(mounted.cert, b"not a certificate")
    _write(mounted.key, b"not a key")


def _key_gone(mounted: Mounted, new: Pair) -> None:
    mounted.key.unlink()


DAMAGE = [
    pytest.param(
        _new_cert_old_key, id="the new certificate is written but the key is still the old one"
    ),
    pytest.param(
        _new_key_old_cert, id="the new key is written but the certificate is still the old one"
    ),
    pytest.param(_truncated_cert, id="the certificate is cut off halfway through its PEM"),
    pytest.param(_empty_cert, id="the certificate file is empty"),
    pytest.param(_garbage, id="both files hold garbage"),
    pytest.param(_key_gone, id="the key file is gone"),
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_broken_pair_keeps_the_previous_certificate_until_a_good_one_arrives(
    mounted: Mounted,
    pair_a: Pair,
    pair_b: Pair,
    tls_server: Callable[..., Any],
    damage: Callable[[Mounted, Pair], None],
) -> None:
    mounted.install_atomically(pair_a)
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=1, clock=clock)
    first = tls.get()
    server = tls_server(tls.get)

    damage(mounted, pair_b)
    clock.now += 1

    assert tls.get() is first
    still = server.connect(pair_a.ca_file, HOST)
    assert served(still) == pair_a.certificate
    assert server.exchange(still, b"ok") == b"echo:ok"

    mounted.install_atomically(pair_b)
    clock.now += 1

    assert tls.get() is not first
    assert served(server.connect(pair_b.ca_file, HOST)) == pair_b.certificate


@pytest.mark.parametrize(
    "present",
    [
        pytest.param((), id="neither file exists"),
        pytest.param(("tls.crt",), id="only the certificate exists"),
        pytest.param(("tls.key",), id="only the key exists"),
    ],
)
def test_without_files_get_raises_and_the_first_pair_is_used_as_soon_as_it_appears(
    mounted: Mounted, pair_a: Pair, present: tuple[str, ...]
) -> None:
    for name in present:
        (mounted.directory / name).write_bytes(
            pair_a.cert_pem if name == "tls.crt" else pair_a.key_pem
        )
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=60, clock=clock)

    with pytest.raises(ssl.SSLError, match="no usable certificate"):
        tls.get()
    assert not tls.loaded

    mounted.install_atomically(pair_a)

    assert isinstance(tls.get(), ssl.SSLContext)  # no need to wait out the interval
    assert tls.loaded


def test_a_server_without_a_certificate_refuses_connections(
    mounted: Mounted, pair_a: Pair, tls_server: Callable[..., Any]
) -> None:
    tls = ReloadingServerContext(mounted.cert, mounted.key)
    server = tls_server(tls.get)

    with pytest.raises((ssl.SSLError, OSError)):
        server.exchange(server.connect(pair_a.ca_file, HOST), b"ping")


def test_files_are_checked_only_once_per_interval(
    mounted: Mounted, pair_a: Pair, pair_b: Pair
) -> None:
    mounted.install_atomically(pair_a)
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=10, clock=clock)
    first = tls.get()

    mounted.install_atomically(pair_b)
    clock.now += 9.999
    assert tls.get() is first

    clock.now += 0.001
    second = tls.get()
    assert second is not first
    assert tls.loads == 2


def test_unchanged_files_are_not_reloaded(mounted: Mounted, pair_a: Pair) -> None:
    mounted.install_atomically(pair_a)
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=1, clock=clock)
    first = tls.get()

    for _ in range(5):
        clock.now += 1
        assert tls.get() is first
    assert tls.loads == 1


def test_the_default_context_refuses_tls_below_1_2(mounted: Mounted, pair_a: Pair) -> None:
    mounted.install_atomically(pair_a)

    context = ReloadingServerContext(mounted.cert, mounted.key).get()

    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_worker_forked_while_the_master_loads_the_certificate_can_still_serve(
    mounted: Mounted, pair_a: Pair
) -> None:
    """gunicorn forks workers while the master's probe thread may be inside ``get()``."""
    mounted.install_atomically(pair_a)
    clock = Clock()
    tls = ReloadingServerContext(mounted.cert, mounted.key, check_interval=1, clock=clock)
    tls.get()
    clock.now += 1  # the child's first get() must check the files, so take the lock
    loading, release = threading.Event(), threading.Event()

    def probe_thread_loading() -> None:  # stands in for the master's probe, mid-load
        with tls._lock:
            loading.set()
            release.wait(5)

    probe = threading.Thread(target=probe_thread_loading, daemon=True)
    probe.start()
    assert loading.wait(5)
    threading.Timer(0.3, release.set).start()
    child = os.fork()  # waits for the load to finish instead of inheriting it half-done
    fork_waited_for_the_load = release.is_set()
    if child == 0:  # pragma: no cover - runs in the child; its exit code is the result
        done = threading.Event()
        threading.Thread(target=lambda: (tls.get(), done.set()), daemon=True).start()
        os._exit(0 if done.wait(5) else 1)
    _, status = os.waitpid(child, 0)
    probe.join(5)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked worker hung in get()"
    assert fork_waited_for_the_load, "the fork went ahead while the probe thread was loading"


def _client_certificate(directory: Path, label: str) -> tuple[Path, tuple[Path, Path]]:
    """A client CA (file) and a client certificate (cert, key files) it signed."""
    now = datetime.now(UTC)
    ca = new_ca(f"{label} client CA", now, 1)
    leaf = issue(ca, "kube-apiserver", now=now, days=1, server=False, client=True)
    ca_file, cert, key = (directory / f"{label}-{n}" for n in ("ca.crt", "tls.crt", "tls.key"))
    ca_file.write_bytes(ca.cert_pem)
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)
    return ca_file, (cert, key)


def test_with_a_client_ca_only_clients_holding_its_certificate_get_an_answer(
    mounted: Mounted, pair_a: Pair, tmp_path: Path, tls_server: Callable[..., Any]
) -> None:
    mounted.install_atomically(pair_a)
    client_ca, apiserver = _client_certificate(tmp_path, "apiserver")
    _, stranger = _client_certificate(tmp_path, "stranger")
    tls = ReloadingServerContext(mounted.cert, mounted.key, client_ca_file=client_ca)
    server = tls_server(tls.get)

    trusted = server.connect(pair_a.ca_file, HOST, client_cert=apiserver)
    assert server.exchange(trusted, b"review") == b"echo:review"
    for client_cert in (None, stranger):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _talk(server, pair_a, client_cert)
    for _ in range(500):  # the server thread records its side of the refusal a moment later
        if len(server.handshake_errors) == 2:
            break
        threading.Event().wait(0.01)
    assert len(server.handshake_errors) == 2


def _talk(server: Any, pair: Pair, client_cert: tuple[Path, Path] | None) -> bytes:
    conn = server.connect(pair.ca_file, HOST, client_cert=client_cert)
    answer: bytes = server.exchange(conn, b"forged")  # TLS 1.3 reports a refusal on first use
    return answer
