"""Build the suite's images: a repository tool, not part of the installed package.

    python tools/images.py engine              # the detected engine, or none
    python tools/images.py base [--force]      # Debian bookworm base with debootstrap (root)
    python tools/images.py build [FLAVOUR…]    # wheelhouse, suite wheel, numpy/tf/bench images
    python tools/images.py lock-input numpy|bench

docker/Dockerfile explains the stages. Every dependency comes from the hash-pinned locks in
docker/ as wheels downloaded here into build/wheelhouse/; the build itself runs with the network
off. Needs only the standard library (``nox -s image`` runs it without a venv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder is first on sys.path; the suite's source is one level up.
sys.path.insert(0, str(ROOT))

from mnist_suite.errors import SuiteError  # noqa: E402
from mnist_suite.launch.container import (  # noqa: E402
    FLAVOURS,
    default_base,
    detect_engine,
    image_exists,
    image_id,
    image_name,
    require_engine,
)
from mnist_suite.launch.container import LOCAL_BASE as BASE_NAME  # noqa: E402

BUILD = ROOT / "build"
WHEELHOUSE = BUILD / "wheelhouse"
SUITE_WHEELS = BUILD / "suite"
ROOTFS = BUILD / "rootfs"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
PODMAN_CONF = ROOT / "docker" / "containers.conf"
LOCKS = {flavour: ROOT / "docker" / f"requirements-{flavour}.txt" for flavour in FLAVOURS}
LOCK_INPUTS = {
    flavour: ROOT / "docker" / f"requirements-{flavour}.in" for flavour in ("numpy", "bench")
}

DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian bookworm has glibc 2.36: every manylinux wheel up to that tag runs on either base.
WHEEL_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
TF_PACKAGES = ("tensorflow", "tensorflow-cpu")
# What the bench image adds to the tf image, taken from the project's dev extra.
BENCH_PACKAGES = ("pytest", "pytest-benchmark")


def use_repo_podman_conf(env: dict[str, str] | None = None) -> bool:
    """Point ``CONTAINERS_CONF`` at the repo's settings when Podman would otherwise fail here.

    Podman on these machines needs runc (crun cannot handle hybrid cgroups) and default ulimits
    at or below the host's hard limits; the repo's containers.conf sets both. It is used only if
    the variable is unset and runc is installed, so a user's own configuration always wins.
    """
    env = os.environ if env is None else env
    if env.get("CONTAINERS_CONF") or not shutil.which("podman") or not shutil.which("runc"):
        return False
    env["CONTAINERS_CONF"] = str(PODMAN_CONF)
    return True


def _run(argv: Sequence[str | Path], **kwargs) -> None:
    print("$ " + " ".join(map(str, argv)), flush=True)
    code = subprocess.run([str(a) for a in argv], **kwargs).returncode
    if code != 0:
        raise SuiteError(
            f"{Path(str(argv[0])).name} exited {code}: {' '.join(map(str, argv[:4]))} …"
        )


def image_size_mb(engine: str, image: str) -> float:
    found = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True
    )
    if found.returncode != 0:
        raise SuiteError(f"no image {image}")
    return round(int(found.stdout.strip()) / 1e6, 1)


# --- the base ------------------------------------------------------------------------------


def debian_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = DEBIAN_SUITE) -> str:
    """The Debian archive apt already uses for ``suite`` (``$DEBIAN_MIRROR`` overrides it)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            # deb822 stanzas: "URIs: …" and "Suites: …" lines, separated by blank lines.
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, flags=re.M))
                if (
                    "deb" in fields.get("Types", "").split()
                    and suite in fields.get("Suites", "").split()
                ):
                    return fields.get("URIs", "").split()[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1]
    return DEFAULT_MIRROR


