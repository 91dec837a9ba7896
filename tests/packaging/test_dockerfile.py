"""The Dockerfile, proven without a Docker engine.

There is no engine on this machine, so the image is checked three ways: ``hadolint`` lints it;
a small parser reads its stages and asserts the shape issue 8 asks for (slim base, non-root
numeric user, no build tools in the final stage, the chart's exact command); and its install
and command lines are *replayed*: the builder's ``COPY`` and ``RUN`` lines run in a fresh
``python -m venv`` under a temporary root, the source tree is removed as the final stage
would not have it, and the final ``CMD`` runs with ``--print-config`` and the chart's PSI_*
environment. A fast variant runs the same ``CMD`` with the project's own venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
VENV_BIN = REPO / ".venv" / "bin"

# The webhook's environment as the chart renders it (tests/chart checks the chart side).
PSI_ENV = {
    "PSI_POLICY_NAMESPACE": "psi-system",
    "PSI_POLICY_CONFIGMAP": "psi-pullsecret-injector-policy",
    "PSI_POLICY_KEY": "policy.yaml",
    "PSI_POD_NAME": "psi-pullsecret-injector-webhook-0",
    "PSI_LOG_LEVEL": "INFO",
    "PSI_PORT": "8443",
    "PSI_HEALTH_PORT": "8080",
    "PSI_TLS_CERT_FILE": "/tls/tls.crt",
    "PSI_TLS_KEY_FILE": "/tls/tls.key",
    "PSI_WORKERS": "2",
    "PSI_THREADS": "4",
    "PSI_GRACEFUL_TIMEOUT_SECONDS": "20",
    "PSI_WRITE_COPIES": "true",
    "PSI_ENSURE_TIMEOUT_SECONDS": "1.5",
}

# -- a Dockerfile reader, just enough for this one ----------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec form"
        return [str(v) for v in value]

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        words = shlex.split(self.args)
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
        return flags, [w for w in words if not w.startswith("--")]


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)
    raw_base: str = ""  # the FROM word as written, before build arguments are substituted

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV key=value pairs in order (later ones win), unexpanded."""
        result: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                result[key] = value
        return result


