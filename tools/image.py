"""The project's container image, built from the ``Dockerfile`` on this machine, for tests and
the demo: :func:`build_image` returns the OCI archive, building it on first use.

The work is done by ``tools/build-image.sh`` (buildah FROM a Debian 12 base made with
mmdebstrap; see that script for why and for what it keeps off the host). Everything is cached
under ``~/.cache/pullsecret-injector/image`` keyed by a hash of its inputs, so a second call
with an unchanged checkout returns in well under a second.

From Python (a fixture that needs the image)::

    info = build_image_info()
    # a registry with TLS from our CA and htpasswd (the node fixture's), by the same script:
    push_image(f"docker://{host}/pullsecret-injector:{info.version}", creds="u:p", cert_dir=ca)

From a shell::

    python -m tools.image            # the archive path
    python -m tools.image --json     # image.json: reference, digest, sizes, build times
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "BUILD_SCRIPT",
    "ImageBuildError",
    "ImageInfo",
    "build_image",
    "build_image_info",
    "main",
    "push_image",
]

BUILD_SCRIPT = Path(__file__).resolve().with_name("build-image.sh")
# A cold build is ~2.5 min on 2 idle cores (base ~1 min, image ~1.5 min); ten times that is a
# hung download, not a slow machine.
BUILD_TIMEOUT_SECONDS = 1800.0


class ImageBuildError(RuntimeError):
    """tools/build-image.sh failed; the message carries the tail of its log."""


@dataclass(frozen=True)
class ImageInfo:
    """What tools/build-image.sh wrote to ``image.json`` next to the archive."""

    archive: Path
    """The ``oci-archive`` tarball (one image, ``index.json`` names it ``reference``)."""
    reference: str
    """``localhost/pullsecret-injector:<version>``: the name inside the archive."""
    digest: str
    """Manifest digest (``sha256:...``); unchanged by a push, so the chart can pin it."""
    version: str
    base: str
    base_tarball: Path
    base_seconds: int
    """How long mmdebstrap took when the base was built (cold)."""
    image_seconds: int
    """How long importing the base + ``buildah bud`` + the archive took (cold)."""
    archive_bytes: int
    tools: Path
    """debs.txt: the Debian packages unpacked to get buildah and mmdebstrap."""


def _parse(document: str) -> ImageInfo:
    data = json.loads(document)
    return ImageInfo(
        archive=Path(data["archive"]),
        reference=str(data["reference"]),
        digest=str(data["digest"]),
        version=str(data["version"]),
        base=str(data["base"]),
        base_tarball=Path(data["base_tarball"]),
        base_seconds=int(data["base_seconds"]),
        image_seconds=int(data["image_seconds"]),
        archive_bytes=int(data["archive_bytes"]),
        tools=Path(data["tools"]),
    )


def _run_script(arguments: Sequence[str], timeout: float) -> str:
    try:
        result = subprocess.run(
            [str(BUILD_SCRIPT), *arguments],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"{BUILD_SCRIPT} could not run: {exc}") from exc
    if result.returncode != 0:
        raise ImageBuildError(
            f"{BUILD_SCRIPT} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result.stdout


def build_image_info(timeout: float = BUILD_TIMEOUT_SECONDS) -> ImageInfo:
    """Build the image if the cache does not hold this checkout's yet; describe it."""
    stdout = _run_script(["--json"], timeout)
    try:
        info = _parse(stdout)
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageBuildError(f"{BUILD_SCRIPT} printed no image.json: {exc}") from exc
    if not info.archive.is_file():
        raise ImageBuildError(f"{BUILD_SCRIPT} reported {info.archive}, which does not exist")
    return info


def build_image(timeout: float = BUILD_TIMEOUT_SECONDS) -> Path:
    """The OCI archive of the project image (``oci-archive:`` tarball), built if needed."""
    return build_image_info(timeout).archive


def push_image(
    destination: str,
    *,
    creds: str | None = None,
    cert_dir: Path | None = None,
    tls_verify: bool = True,
    timeout: float = BUILD_TIMEOUT_SECONDS,
) -> ImageInfo:
    """Build if needed, then ``buildah push`` the archive's image to ``destination``, any
    containers-transports(5) name: ``docker://host:port/repo:tag`` for a registry (``creds``
    ``user:password``, ``cert_dir`` holding the registry's CA as ``*.crt``), or ``oci:dir:tag``.

    The manifest digest does not change on the way (same blobs, same manifest bytes)."""
    arguments = ["--json", "--push", destination]
    if creds is not None:
        arguments += ["--creds", creds]
    if cert_dir is not None:
        arguments += ["--cert-dir", str(cert_dir)]
    if not tls_verify:
        arguments.append("--tls-verify=false")
    return _parse(_run_script(arguments, timeout))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.image", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print image.json, not the path")
    args = parser.parse_args(argv)
    try:
        info = build_image_info()
    except ImageBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(info), indent=2, default=str))
    else:
        print(info.archive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
