"""The Dockerfile, checked without a Docker engine.

There is no Docker engine on the machines this runs on, so the image is never
built here. Instead: (a) the Dockerfile is parsed and the properties the
production image must have are asserted instruction by instruction, following
the final stage's chain of ``FROM`` stages; (b) its build commands, read from
the Dockerfile itself, are replayed in throwaway directories: ``pip wheel``
over a build context filtered by .dockerignore, then ``pip install`` of those
wheels (``--no-index``) into a fresh virtualenv, whose ``ecsop`` must run.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def chain(stages: list[Stage], stage: Stage) -> list[Stage]:
    """``stage`` preceded by the stages it is built ``FROM``, outermost first."""
    by_name = {s.name: s for s in stages}
    out = [stage]
    while out[0].base in by_name:
        out.insert(0, by_name[out[0].base])
    return out


STAGES = parse(DOCKERFILE.read_text())
FINAL = chain(STAGES, STAGES[-1])
FINAL_INSTRUCTIONS = [i for stage in FINAL for i in stage.instructions]


def last(keyword: str) -> str:
    values = [value for kw, value in FINAL_INSTRUCTIONS if kw == keyword]
    assert values, f"the final stage has no {keyword}"
    return values[-1]


def runs() -> list[str]:
    return [value for kw, value in FINAL_INSTRUCTIONS if kw == "RUN"]


def env() -> dict[str, str]:
    out: dict[str, str] = {}
    for keyword, value in FINAL_INSTRUCTIONS:
        if keyword == "ENV":
            out.update(dict(token.split("=", 1) for token in shlex.split(value)))
    return out


def test_multi_stage_and_the_final_stage_does_not_build() -> None:
    assert len(STAGES) >= 2
    assert STAGES[-1].name == "runtime"
    assert all(stage.name not in {"build", "build-sandbox"} for stage in FINAL)
    base = FINAL[0].base
    assert re.fullmatch(r"\$\{PYTHON_IMAGE\}|python:3\.1[1-9][.\w-]*-slim[\w.-]*", base), base
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), re.M)
    assert default and re.fullmatch(
        r"python:3\.1[1-9]-slim(-\w+)?@sha256:[0-9a-f]{64}", default.group(1)
    )


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _arg_defaults() -> dict[str, tuple[str, str]]:
    """ARG name -> (default, the comment lines just above it)."""
    out: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("#"):
            comment.append(line)
            continue
        match = re.match(r"ARG (\w+)=(\S+)", line)
        if match:
            out[match.group(1)] = (match.group(2), "\n".join(comment))
        comment = []
    return out


def test_every_base_image_is_pinned_by_digest_with_its_tag_and_how_to_refresh_it() -> None:
    stages = {stage.name for stage in STAGES}
    args = _arg_defaults()
    for stage in STAGES:
        if stage.base in stages:
            continue  # built from an earlier stage of this file
        name = re.fullmatch(r"\$\{(\w+)\}", stage.base)
        image, comment = args[name.group(1)] if name else (stage.base, "")
        assert DIGEST.search(image), f"stage {stage.name}: {image} is not pinned by digest"
        tag = image.split("@")[0]
        assert tag in comment, f"the comment above the pin names the tag {tag}"
        assert "imagetools inspect" in comment or "crane digest" in comment
        assert "repo-info" in comment, "the comment says where the digest came from"


def test_runs_as_a_fixed_numeric_non_root_user() -> None:
    user = last("USER")
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric for runAsNonRoot: {user}"
    assert all(int(part) != 0 for part in user.split(":"))


def test_read_only_root_filesystem_friendly_environment() -> None:
    variables = env()
    assert variables["PYTHONDONTWRITEBYTECODE"] == "1"
    assert variables["HOME"] == "/tmp"
    assert last("WORKDIR") == "/tmp"


def test_exposes_the_metrics_port_and_checks_healthz_with_python() -> None:
    port = env()["ECSOP_METRICS_PORT"]
    assert port == "9100" and last("EXPOSE") == port
    healthcheck = last("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "ECSOP_METRICS_PORT" in command[2]
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


def test_entrypoint_is_ecsop_run_in_exec_form() -> None:
    assert json.loads(last("ENTRYPOINT")) == ["ecsop", "run"]


def test_no_caches_and_no_build_tools_in_the_final_image() -> None:
    for command in runs():
        for pip in re.findall(r"pip install[^&;]*", command):
            assert "--no-cache-dir" in pip, pip
            assert "--no-index" in pip, "the final stage installs built wheels only"
        if "apt-get install" in command:
            assert "--no-install-recommends" in command
            assert "rm -rf /var/lib/apt/lists/*" in command
            installed = re.search(r"apt-get install(.*?)(&&|$)", command).group(1)  # type: ignore[union-attr]
            packages = {t for t in installed.split() if not t.startswith("-")}
            assert packages == {"git"}, f"only git is installed: {packages}"
        assert not re.search(r"\b(gcc|build-essential|make|pip wheel)\b", command), command
    assert any("pip uninstall" in command for command in runs())
    # Dependencies come from the lock, hash-checked; ecsop's own wheel alone has no hash.
    installs = [p for c in runs() for p in re.findall(r"pip install[^&;]*", c)]
    assert any(re.search(r"--require-hashes -r \S*requirements/runtime\.txt", p) for p in installs)
    assert all("--require-hashes" in p or "--no-deps" in p for p in installs), installs


def test_the_build_stage_fetches_dependencies_by_hash_only() -> None:
    build = next(stage for stage in STAGES if stage.name == "build")
    wheels = [v for kw, v in build.instructions if kw == "RUN" and "pip wheel" in v]
    assert wheels[0] == (
        "pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/runtime.txt"
    )
    assert wheels[1] == "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ."
    for lock in ("runtime", "sandbox", "test"):
        text = (ROOT / "requirements" / f"{lock}.txt").read_text()
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", text, re.M)
        assert pins and text.count("--hash=sha256:") >= len(pins), lock
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        assert "--index-url" not in body and "--find-links" not in body, "no local index leaks"
    assert (ROOT / "tools" / "lock").stat().st_mode & 0o111, "tools/lock regenerates them"
    # Wheels reach the final stage through a bind mount, never a COPY layer.
    assert not [v for kw, v in FINAL_INSTRUCTIONS if kw in {"COPY", "ADD"}]


def test_git_is_installed_for_the_spec_commit() -> None:
    assert any(re.search(r"apt-get install .*\bgit\b", command) for command in runs())


def _dockerignore_allows(relative: str) -> bool:
    allowed = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        recursive = "**" in pattern and fnmatch.fnmatch(relative, pattern.replace("**/", "*"))
        if recursive or fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            allowed = negate
    return allowed


def _copy_sources() -> list[str]:
    sources = []
    for stage in STAGES:
        for keyword, value in stage.instructions:
            if keyword == "COPY" and "--from" not in value:
                sources.extend(value.split()[:-1])
    return sources


def test_copied_sources_exist_and_pass_dockerignore() -> None:
    for source in _copy_sources():
        assert (ROOT / source).exists(), source
        assert _dockerignore_allows(source), f".dockerignore excludes {source}"
    assert not _dockerignore_allows(".venv")
    assert not _dockerignore_allows("tests/e2e/conftest.py")
    assert not _dockerignore_allows("operator/ecsop/__pycache__")


def _context(target: Path) -> Path:
    """The build context as Docker would send it (.dockerignore applied)."""
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and _dockerignore_allows(relative) and "__pycache__" not in relative:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
    return target


def _pip_commands(stage: str, verb: str) -> list[list[str]]:
    """The ``pip wheel`` / ``pip install`` commands of ``stage``, in order, as written there."""
    found = []
    for instruction in next(s for s in STAGES if s.name == stage).instructions:
        if instruction[0] == "RUN":
            for part in re.split(r"&&", instruction[1]):
                words = shlex.split(part)
                if "pip" in words and verb in words:
                    found.append(words[words.index("pip") :])
    assert found, f"no pip {verb} in stage {stage}"
    return found


@pytest.mark.timeout(240)
def test_build_steps_replayed_in_a_throwaway_virtualenv(tmp_path: Path) -> None:
    """``pip wheel .`` of the build stage, then the runtime stage's offline install."""
    context = _context(tmp_path / "context")
    assert {p.name for p in context.iterdir()} == {
        "pyproject.toml",
        "README.md",
        "requirements",
        "operator",
    }
    wheels = tmp_path / "wheels"
    for build in _pip_commands("build", "wheel"):
        build = [a.replace("/wheels", str(wheels)) for a in build]
        subprocess.run(
            [sys.executable, "-m", *build],
            cwd=context,
            check=True,
            capture_output=True,
            timeout=200,
        )
    assert list(wheels.glob("ecsop-*.whl"))

    runtime = tmp_path / "runtime"
    venv.EnvBuilder(with_pip=False).create(runtime)
    python = runtime / "bin" / "python"
    for install in _pip_commands("runtime", "install"):
        install = [
            a.replace("/wheels", str(wheels)).replace(
                "/requirements", str(context / "requirements")
            )
            for a in install
        ]
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), *install[1:]],
            check=True,
            capture_output=True,
            timeout=200,
        )
    version = subprocess.run(
        [runtime / "bin" / "ecsop", "--version"],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert version.stdout.startswith("ecsop ")
    # Nothing from the sandbox extra (moto) reaches the production image.
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "ecsop" in names and "moto" not in names