def global_args(text: str) -> dict[str, str]:
    """The ``ARG name[=default]`` lines before the first FROM: the only ones FROM may use."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            break
        if keyword.upper() == "ARG":
            name, _, default = args.strip().partition("=")
            result[name] = default
    return result


def _substitute(word: str, values: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` as Docker expands them in FROM (no modifiers are used here)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], ""), word)


def parse_dockerfile(text: str, build_args: Mapping[str, str] | None = None) -> list[Stage]:
    """Stages in order, each FROM resolved with the global ARG defaults and ``build_args``."""
    values = global_args(text) | dict(build_args or {})
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = re.sub(r"\s+", " ", args).strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            base = _substitute(words[0], values)
            stages.append(Stage(base=base, name=name, raw_base=words[0]))
        elif keyword == "ARG" and not stages:
            continue  # a global build argument, read by global_args()
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def _logical_lines(text: str) -> list[str]:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return logical


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def final_command(stages: list[Stage]) -> list[str]:
    cmds = stages[-1].all("CMD")
    assert len(cmds) == 1
    return cmds[0].exec_form()


# -- static checks ------------------------------------------------------------------------------


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_two_stages_on_the_same_slim_python_base(stages: list[Stage]) -> None:
    assert [s.base for s in stages] == ["python:3.11-slim", "python:3.11-slim"]
    assert stages[0].name == "builder"


def test_the_base_is_one_build_argument_for_both_stages() -> None:
    """tools/build-image.sh builds FROM a local Debian 12 image where no registry is reachable;
    everyone else gets python:3.11-slim. Both stages must follow the argument together: the
    venv's ``python`` symlink points at the builder's interpreter path."""
    text = DOCKERFILE.read_text()
    assert global_args(text) == {"BASE_IMAGE": "python:3.11-slim"}
    assert [s.raw_base for s in parse_dockerfile(text)] == ["${BASE_IMAGE}"] * 2
    local = "localhost/pullsecret-injector-base:0123456789abcdef"
    assert [s.base for s in parse_dockerfile(text, {"BASE_IMAGE": local})] == [local] * 2


def test_the_builder_installs_the_project_into_a_venv_with_the_constraints(
    stages: list[Stage],
) -> None:
    runs = " && ".join(i.args for i in stages[0].all("RUN"))
    assert re.search(r"python -m venv /opt/venv", runs)
    assert re.search(r"/opt/venv/bin/pip install --no-cache-dir -c constraints\.txt \.(\s|$)", runs)


def test_the_final_stage_has_no_build_tools_and_runs_nothing(stages: list[Stage]) -> None:
    final = stages[-1]
    # No RUN at all: nothing is installed (no compiler, no package manager work) at runtime.
    assert final.all("RUN") == []
    copies = [i.flags_and_words() for i in final.all("COPY")]
    assert ({"from": "builder"}, ["/opt/venv", "/opt/venv"]) in copies
    assert ({}, ["gunicorn.conf.py", "/app/gunicorn.conf.py"]) in copies
    # Nothing else from the builder (no /src, no wheel cache, no build dependencies).
    assert [c for c in copies if c[0].get("from")] == [({"from": "builder"}, ["/opt/venv"] * 2)]


def test_the_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert len(users) == 1
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[0].args), users[0].args
    # USER is the last thing that matters before the command: no root step after it.
    keywords = [i.keyword for i in stages[-1].instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_ports_environment_and_command_match_the_chart(stages: list[Stage]) -> None:
    final = stages[-1]
    assert [i.args for i in final.all("EXPOSE")] == ["8443 8080"]
    assert final_command(stages) == ["gunicorn", "--config", "/app/gunicorn.conf.py"]
    assert not final.all("ENTRYPOINT"), "the chart's `command` would replace it anyway"
    env = final.env()
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root filesystem
    assert env["TMPDIR"] == "/tmp"
    assert env["HOME"] == "/tmp"
    assert [i.args for i in final.all("WORKDIR")] == ["/app"]


# -- .dockerignore ------------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(exclude?, pattern) in order; the last matching pattern decides, as in Docker."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((not negated, line.lstrip("!").strip("/")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")
        return any(_matches(tail, "/".join(parts[i:])) for i in range(len(parts)))
    parts = path.split("/")
    # A pattern matching a directory also matches everything below it.
    return any(fnmatchcase("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))


def in_build_context(path: str) -> bool:
    included = True
    for exclude, pattern in dockerignore_patterns():
        if _matches(pattern, path):
            included = not exclude
    return included


def test_dockerignore_keeps_every_copied_file_and_nothing_else(stages: list[Stage]) -> None:
    sources = []
    for stage in stages:
        for copy in stage.all("COPY"):
            flags, words = copy.flags_and_words()
            if "from" not in flags:
                sources += words[:-1]
    for source in sources:
        root = REPO / source
        files = [root] if root.is_file() else list(root.rglob("*.py"))
        assert files, source
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert in_build_context(relative), f"{relative} is copied but .dockerignore drops it"
    for unwanted in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/packaging/test_dockerfile.py",
        "charts/pullsecret-injector/values.yaml",
        "tools/build-control-plane.sh",
        "tools/build-image.sh",
        "webhook/__pycache__/app.cpython-311.pyc",
        "Dockerfile",
    ):
        assert not in_build_context(unwanted), unwanted


def test_the_allow_list_is_plain_paths_the_image_build_can_hash() -> None:
    """tools/build-image.sh keys its cache on the files under the ``!path`` lines; a glob there
    would make it hash the wrong set and reuse a stale image."""
    allowed = [pattern for exclude, pattern in dockerignore_patterns() if not exclude]
    assert allowed
    for pattern in allowed:
        assert re.fullmatch(r"[\w.-]+", pattern), pattern
        assert (REPO / pattern).exists(), pattern


# -- the command, with the project's venv (fast) ------------------------------------------------


def fake_kubeconfig(directory: Path) -> Path:
    """A kubeconfig for an API server that is not there: the app loads, its watches just retry
    in daemon threads until gunicorn exits after --print-config."""
    path = directory / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    return path


def run_command(
    argv: list[str], env: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_effective_config(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = {
        key.strip(): value.strip()
        for key, sep, value in (line.partition("=") for line in result.stdout.splitlines())
        if sep == "="
    }
    assert config["wsgi_app"] == "webhook.app:create_app()"
    assert config["bind"] == "['0.0.0.0:8443']"
    assert config["workers"] == "2"
    assert config["threads"] == "4"
    assert config["worker_class"] == "webhook.http.worker.WebhookWorker"
    assert config["graceful_timeout"] == "20"
    assert config["certfile"] == "/tls/tls.crt"
    assert config["keyfile"] == "/tls/tls.key"
    assert config["accesslog"] == "None"  # PSI_ACCESS_LOG=true turns it on


def test_the_command_loads_config_and_app_with_the_project_venv(
    stages: list[Stage], tmp_path: Path
) -> None:
    argv = final_command(stages)
    argv = [str(VENV_BIN / argv[0]), *(a.replace("/app/", f"{REPO}/") for a in argv[1:])]
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "PSI_KUBECONFIG": str(fake_kubeconfig(tmp_path)),
        **PSI_ENV,
    }
    assert_effective_config(run_command([*argv, "--print-config"], env, tmp_path))


def test_an_unknown_psi_variable_stops_the_command(stages: list[Stage], tmp_path: Path) -> None:
    argv = final_command(stages)
    argv = [str(VENV_BIN / argv[0]), *(a.replace("/app/", f"{REPO}/") for a in argv[1:])]
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        **PSI_ENV,
        "PSI_WORKER": "3",
    }
    result = run_command([*argv, "--check-config"], env, tmp_path)
    assert result.returncode != 0
    assert "unknown setting(s): PSI_WORKER" in result.stderr


# -- the install and command lines, replayed in a fresh venv ------------------------------------


class Rootfs:
    """Image paths (``/opt/venv``, ``/src``, ``/app``, ``/tmp``) mapped under a temp dir."""

    def __init__(self, root: Path, image_dirs: set[str]) -> None:
        self.root = root
        # Longest first, so /opt/venv/bin is not mapped as /opt + ...
        self.image_dirs = sorted(image_dirs, key=len, reverse=True)

    def host(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def translate(self, text: str) -> str:
        pattern = "|".join(re.escape(d) for d in self.image_dirs)
        return re.sub(
            rf"(?<![\w./-])({pattern})(?=[/\s\"':]|$)", lambda m: str(self.host(m[1])), text
        )


def _image_dirs(stages: list[Stage]) -> set[str]:
    dirs = {"/tmp"}
    for stage in stages:
        dirs |= {i.args for i in stage.all("WORKDIR")}
        env = stage.env()
        if "VIRTUAL_ENV" in env:
            dirs.add(env["VIRTUAL_ENV"])
    return dirs


def _copy_from_context(stage: Stage, rootfs: Rootfs, workdir: str) -> None:
    for copy in stage.all("COPY"):
        flags, words = copy.flags_and_words()
        if "from" in flags:
            continue  # same absolute paths in both stages here: already in place
        *sources, dest = words
        target = rootfs.host(dest if dest.startswith("/") else f"{workdir}/{dest}")
        for source in sources:
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target if dest.endswith("/") else target / origin.name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True,
                )
            else:
                destination = target / origin.name if dest.endswith("/") else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination)


def _python_shim(directory: Path) -> Path:
    """``python`` on PATH is the base interpreter (python:3.11-slim), not the project venv."""
    directory.mkdir()
    base = Path(getattr(sys, "_base_executable", sys.executable))
    (directory / "python").symlink_to(base)
    return directory


def test_the_dockerfile_install_and_command_lines_work_in_a_fresh_venv(
    stages: list[Stage], tmp_path: Path
) -> None:
    builder, final = stages
    rootfs = Rootfs(tmp_path / "rootfs", _image_dirs(stages))
    for directory in rootfs.image_dirs:
        rootfs.host(directory).mkdir(parents=True, exist_ok=True)
    shim = _python_shim(tmp_path / "shim")
    # Proxy, index and certificate settings of this machine reach pip, nothing else does.
    passthrough = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "HTTP", "NO_"))}
    passthrough |= {k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")}

    # builder stage: WORKDIR, COPY from the context, then every RUN line, in order.
    workdir = "/"
    env = {
        "PATH": f"{shim}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(rootfs.host("/tmp")),
        **passthrough,
    }
    env |= {k: rootfs.translate(v) for k, v in builder.env().items()}
    for instruction in builder.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = instruction.args
        elif instruction.keyword == "COPY":
            _copy_from_context(Stage("", "", [instruction]), rootfs, workdir)
        elif instruction.keyword == "RUN":
            result = subprocess.run(
                ["sh", "-ec", rootfs.translate(instruction.args)],
                cwd=rootfs.host(workdir),
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, (instruction.args, result.stderr[-4000:])

    # The final stage has the venv but not the source tree.
    shutil.rmtree(rootfs.host("/src"))
    _copy_from_context(final, rootfs, "/")
    venv = rootfs.host(final.env()["VIRTUAL_ENV"])
    check = run_command([str(venv / "bin" / "pip"), "check"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert check.returncode == 0, check.stdout
    where = run_command(
        [str(venv / "bin" / "python"), "-c", "import webhook, certs; print(webhook.__file__)"],
        {"PATH": "/usr/bin:/bin"},
        tmp_path,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    # The final CMD, with the final stage's ENV (PATH=/opt/venv/bin:$PATH) and the chart's env.
    final_env = {
        k: rootfs.translate(v.replace("$PATH", "/usr/bin:/bin")) for k, v in final.env().items()
    }
    final_env |= {**PSI_ENV, "PSI_KUBECONFIG": str(fake_kubeconfig(tmp_path))}
    argv = [rootfs.translate(a) for a in final_command(stages)]
    assert shutil.which(argv[0], path=final_env["PATH"]) == str(venv / "bin" / "gunicorn")
    workdir = final.all("WORKDIR")[-1].args
    assert_effective_config(run_command([*argv, "--print-config"], final_env, rootfs.host(workdir)))
    # The controller's command from the same venv.
    controller = run_command(["pullsecret-injector", "controller", "--help"], final_env, tmp_path)
    assert controller.returncode == 0, controller.stderr
