"""A compared revision's images, built from its own tree, and its items run in them.

``compare BASE NEW --containers``: each revision's images are built from its worktree (its
``docker/Dockerfile``, its lock files, its own code as a wheel) and tagged
``mnist-suite:FLAVOUR-SHA12``, so they never replace the shared ``mnist-suite:FLAVOUR`` images
that ``nox -s image`` builds. A commit's image is a function of the commit, so a tag found later
is reused, provided its ``io.mnist-suite.revision`` label holds the same full sha (a tag this
code did not make is refused, never replaced). Each item then runs as ``mnist-suite run …`` in
its revision's image, with the container launcher's confinement
(:func:`mnist_suite.launch.container.run_argv`).

Why wheels are fetched here, not by the revision's ``tools/images.py``: that tool tags the
shared names and fetches every flavour's wheels; here only the flavours the selected jobs need
are built, from wheels already on this machine when they are there (the checkout's
``build/wheelhouse``, filled by ``nox -s image``, and ``build/ab/wheelhouse``), hash-checked
against the revision's own locks.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

from mnist_suite.ab import RevisionError
from mnist_suite.defaults import IMAGE_ID_VARIABLE
from mnist_suite.errors import ConfigError, SuiteError
from mnist_suite.launch.container import (
    FLAVOURS,
    IMAGE_REPO,
    detect_engine,
    image_exists,
    image_id,
    run_argv,
)

REVISION_LABEL = "io.mnist-suite.revision"
# The local base that `nox -s base_image` builds where no image can be pulled; elsewhere the
# revision's Dockerfile keeps its own default base.
LOCAL_BASE = "localhost/mnist-suite-base"
# Debian bookworm has glibc 2.36: every manylinux wheel up to that tag runs on either base.
WHEEL_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
_SHA = re.compile(r"^[0-9a-f]{40}$")


class ImageError(RevisionError):
    """The images of a revision cannot be built on this machine: no engine, a failed fetch or
    build. Exit 1, a fault of the machine or of the revision's build, as a revision that fails
    to run; a tree with nothing to build from is a :class:`ConfigError` (exit 2: the request
    cannot be met for that input, and nothing ran)."""


def revision_tag(flavour: str, sha: str) -> str:
    """``mnist-suite:FLAVOUR-SHA12``: made only from a known flavour and a full git sha."""
    if flavour not in FLAVOURS or not _SHA.fullmatch(sha):
        raise ConfigError(f"no image tag for flavour {flavour!r} of commit {sha!r}")
    return f"{IMAGE_REPO}:{flavour}-{sha[:12]}"


def flavours_of(items: Iterable[dict]) -> list[str]:
    """The image flavours a revision's plan items need (``tf`` runs every job)."""
    found = {item.get("flavour", "tf") for item in items}
    return sorted(f if f in FLAVOURS else "tf" for f in found)


