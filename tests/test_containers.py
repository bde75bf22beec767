"""Container plumbing that needs no engine: detection, commands, lock files, run checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_path
from training import containers
from training.containers import JobResult
from training.errors import SuiteError
from training.jobs import all_jobs

ROOT = Path(__file__).resolve().parent.parent


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", path.read_text(), flags=re.M))


def test_engine_from_environment_wins():
    which = {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}.get
    assert containers.detect_engine({"CONTAINER_ENGINE": "docker"}, which) == "docker"
    with pytest.raises(SuiteError, match="CONTAINER_ENGINE=nerdctl: not found"):
        containers.detect_engine({"CONTAINER_ENGINE": "nerdctl"}, which)


def test_engine_podman_first_docker_only_if_its_daemon_answers():
    both = {"podman": "/usr/bin/podman", "docker": "/usr/bin/docker"}.get
    assert containers.detect_engine({}, both, docker_answers=lambda: False) == "podman"
    docker = {"docker": "/usr/bin/docker"}.get
    assert containers.detect_engine({}, docker, docker_answers=lambda: True) == "docker"
    assert containers.detect_engine({}, docker, docker_answers=lambda: False) is None
    assert containers.detect_engine({}, lambda name: None) is None


def test_run_command_wraps_the_suite_command_with_network_off(tmp_path):
    data = tmp_path / "mnist.npz"
    data.write_bytes(b"")
    argv = containers.run_argv(
        "podman",
        "mnist-suite:numpy",
        ["run", "softmax", "--profile", "quick", "--out", "/runs"],
        data=data,
        runs=tmp_path / "runs",
        user=["--user", "1000:1000"],
        name="c1",
        env={"OMP_NUM_THREADS": "2"},
    )
    image_at = argv.index("mnist-suite:numpy")
    # The command inside is exactly `mnist-suite run …` (the image's entry point is mnist-suite).
    assert argv[image_at + 1 :] == ["run", "softmax", "--profile", "quick", "--out", "/runs"]
    options = argv[:image_at]
    assert options[:3] == ["podman", "run", "--rm"]
    assert options[options.index("--network") + 1] == "none"
    assert f"{data}:/data/mnist.npz:ro" in options
    assert f"{tmp_path / 'runs'}:/runs" in options
    assert "MNIST_SUITE_DATA=/data/mnist.npz" in options
    assert "MNIST_SUITE_OFFLINE=1" in options
    assert "OMP_NUM_THREADS=2" in options
    assert options[options.index("--user") + 1] == "1000:1000"


def test_files_belong_to_the_caller():
    assert containers.user_args("podman", rootless=True) == ["--userns=keep-id"]
    assert containers.user_args("docker", rootless=False, uid=1234, gid=99) == ["--user", "1234:99"]


def test_jobs_go_to_the_image_that_has_what_they_need():
    jobs = all_jobs()
    assert containers.flavour_for(jobs["softmax"]) == "numpy"
    for job in jobs.values():
        assert containers.flavour_for(job) == ("tf" if job.uses_tensorflow else "numpy")
    with pytest.raises(SuiteError, match="unknown image flavour 'gpu'"):
        containers.image_name("gpu")


def test_a_failed_job_does_not_stop_the_batch_but_an_interrupt_does():
    codes = {"a": 0, "b": 1, "c": 0, "d": 130, "e": 0}
    ran = []

    def run_one(job):
        ran.append(job)
        return "local", codes[job]

    results = containers.run_batch(list(codes), run_one, echo=lambda *a, **k: None)
    assert ran == ["a", "b", "c", "d"]
    assert containers.batch_exit_code(results) == 130
    assert containers.batch_exit_code(results[:3]) == 1
    assert containers.batch_exit_code([JobResult("a", "local", 0, 1.0)]) == 0


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert containers.debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list").write_text("deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert containers.debian_mirror(apt) == "http://one.example/debian"
    assert containers.debian_mirror(tmp_path / "none") == containers.DEFAULT_MIRROR
    monkeypatch.setenv("DEBIAN_MIRROR", "http://env.example/debian")
    assert containers.debian_mirror(apt) == "http://env.example/debian"


def test_lock_files_pin_every_package_with_hashes():
    for lock in containers.LOCKS.values():
        lines = [ln for ln in lock.read_text().splitlines() if not ln.lstrip().startswith("#")]
        entries = re.split(r"\n(?=\S)", "\n".join(lines).strip())
        assert entries, lock
        for entry in entries:
            assert re.match(r"[A-Za-z0-9_.-]+==", entry), f"{lock.name}: unpinned {entry[:40]}"
            assert "--hash=sha256:" in entry, f"{lock.name}: no hash for {entry.split()[0]}"


def test_numpy_lock_has_no_tensorflow_and_agrees_with_the_tf_lock():
    numpy_pins = _pins(containers.LOCKS["numpy"])
    tf_pins = _pins(containers.LOCKS["tf"])
    assert not {"tensorflow", "tensorflow-cpu", "keras"} & set(numpy_pins)
    assert {"numpy", "tensorboard", "scikit-learn", "matplotlib"} <= set(numpy_pins)
    assert "tensorflow-cpu" in tf_pins
    # Same versions in both images: the tf image is the numpy one plus TensorFlow.
    assert {k: tf_pins.get(k) for k in numpy_pins} == numpy_pins


def test_numpy_lock_input_is_the_project_minus_tensorflow():
    text = containers.lock_input()
    assert text == containers.NUMPY_LOCK_INPUT.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "-c requirements-tf.txt"
    assert not any(line.startswith("tensorflow") for line in lines)
    assert any(line.startswith("numpy") for line in lines)


def test_dockerfile_targets_and_hermetic_install():
    text = containers.DOCKERFILE.read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text
    assert re.search(r"^FROM \S+ AS numpy$", text, flags=re.M)
    assert re.search(r"^FROM \S+ AS tf$", text, flags=re.M)
    installs = re.findall(r"pip install [^\n]*(?:\\\n[^\n]*)*", text)
    assert installs and all("--no-index" in i for i in installs)
    assert all("--require-hashes" in i for i in installs if "-r " in i)


def test_check_runs_accepts_a_complete_run_and_names_what_is_wrong(run_cli, tmp_path):
    code, out, _ = run_cli("run", "softmax-seed", "--profile", "quick")
    assert code == 0
    runs = tmp_path / "runs"
    assert containers.check_runs(runs, ["softmax-seed"], profile="quick", uid=None) == []
    problems = containers.check_runs(runs, ["softmax-seed"], profile="quick", in_container=True)
    assert problems == ["softmax-seed: ran in image '', not mnist-suite:numpy"]
    missing = containers.check_runs(runs, ["softmax"], profile="quick")
    assert len(missing) == 1 and "softmax: no run folder" in missing[0]

    status = run_path(out) / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "state": "failed"}))
    problems = containers.check_runs(runs, ["softmax-seed"], profile="quick")
    assert problems and problems[0].startswith("softmax-seed: state failed")
