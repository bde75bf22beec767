"""Container plumbing that needs no engine: detection, confinement, the pool, locks, checks."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_suite.errors import ConfigError, SuiteError
from mnist_suite.launch import LaunchOptions, container
from mnist_suite.launch.local import LocalLauncher
from mnist_suite.plan import build_plan
from tests.conftest import run_path
from tools import images

ROOT = Path(__file__).resolve().parent.parent


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", path.read_text(), flags=re.M))


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_engine_from_environment_wins():
    which = {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}.get
    assert container.detect_engine({"CONTAINER_ENGINE": "docker"}, which) == "docker"
    with pytest.raises(SuiteError, match="CONTAINER_ENGINE=nerdctl: not found"):
        container.detect_engine({"CONTAINER_ENGINE": "nerdctl"}, which)


def test_engine_podman_first_docker_only_if_its_daemon_answers():
    both = {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}.get
    assert container.detect_engine({}, both, docker_answers=lambda: False) == "podman"
    docker = {"docker": "/usr/bin/docker"}.get
    assert container.detect_engine({}, docker, docker_answers=lambda: True) == "docker"
    assert container.detect_engine({}, docker, docker_answers=lambda: False) is None
    assert container.detect_engine({}, lambda name: None) is None


def test_repo_podman_conf_only_when_unset(monkeypatch):
    monkeypatch.setattr(images.shutil, "which", lambda name: f"/usr/bin/{name}")
    env: dict[str, str] = {}
    assert images.use_repo_podman_conf(env)
    assert env["CONTAINERS_CONF"] == str(ROOT / "docker" / "containers.conf")
    mine = {"CONTAINERS_CONF": "/etc/mine.conf"}
    assert not images.use_repo_podman_conf(mine)
    assert mine == {"CONTAINERS_CONF": "/etc/mine.conf"}


def test_run_command_wraps_the_suite_command_confined(tmp_path):
    data = tmp_path / "mnist.npz"
    data.write_bytes(b"")
    command = ["run", "softmax", "--profile", "quick", "--seed", "0", "--index", "0"]
    argv = container.run_argv(
        "podman", "mnist-suite:numpy", command, data=data, runs=tmp_path / "runs",
        user=["--user", "1000:1000"], name="c1", env={"OMP_NUM_THREADS": "2"}, memory="6g",
        pids=200,
    )  # fmt: skip
    image_at = argv.index("mnist-suite:numpy")
    # The command inside is exactly `mnist-suite run …` (the image's entry point is mnist-suite).
    assert argv[image_at + 1 :] == command
    options = argv[:image_at]
    assert options[:3] == ["podman", "run", "--rm"]
    assert "--cap-drop=ALL" in options
    assert _option(options, "--security-opt") == "no-new-privileges"
    assert "--read-only" in options
    assert _option(options, "--tmpfs").startswith("/tmp:")
    assert _option(options, "--pids-limit") == "200"
    assert _option(options, "--memory") == _option(options, "--memory-swap") == "6g"
    assert _option(options, "--network") == "none"
    assert f"{data}:/data/mnist.npz:ro" in options
    assert f"{tmp_path / 'runs'}:/runs" in options
    assert "MNIST_SUITE_DATA=/data/mnist.npz" in options
    assert "MNIST_SUITE_OFFLINE=1" in options
    assert f"MNIST_SUITE_HOST={socket.gethostname()}" in options  # the machine's, not the box's
    assert "OMP_NUM_THREADS=2" in options
    assert _option(options, "--user") == "1000:1000"


@pytest.mark.parametrize("memory", ["0", "8 GB", "-1g", "lots", ""])
def test_bad_limits_are_one_line_config_errors(memory):
    with pytest.raises(ConfigError, match="--memory"):
        container.confinement(memory=memory)
    with pytest.raises(ConfigError, match="--pids-limit"):
        container.confinement(pids=0)


def test_never_root_inside():
    assert container.user_args(rootless=True) == ["--userns=keep-id"]
    assert container.user_args(rootless=False, uid=1234, gid=99) == ["--user", "1234:99"]
    # Root with a rootful engine: no --user at all, so the image's non-root USER stands.
    assert container.user_args(rootless=False, uid=0, gid=0) == []


@pytest.mark.skipif(os.getuid() != 0, reason="lending the runs folder needs root (chown)")
def test_runs_folder_is_lent_to_the_container_user_and_given_back(tmp_path):
    runs = tmp_path / "runs"
    (runs / "job" / "run").mkdir(parents=True)
    (runs / "job" / "run" / "f.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.write_text("not the runs folder's")
    os.chown(outside, 4242, 4242)
    tree = [runs, *runs.rglob("*")]
    with container.lent_to_container(runs):
        assert {p.stat().st_uid for p in tree} == {container.CONTAINER_UID}
        # A link a job leaves behind is chowned itself, never what it points to.
        (runs / "job" / "link").symlink_to(outside)
        (runs / "job" / "new").mkdir()
        os.chown(runs / "job" / "new", container.CONTAINER_UID, container.CONTAINER_GID)
    assert {p.lstat().st_uid for p in runs.rglob("*")} | {runs.stat().st_uid} == {os.getuid()}
    assert outside.stat().st_uid == 4242


@pytest.mark.skipif(os.getuid() != 0, reason="a copy owned by another uid needs root (chown)")
def test_private_data_is_mounted_from_a_copy_the_container_user_can_read(tmp_path):
    private = tmp_path / "mnist.npz"
    private.write_bytes(b"data")
    private.chmod(0o600)
    with container.readable_data(private) as mounted:
        assert mounted != private and mounted.read_bytes() == b"data"
        assert mounted.stat().st_uid == container.CONTAINER_UID
    assert not mounted.exists()
    private.chmod(0o644)
    with container.readable_data(private) as mounted:
        assert mounted == private


def test_the_launcher_runs_each_item_in_its_image_confined(monkeypatch, tmp_path):
    monkeypatch.setattr(container, "image_exists", lambda engine, image: True)
    monkeypatch.setattr(container, "image_id", lambda engine, image: f"sha256:{image[-2:]}")
    monkeypatch.setattr(container, "is_rootless", lambda engine: False)
    monkeypatch.setattr(container.os, "getuid", lambda: 1234)
    monkeypatch.setattr(container.os, "getgid", lambda: 99)

    def launch(self, items, options):  # the local pool's launch, minus the processes
        self.environment(3)
        worker = self.worker_command  # the item's worker, then the item it is given
        return {
            item.index: [
                *worker(self.worker_kind(item), options, item.index + 1),
                "<item>",
                *self.item_argv(item, options),
            ]
            for item in items
        }

    monkeypatch.setattr(LocalLauncher, "launch", launch)
    data = tmp_path / "mnist.npz"
    data.write_bytes(b"")
    items = build_plan(["softmax", "sgd-original"], profile="quick")
    launcher = container.ContainerLauncher("podman", memory="6g", env={"EXTRA": "1"})
    commands = launcher.launch(items, LaunchOptions(runs=tmp_path / "runs", data=data))
    for item in items:
        argv = commands[item.index]
        image = container.image_name(item.flavour)
        assert argv[argv.index(image) + 1 :] == ["worker", "<item>", *item.argv()]
        options = argv[: argv.index(image)]
        assert "--interactive" in options
        assert _option(options, "--user") == "1234:99"
        assert _option(options, "--memory") == "6g" and "--cap-drop=ALL" in options
        assert _option(options, "--name") == container.container_name(item.index + 1)
        for pair in (
            "OPENBLAS_NUM_THREADS=3",
            "EXTRA=1",
            f"MNIST_SUITE_IMAGE_ID=sha256:{image[-2:]}",
        ):
            assert pair in options
    with pytest.raises(ConfigError, match="--memory"):
        container.ContainerLauncher("podman", memory="lots").launch(items, LaunchOptions(tmp_path))


def test_items_go_to_the_image_that_has_what_they_need():
    items = build_plan(["softmax", "sgd-original"], profile="quick")
    assert [container.image_name(i.flavour) for i in items] == [
        "mnist-suite:numpy",
        "mnist-suite:tf",
    ]
    with pytest.raises(ConfigError, match="unknown image flavour 'gpu'"):
        container.image_name("gpu")


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert images.debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list").write_text("deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert images.debian_mirror(apt) == "http://one.example/debian"
    assert images.debian_mirror(tmp_path / "none") == images.DEFAULT_MIRROR
    monkeypatch.setenv("DEBIAN_MIRROR", "http://env.example/debian")
    assert images.debian_mirror(apt) == "http://env.example/debian"


def test_lock_files_pin_every_package_with_hashes():
    assert set(images.LOCKS) == set(container.FLAVOURS)
    for lock in images.LOCKS.values():
        lines = [ln for ln in lock.read_text().splitlines() if not ln.lstrip().startswith("#")]
        entries = re.split(r"\n(?=\S)", "\n".join(lines).strip())
        assert entries, lock
        for entry in entries:
            assert re.match(r"[A-Za-z0-9_.-]+==", entry), f"{lock.name}: unpinned {entry[:40]}"
            assert "--hash=sha256:" in entry, f"{lock.name}: no hash for {entry.split()[0]}"


def test_locks_nest_at_the_same_versions():
    numpy_pins, tf_pins, bench_pins = (_pins(images.LOCKS[f]) for f in ("numpy", "tf", "bench"))
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & set(numpy_pins)
    assert {"numpy", "tensorboard", "scikit-learn", "matplotlib", "threadpoolctl"} <= set(
        numpy_pins
    )
    assert "tensorflow-cpu" in tf_pins
    assert {"pytest", "pytest-benchmark", "threadpoolctl", "tensorflow-cpu"} <= set(bench_pins)
    # Same versions everywhere: tf is numpy plus TensorFlow, bench is tf plus the bench tools.
    assert {k: tf_pins.get(k) for k in numpy_pins} == numpy_pins
    assert {k: bench_pins.get(k) for k in tf_pins} == tf_pins


def test_every_project_dependency_is_locked():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {images._requirement_name(d) for d in project["dependencies"]}
    assert names - set(images.TF_PACKAGES) <= set(_pins(images.LOCKS["numpy"]))
    assert names - {"tensorflow"} <= set(_pins(images.LOCKS["tf"]))


@pytest.mark.parametrize("flavour", ["numpy", "bench"])
def test_lock_inputs_are_generated_from_the_project(flavour):
    text = images.lock_input(flavour)
    assert text == images.LOCK_INPUTS[flavour].read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "-c requirements-tf.txt"
    assert any(line.startswith("numpy") for line in lines)
    has_tf = any(line.startswith("tensorflow") for line in lines)
    assert has_tf == (flavour == "bench")
    assert any(line.startswith("pytest-benchmark") for line in lines) == (flavour == "bench")


def test_dockerfile_one_final_stage_pinned_base_numeric_user_hermetic_install():
    text = images.DOCKERFILE.read_text()
    pinned = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, flags=re.M).group(1)
    assert pinned == container.DEFAULT_BASE
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", pinned)
    assert re.findall(r"^FROM (\S+) AS (\S+)$", text, flags=re.M)[-1] == (
        "${FLAVOUR}-deps",
        "final",
    )
    for flavour in container.FLAVOURS:
        assert re.search(rf"^FROM \S+ AS {flavour}-deps$", text, flags=re.M)
    (user,) = re.findall(r"^USER (\S+)$", text, flags=re.M)
    uid, gid = (int(part) for part in user.split(":"))
    assert (uid, gid) == (container.CONTAINER_UID, container.CONTAINER_GID) and uid != 0
    installs = re.findall(r"pip install [^\n]*(?:\\\n[^\n]*)*", text)
    assert installs and all("--no-index" in i for i in installs)
    assert all("--require-hashes" in i for i in installs if "-r " in i)


def test_every_build_names_its_flavour():
    for flavour in container.FLAVOURS:
        argv = images.build_argv(
            "podman", flavour, base="localhost/b", base_id="sha256:ab", commit="c0"
        )
        assert f"FLAVOUR={flavour}" in argv and "--target" not in argv
        assert "BASE_ID=sha256:ab" in argv and _option(argv, "--network") == "none"


def test_image_tool_needs_no_numpy():
    code = (
        "import runpy, sys; sys.modules['numpy'] = None; "
        "sys.argv = ['tools/images.py', 'lock-input', 'numpy']; "
        "runpy.run_path('tools/images.py', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == images.LOCK_INPUTS["numpy"].read_text()


def test_check_runs_accepts_a_complete_run_and_names_what_is_wrong(run_cli, tmp_path):
    code, out, _ = run_cli("run", "softmax-original", "--profile", "quick")
    assert code == 0
    runs = tmp_path / "runs"
    (item,) = build_plan(["softmax-original"], profile="quick")
    assert container.check_runs(runs, [item], uid=os.getuid()) == []
    problems = container.check_runs(runs, [item], in_container=True)
    assert problems == ["softmax-original: ran in image '', not mnist-suite:numpy"]
    missing = container.check_runs(runs, build_plan(["softmax"], profile="quick"))
    assert len(missing) == 1 and "softmax: no run folder" in missing[0]

    status = run_path(out) / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "state": "failed"}))
    problems = container.check_runs(runs, [item])
    assert problems and problems[0].startswith("softmax-original: state failed")
