"""A compared revision's images, built from its own tree, and everything of it run in them.

``compare BASE NEW --containers``: nothing of a revision is imported or executed on this host.
Its tree is a copy the suite extracts (:mod:`mnist_suite.revision_tree`); its code becomes a
wheel inside a container of the base image, network off; its images are built from that copy
(its ``docker/Dockerfile``, its lock files, that wheel) and tagged ``mnist-suite:FLAVOUR-SHA12``,
so they never replace the shared ``mnist-suite:FLAVOUR`` images that ``nox -s image`` builds.
A commit's image is a function of the commit, so a tag found later is reused, provided its
``io.mnist-suite.revision`` label holds the same full sha (a tag this code did not make is
refused, never replaced). Its ``plan`` runs in its ``numpy`` image (:data:`PLANNER`), and each
item as ``mnist-suite run …`` in its flavour's image, with the container launcher's confinement
(:func:`mnist_suite.launch.container.confinement`).

What runs on this host is the suite's own code and pip *downloading* (never building) the
wheels a revision's lock pins, each lock first checked to hold nothing but pinned, hashed
requirements, so that no line of it points pip at a file, folder or index of this host.

Why wheels are fetched here, not by the revision's ``tools/images.py``: that tool would run the
revision's code on this host, tags the shared names and fetches every flavour's wheels; here
only the flavours the selected jobs need are built, from wheels already on this machine when
they are there (the checkout's ``build/wheelhouse``, filled by ``nox -s image``, and
``build/ab/wheelhouse``), hash-checked against the revision's own locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mnist_suite.defaults import IMAGE_ID_VARIABLE
from mnist_suite.errors import ConfigError, RevisionError, SuiteError
from mnist_suite.files import read_json
from mnist_suite.launch.container import (
    CONTAINER_GID,
    CONTAINER_UID,
    ENGINE_FAILURES,
    FLAVOURS,
    IMAGE_REPO,
    LOCAL_BASE,
    confinement,
    default_base,
    detect_engine,
    image_exists,
    image_id,
    is_rootless,
    lent_to_container,
    run_argv,
    user_args,
)
from mnist_suite.revision_tree import OWN_FOLDER, read_bytes, regular_file

REVISION_LABEL = "io.mnist-suite.revision"
# The flavour a revision plans in: the smallest image, and planning imports no TensorFlow
# (job modules import it when a run starts), so a tf-only selection costs one small final
# layer more, the numpy stage being the tf image's own first stage.
PLANNER = "numpy"
# Debian bookworm has glibc 2.36: every manylinux wheel up to that tag runs on either base.
WHEEL_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
# The one build backend a revision's wheel is built with, offline: the container has no
# network (pip there cannot reach the index anyway), so the host downloads this wheel, checked
# against its hash. A revision whose build-system needs anything else is refused in one line.
BUILD_TOOL = "setuptools==84.2.1"
BUILD_TOOL_WHEEL = "setuptools-84.2.1-py3-none-any.whl"
BUILD_TOOL_SHA256 = "ca140b45d5325a9478f880e351484f62fef15f336462e449ca0c03c873d589c2"
# Inside the wheel container: the tree is mounted read-only, so it is built from a copy in the
# tmpfs; a venv from the base's own ensurepip; the backend only from /buildtools.
WHEEL_SCRIPT = (
    "cp -R /src /tmp/src && python3 -m venv /tmp/venv && /tmp/venv/bin/python -m pip wheel"
    " --quiet --no-cache-dir --disable-pip-version-check --no-deps --no-index"
    " --find-links /buildtools -w /out /tmp/src"
)
_SHA = re.compile(r"^[0-9a-f]{40}$")
# A lock's requirement: name==version, maybe a marker (no '-': no option can hide in it), hashes.
_PIN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+"
    r"(?:\s*;[\w\s.'\"<>=!~()]+)?"
    r"(?:\s+--hash=sha256:[0-9a-f]{64})+",
    re.ASCII,
)


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


def unpinned_line(text: str) -> str | None:
    """The first requirement of lock ``text`` that is not ``name==version [; marker]`` with
    ``--hash=sha256:…`` options (a path, a URL, an option line such as ``-r``, ``--find-links``
    or ``--index-url``), or None when there is none. Comments stand alone: a ``#`` inside a
    continued requirement counts as not pinned, so no reading of the file differs from pip's."""
    logical = ""
    for line in text.splitlines():
        continued = line.endswith("\\")
        if not logical and not continued and line.strip()[:1] in ("", "#"):
            continue
        if "#" in line:
            return line.strip()
        logical += " " + line.removesuffix("\\")
        if not continued:
            if not _PIN.fullmatch(logical.strip()):
                return logical.strip()
            logical = ""
    return logical.strip() or None