def build_base(engine: str, *, mirror: str | None = None, force: bool = False) -> str:
    """Build ``localhost/mnist-suite-base`` (Debian bookworm + python3) with debootstrap."""
    if image_exists(engine, BASE_NAME) and not force:
        print(f"{BASE_NAME} exists (--force rebuilds it)")
        return BASE_NAME
    if shutil.which("debootstrap") is None:
        raise SuiteError("debootstrap not found (apt-get install debootstrap)")
    mirror = mirror or debian_mirror()
    if ROOTFS.exists():
        shutil.rmtree(ROOTFS)
    ROOTFS.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            DEBIAN_SUITE,
            ROOTFS,
            mirror,
        ]
    )
    # What a slim image leaves out: package caches, docs, translations; and the host's identity.
    for rel in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ):
        target = ROOTFS / rel
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
    for rel in ("etc/hostname", "etc/resolv.conf"):
        (ROOTFS / rel).unlink(missing_ok=True)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        f"LABEL org.opencontainers.image.description=Debian {DEBIAN_SUITE} minbase, python3",
        f"LABEL io.mnist-suite.debian-mirror={mirror}",
    ]
    tar = subprocess.Popen(
        ["tar", "-C", str(ROOTFS), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    argv = [engine, "import", *(a for c in changes for a in ("--change", c)), "-", BASE_NAME]
    print("$ tar -C " + str(ROOTFS) + " -c . | " + " ".join(argv), flush=True)
    imported = subprocess.run(argv, stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise SuiteError(f"importing the base failed: {imported.stderr.strip()[-300:]}")
    shutil.rmtree(ROOTFS)
    print(f"{BASE_NAME}: {image_id(engine, BASE_NAME)}")
    return BASE_NAME


# --- the images ----------------------------------------------------------------------------


def fetch_wheelhouse(python: str = sys.executable) -> None:
    """Download every locked wheel for CPython 3.11 / manylinux x86-64, hash-checked."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    # The bench lock is a superset of the tf lock, itself one of the numpy lock, at the same
    # versions; all three are listed so a lock that drifted still finds its wheels.
    locks = [a for flavour in FLAVOURS for a in ("-r", LOCKS[flavour])]
    _run(
        [
            python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", *platforms,
            "--require-hashes", *locks, "-d", WHEELHOUSE,
        ]
    )  # fmt: skip


def build_suite_wheel(python: str = sys.executable) -> Path:
    """The suite as a wheel (no dependencies: the locks carry those)."""
    shutil.rmtree(SUITE_WHEELS, ignore_errors=True)
    _run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", SUITE_WHEELS, ROOT])
    (wheel,) = SUITE_WHEELS.glob("*.whl")
    return wheel


def git_commit() -> str:
    """HEAD's id, with ``-dirty`` when tracked files differ from it (as ``git describe``)."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def base_id(engine: str, base: str) -> str:
    """The base's content id; a registry base is pulled first (its digest pins what arrives)."""
    if not image_exists(engine, base):
        _run([engine, "pull", base])
    return image_id(engine, base)


def build_argv(engine: str, flavour: str, *, base: str, base_id: str, commit: str) -> list[str]:
    """``ENGINE build`` for one flavour. ``FLAVOUR`` is always passed: Podman 4.3's buildah does
    not resolve ``FROM ${FLAVOUR}-deps`` from an ARG's default value."""
    image = image_name(flavour)
    return [
        engine, "build", "--network", "none", "-f", str(DOCKERFILE), "-t", image,
        "--build-arg", f"FLAVOUR={flavour}", "--build-arg", f"BASE_IMAGE={base}",
        "--build-arg", f"BASE_ID={base_id}", "--build-arg", f"VERSION={project_version()}",
        "--build-arg", f"GIT_COMMIT={commit}", "--build-arg", f"IMAGE_NAME={image}",
    ]  # fmt: skip


def build_images(
    engine: str,
    flavours: Sequence[str] = FLAVOURS,
    *,
    base: str | None = None,
    no_cache: bool = False,
    fetch: bool = True,
) -> dict:
    """Fetch the wheelhouse, build the suite's wheel, then each image with the network off."""
    timings: dict = {}
    start = time.perf_counter()
    if fetch:
        fetch_wheelhouse()
    timings["wheelhouse_s"] = round(time.perf_counter() - start, 1)
    build_suite_wheel()
    base = base or default_base(engine)
    found = base_id(engine, base)
    commit = git_commit()
    for flavour in flavours:
        image = image_name(flavour)
        start = time.perf_counter()
        argv = build_argv(engine, flavour, base=base, base_id=found, commit=commit)
        _run([*argv, *(["--no-cache"] if no_cache else []), ROOT])
        timings[f"{flavour}_build_s"] = round(time.perf_counter() - start, 1)
        timings[f"{flavour}_size_mb"] = image_size_mb(engine, image)
    timings.update(base=base, base_id=found, commit=commit)
    return timings


def _requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group().lower()


def lock_input(flavour: str, pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The input of a lock compiled against the tf lock's versions.

    ``numpy``: the project's dependencies (TensorFlow is the ``tf`` extra). ``bench``: those, the
    ``tf`` extra and the benchmarks' tools (pytest, pytest-benchmark) at the dev-extra bounds.
    """
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    deps, extras = project["dependencies"], project["optional-dependencies"]
    if flavour == "numpy":
        keep = [d for d in deps if _requirement_name(d) not in TF_PACKAGES]
        what = "its dependencies minus TensorFlow"
    elif flavour == "bench":
        dev = extras["dev"]
        keep = [*deps, *extras["tf"], *(d for d in dev if _requirement_name(d) in BENCH_PACKAGES)]
        what = "its dependencies plus " + ", ".join(BENCH_PACKAGES)
    else:
        raise SuiteError(f"no lock input for {flavour!r} (expected numpy or bench)")
    header = f"# Generated by `nox -s lock` from pyproject.toml: {what}.\n"
    return header + "-c requirements-tf.txt\n" + "\n".join(keep) + "\n"


# --- command line --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/images.py", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("engine", help="print the detected container engine (or none)")

    p = sub.add_parser("base", help="build the local Debian base image with debootstrap")
    p.add_argument("--force", action="store_true", help="rebuild even if it exists")
    p.add_argument("--mirror", default=None, help="Debian mirror (default: the one apt uses)")

    p = sub.add_parser("build", help="fetch the wheelhouse and build the images")
    p.add_argument("flavours", nargs="*", help="numpy, tf, bench (default: all)")
    p.add_argument(
        "--base", default=None, help="base image (default: $BASE_IMAGE, local base, or official)"
    )
    p.add_argument("--no-cache", action="store_true", help="build every layer again")
    p.add_argument("--offline", action="store_true", help="use the wheelhouse as it is")

    p = sub.add_parser("lock-input", help="print a lock's input file")
    p.add_argument("flavour", choices=sorted(LOCK_INPUTS))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "engine":
            print(detect_engine() or "none")
        elif args.command == "base":
            start = time.perf_counter()
            name = build_base(require_engine(), mirror=args.mirror, force=args.force)
            print(f"base image {name} ready after {time.perf_counter() - start:.0f} s")
        elif args.command == "build":
            for flavour in args.flavours:
                image_name(flavour)  # rejects an unknown flavour before any work
            timings = build_images(
                require_engine(),
                args.flavours or FLAVOURS,
                base=args.base,
                no_cache=args.no_cache,
                fetch=not args.offline,
            )
            print(json.dumps(timings, indent=2))
        elif args.command == "lock-input":
            print(lock_input(args.flavour), end="")
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