def _label(engine: str, image: str) -> str:
    done = subprocess.run(
        [engine, "image", "inspect", "--format", f'{{{{index .Labels "{REVISION_LABEL}"}}}}',
         image], capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


class RevisionImages:
    """One revision's images: found or built, then its items run in them.

    ``revision`` is an :class:`mnist_suite.ab.Revision` (role, name, sha, worktree path);
    ``shared`` are folders of wheels to take before the package index; ``log`` gets the output
    of builds and containers.
    """

    def __init__(self, engine: str, revision, shared: list[Path], log: Path):
        self.engine, self.revision, self.shared, self.log = engine, revision, shared, log
        self.ids: dict[str, str] = {}
        self.mounted: dict | None = None  # engine user options and the data to mount
        self._count = 0

    # --- building ---------------------------------------------------------------------------

    def missing(self, flavours: list[str]) -> list[str]:
        """The flavours whose images are still to build; a :class:`ConfigError` naming what
        the tree lacks to build them."""
        todo = [
            f for f in flavours if not image_exists(self.engine, revision_tag(f, self.revision.sha))
        ]
        needed = ["docker/Dockerfile", "pyproject.toml"] if todo else []
        needed += [f"docker/requirements-{f}.txt" for f in todo]
        lacking = [name for name in needed if not (self.revision.path / name).is_file()]
        if lacking:
            raise ConfigError(
                f"{self.revision}: no images can be built from its tree (no {', '.join(lacking)})"
            )
        return todo

    def ensure(self, flavours: list[str], say: Callable[[str], None]) -> None:
        """Reuse or build each flavour's image; a refusal names the revision and why."""
        todo = self.missing(flavours)
        for flavour in flavours:
            tag = revision_tag(flavour, self.revision.sha)
            if flavour not in todo:
                if _label(self.engine, tag) != self.revision.sha:
                    raise ImageError(
                        f"{self.revision}: image {tag} exists but was not built from "
                        f"{self.revision.sha}; compare replaces no image it did not make"
                    )
                say(f"{self.revision}: reusing image {tag}")
            else:
                say(f"{self.revision}: building image {tag} from its tree (log: {self.log})")
                self._build(flavour, tag)
            self.ids[flavour] = image_id(self.engine, tag)

    def _build(self, flavour: str, tag: str) -> None:
        tree = self.revision.path
        self._wheelhouse(tree / f"docker/requirements-{flavour}.txt", tree / "build" / "wheelhouse")
        suite = tree / "build" / "suite"  # inside the worktree compare made: its own to replace
        shutil.rmtree(suite, ignore_errors=True)
        self._step("building its wheel", [sys.executable, "-m", "pip", "wheel", "--quiet",
                   "--no-deps", "-w", str(suite), str(tree)])  # fmt: skip
        argv = [self.engine, "build", "--network", "none", "-f", str(tree / "docker/Dockerfile"),
                "-t", tag, "--label", f"{REVISION_LABEL}={self.revision.sha}",
                "--build-arg", f"FLAVOUR={flavour}", "--build-arg", f"IMAGE_NAME={tag}",
                "--build-arg", f"GIT_COMMIT={self.revision.sha}",
                "--build-arg", f"VERSION={_version(tree)}"]  # fmt: skip
        base = os.environ.get("BASE_IMAGE") or (
            LOCAL_BASE if image_exists(self.engine, LOCAL_BASE) else ""
        )
        if base:
            argv += ["--build-arg", f"BASE_IMAGE={base}"]
            argv += ["--build-arg", f"BASE_ID={image_id(self.engine, base)}"]
        self._step(f"building image {tag}", [*argv, str(tree)])

    def _wheelhouse(self, lock: Path, wheels: Path) -> None:
        """``wheels`` holding every wheel of ``lock``: linked from the shared folders, then
        checked offline against the lock's hashes; what is missing comes from the index and is
        kept in the last shared folder for the next revision."""
        _link_wheels(self.shared, wheels)
        platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    *platforms, "--require-hashes", "-r", str(lock), "-d", str(wheels)]  # fmt: skip
        if self._call([*download, "--no-index", "--find-links", str(wheels)]) == 0:
            return
        self._step("fetching its wheels", download)
        _link_wheels([wheels], self.shared[-1])

    def _call(self, argv: list[str]) -> int:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as out:
            out.write(f"=== {' '.join(argv)}\n")
            out.flush()
            try:
                return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
            except OSError as exc:
                out.write(f"{exc}\n")
                return 127

    def _step(self, what: str, argv: list[str]) -> None:
        code = self._call(argv)
        if code:
            raise ImageError(
                f"{self.revision}: {what} failed (exit {code}): {_last_line(self._tail())}; "
                f"its output is in {self.log}"
            )

    def _tail(self) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- running ----------------------------------------------------------------------------

    def run(self, argv: list[str], item: dict, runs: Path) -> int:
        """``mnist-suite ARGV`` in the item's image, ``runs`` mounted as the runs folder."""
        assert self.mounted is not None, "mount the runs folder first"
        flavour = flavours_of([item])[0]
        self._count += 1
        name = f"mnist-suite-ab-{os.getpid()}-{self.revision.sha[:12]}-{self._count}"
        image = revision_tag(flavour, self.revision.sha)
        command = run_argv(
            self.engine, image, argv,
            data=self.mounted["data"], runs=runs, user=self.mounted["user"], name=name,
            env={IMAGE_ID_VARIABLE: self.ids.get(flavour, "")},
        )  # fmt: skip
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as out:
            out.write(f"=== mnist-suite {' '.join(argv)} (in {image})\n")
            out.flush()
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            try:
                return child.wait()
            except KeyboardInterrupt:
                # The container records its run as interrupted; stop it if it lingers.
                subprocess.run([self.engine, "stop", "-t", "20", name], capture_output=True)
                child.wait()
                raise


def environment_key(tree: Path, flavours: list[str]) -> str:
    """What a revision's images run the jobs with, as 12 hex digits: its Dockerfile and the
    lock files of ``flavours``. Runs made in images are kept under ``.images-KEY`` in the runs
    folder: a run's id holds its job's code, not its libraries, so two revisions with the same
    job code but other locks must not share runs, nor may runs made outside images."""
    digest = hashlib.sha256()
    for name in ["docker/Dockerfile", *(f"docker/requirements-{f}.txt" for f in flavours)]:
        try:
            content = (tree / name).read_bytes()
        except OSError:
            content = b""
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:12]


def _link_wheels(folders: list[Path], into: Path) -> None:
    """Hard links (copies across file systems) of the wheels in ``folders`` that ``into`` lacks;
    every one is checked against a lock's hashes before use."""
    into.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for wheel in folder.glob("*.whl") if folder.is_dir() else ():
            target = into / wheel.name
            if target.exists():
                continue
            try:
                os.link(wheel, target)
            except OSError:
                shutil.copy2(wheel, target)


def _version(tree: Path) -> str:
    try:
        with open(tree / "pyproject.toml", "rb") as f:
            version = str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return "0.0.0"
    return version if re.fullmatch(r"[0-9A-Za-z.+!-]{1,40}", version) else "0.0.0"


def engine_for(revision) -> str:
    """The container engine, or an :class:`ImageError` naming the revision."""
    try:
        engine = detect_engine()
    except SuiteError as exc:
        raise ImageError(f"{revision}: no images can be built: {exc}") from None
    if engine is None:
        raise ImageError(
            f"{revision}: no images can be built: no container engine (install podman or "
            "docker, or set CONTAINER_ENGINE)"
        )
    return engine