def _label(engine: str, image: str) -> str:
    done = subprocess.run(
        [engine, "image", "inspect", "--format", f'{{{{index .Labels "{REVISION_LABEL}"}}}}',
         image], capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _volume(source: Path, target: str, mode: str = "") -> list[str]:
    # ``-v SRC:DST:OPTIONS``: a ':' or ',' in SRC would be read as more of the spec.
    if any(c in str(source) for c in ":,\n"):
        raise ConfigError(f"{source}: a mounted path cannot contain ':' or ','")
    return ["-v", f"{source}:{target}{':' + mode if mode else ''}"]


class RevisionImages:
    """One revision's images: found or built, then its plan and its items run in them.

    ``revision`` is an :class:`mnist_suite.ab.Revision` whose ``path`` is the suite's copy of
    its tree (:func:`mnist_suite.revision_tree.extracted`); ``shared`` are folders of wheels to
    take before the package index; ``work`` a folder of the suite's for the build backend's
    wheel and the containers' output; ``log`` gets the output of builds and containers.
    """

    def __init__(self, engine: str, revision, shared: list[Path], log: Path, work: Path):
        self.engine, self.revision, self.shared, self.log = engine, revision, shared, log
        self.work = work
        self.ids: dict[str, str] = {}
        self.mounted: dict | None = None  # engine user options and the data to mount
        self._count = 0
        self._rootless: bool | None = None

    # --- building ---------------------------------------------------------------------------

    def missing(self, flavours: list[str]) -> list[str]:
        """The flavours whose images are still to build; a :class:`ConfigError` naming what
        the tree lacks to build them, or a lock that is more than pinned, hashed wheels."""
        tree = self.revision.path
        todo = [
            f for f in flavours if not image_exists(self.engine, revision_tag(f, self.revision.sha))
        ]
        needed = ["docker/Dockerfile", "pyproject.toml"] if todo else []
        needed += [f"docker/requirements-{f}.txt" for f in todo]
        lacking = [name for name in needed if regular_file(tree, name) is None]
        if lacking:
            raise ConfigError(
                f"{self.revision}: no images can be built from its tree (no {', '.join(lacking)})"
            )
        for flavour in todo:
            name = f"docker/requirements-{flavour}.txt"
            line = unpinned_line((read_bytes(tree, name) or b"").decode("utf-8", "replace"))
            if line is not None:
                raise ConfigError(
                    f"{self.revision}: {name} holds {line[:80]!r}, not a pinned, hashed wheel; "
                    "pip on this host takes nothing else from a compared revision"
                )
        return todo

    def ensure(self, flavours: list[str], say: Callable[[str], None]) -> None:
        """Reuse or build each flavour's image; a refusal names the revision and why."""
        flavours = [f for f in flavours if f not in self.ids]
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
        # The copy holds no `build` of the revision's: this folder is the suite's.
        own = tree / OWN_FOLDER
        own.mkdir(exist_ok=True)
        if not (own / "suite").is_dir():
            # Before the wheelhouse: the wheel's container copies the whole tree into its tmpfs.
            self._wheel(own / "suite")
        self._wheelhouse(tree / f"docker/requirements-{flavour}.txt", own / "wheelhouse")
        argv = [self.engine, "build", "--network", "none", "-f", str(tree / "docker/Dockerfile"),
                "-t", tag, "--label", f"{REVISION_LABEL}={self.revision.sha}",
                "--build-arg", f"FLAVOUR={flavour}", "--build-arg", f"IMAGE_NAME={tag}",
                "--build-arg", f"GIT_COMMIT={self.revision.sha}",
                "--build-arg", f"VERSION={_version(tree)}"]  # fmt: skip
        # Else the revision's Dockerfile keeps its own default base.
        base = os.environ.get("BASE_IMAGE") or (
            LOCAL_BASE if image_exists(self.engine, LOCAL_BASE) else ""
        )
        if base:
            argv += ["--build-arg", f"BASE_IMAGE={base}"]
            argv += ["--build-arg", f"BASE_ID={image_id(self.engine, base)}"]
        self._step(f"building image {tag}", [*argv, str(tree)])

    def _wheel(self, into: Path) -> None:
        """The revision's code as a wheel in ``into``, built in a container of the base image
        with the network off: its build backend (a ``setup.py``, say) never runs here."""
        tools = self._build_tools()
        out = Path(tempfile.mkdtemp(prefix="wheel-", dir=self.work))
        try:
            with self._writable(out) as user:
                self._step("building its wheel", [
                    self.engine, "run", "--rm", "--init", *confinement(), *user, "-e", "HOME=/tmp",
                    *_volume(self.revision.path, "/src", "ro"),
                    *_volume(tools, "/buildtools", "ro"), *_volume(out, "/out"),
                    "--entrypoint", "/bin/sh", default_base(self.engine), "-ec", WHEEL_SCRIPT,
                ])  # fmt: skip
            # Written by the revision's backend: only regular files are taken, never a link.
            wheels = [p for p in out.iterdir()
                      if p.suffix == ".whl" and stat.S_ISREG(p.lstat().st_mode)]  # fmt: skip
            if not wheels:
                raise ImageError(f"{self.revision}: building its wheel gave no wheel; "
                                 f"its output is in {self.log}")  # fmt: skip
            into.mkdir()
            for wheel in wheels:
                shutil.copyfile(wheel, into / wheel.name, follow_symlinks=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def _build_tools(self) -> Path:
        """A folder holding only :data:`BUILD_TOOL`'s wheel, downloaded once, hash-checked."""
        tools = self.work / "buildtools"
        wheel = tools / BUILD_TOOL_WHEEL
        if not (wheel.is_file() and _sha256(wheel) == BUILD_TOOL_SHA256):
            tools.mkdir(parents=True, exist_ok=True)
            wheel.unlink(missing_ok=True)
            self._step("fetching its build backend", [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", BUILD_TOOL, "-d", str(tools),
            ])  # fmt: skip
            if not wheel.is_file() or _sha256(wheel) != BUILD_TOOL_SHA256:
                wheel.unlink(missing_ok=True)
                raise ImageError(f"{self.revision}: {BUILD_TOOL_WHEEL} from the package index "
                                 f"does not have the sha256 {BUILD_TOOL_SHA256}")  # fmt: skip
        os.chmod(tools, 0o755)  # read by the container's user
        os.chmod(wheel, 0o644)
        return tools

    def _wheelhouse(self, lock: Path, wheels: Path) -> None:
        """``wheels`` holding every wheel of ``lock``: linked from the shared folders, then
        checked offline against the lock's hashes; what is missing comes from the index and is
        kept in the last shared folder for the next revision. Downloads only: with
        ``--only-binary`` pip builds nothing, so no code of a package runs here."""
        _link_wheels(self.shared, wheels)
        platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    *platforms, "--require-hashes", "-r", str(lock), "-d", str(wheels)]  # fmt: skip
        if self._call([*download, "--no-index", "--find-links", str(wheels)]) == 0:
            return
        self._step("fetching its wheels", download)
        _link_wheels([wheels], self.shared[-1])

    # --- planning ---------------------------------------------------------------------------

    def plan(self, arguments: list[str], say: Callable[[str], None]) -> list | None:
        """The items of ``mnist-suite plan ARGUMENTS`` as the revision's :data:`PLANNER` image
        saves them (None: no plan saved); a failed plan's own one-line reason as a
        :class:`ConfigError`."""
        self.ensure([PLANNER], say)
        image = revision_tag(PLANNER, self.revision.sha)
        out = Path(tempfile.mkdtemp(prefix="plan-", dir=self.work))
        try:
            with self._writable(out) as user:
                code = self._call([
                    self.engine, "run", "--rm", "--init", *confinement(), *user,
                    *_volume(out, "/out"), image, "plan", *arguments, "--save", "/out/plan.json",
                ])  # fmt: skip
            if code in ENGINE_FAILURES:
                raise ImageError(f"{self.revision}: planning in {image} failed (exit {code}): "
                                 f"{self._said()}; its output is in {self.log}")  # fmt: skip
            if code:
                # Its own one-line reason: an unknown job, a config field it does not have, …
                raise ConfigError(f"{self.revision}: {self._said().removeprefix('error: ')}")
            # Written by the revision's code: a link there is not read.
            doc = read_json(out / "plan.json", follow=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return doc.get("items") if isinstance(doc, dict) else None

    @contextlib.contextmanager
    def _writable(self, folder: Path) -> Iterator[list[str]]:
        """Engine user options under which a container writes ``folder``: never root inside
        (for root, the folder is lent to the images' user meanwhile)."""
        if self._rootless is None:
            self._rootless = is_rootless(self.engine)
        user = user_args(self._rootless)
        if user:
            yield user
            return
        with lent_to_container(folder):
            yield ["--user", f"{CONTAINER_UID}:{CONTAINER_GID}"]

    # --- output -----------------------------------------------------------------------------

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

    def _said(self) -> str:
        """The last ``error:`` line of the log's tail (a command's one-line reason)."""
        tail = self._tail()
        errors = [ln.strip() for ln in tail.splitlines() if ln.startswith("error:")]
        return errors[-1][:300] if errors else _last_line(tail)

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
    lock files of ``flavours`` (read without following a link). Runs made in images are kept
    under ``.images-KEY`` in the runs folder: a run's id holds its job's code, not its
    libraries, so two revisions with the same job code but other locks must not share runs, nor
    may runs made outside images."""
    digest = hashlib.sha256()
    for name in ["docker/Dockerfile", *(f"docker/requirements-{f}.txt" for f in flavours)]:
        content = read_bytes(tree, name) or b""
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:12]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
    text = (read_bytes(tree, "pyproject.toml") or b"").decode("utf-8", "replace")
    try:
        version = str(tomllib.loads(text)["project"]["version"])
    except (KeyError, TypeError, tomllib.TOMLDecodeError):
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
