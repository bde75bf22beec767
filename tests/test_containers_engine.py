"""The images and jobs in them, with the real engine (images are built first if missing)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from mnist_suite.errors import SuiteError
from mnist_suite.files import read_json_object as read_json
from mnist_suite.jobs import all_jobs
from mnist_suite.launch import LaunchOptions, container
from mnist_suite.plan import build_plan
from mnist_suite.plan import run_dir as run_path_of
from tools import images

images.use_repo_podman_conf()
ENGINE = container.detect_engine()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE is None, reason="no container engine (podman or docker) here"),
]
PROBE = (
    "import importlib.util, json, sys; "
    "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
)
DISTRIBUTIONS = (
    "import importlib.metadata as m; print(' '.join(d.metadata['Name'] for d in m.distributions()))"
)
# What a job's container can do, seen from inside it.
CONFINEMENT = r"""
import json, os, socket
from pathlib import Path

status = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())

def writable(path):
    try:
        Path(path).write_text("x")
        return True
    except OSError:
        return False

def cgroup(v2, v1):
    # cgroup v2 shows the container's own group at the root; v1 one folder per controller.
    for path in (v2, v1):
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return None

print(json.dumps({
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
    "cap_eff": int(status["CapEff"], 16), "cap_prm": int(status["CapPrm"], 16),
    "cap_bnd": int(status["CapBnd"], 16), "no_new_privs": status["NoNewPrivs"].strip(),
    "root_writable": writable("/probe"), "etc_writable": writable("/etc/probe"),
    "venv_writable": writable("/opt/venv/probe"), "tmp_writable": writable("/tmp/probe"),
    "runs_writable": writable("/runs/probe"), "data_writable": writable("/data/mnist.npz"),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "pids_max": cgroup("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "memory_max": cgroup(
        "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    ),
}))
"""


@pytest.fixture(scope="module")
def engine() -> str:
    """The engine, with every image present and of this checkout's code (built if not)."""
    missing = [
        f for f in container.FLAVOURS if not container.image_exists(ENGINE, container.image_name(f))
    ]
    for flavour in sorted(set(container.FLAVOURS) - set(missing) - {"bench"}):
        try:
            container.check_image_code(ENGINE, flavour, set(all_jobs()))
        except SuiteError:
            missing.append(flavour)
    if missing:
        images.build_images(ENGINE, missing)
    return ENGINE


def _python(engine: str, image: str, *args: str) -> subprocess.CompletedProcess:
    argv = [engine, "run", "--rm", "--network", "none", "--entrypoint", "python", image, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def _config(engine: str, image: str) -> dict:
    inspect = subprocess.run([engine, "image", "inspect", image], capture_output=True, text=True)
    return json.loads(inspect.stdout)[0]["Config"]


def _modules(engine: str, image: str, *modules: str) -> dict[str, bool]:
    probe = _python(engine, image, "-c", PROBE, *modules)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def test_numpy_image_contains_no_tensorflow(engine):
    found = _modules(
        engine, "mnist-suite:numpy", "tensorflow", "keras", "numpy", "tensorboard", "mnist_suite"
    )
    assert found == {
        "tensorflow": False,
        "keras": False,
        "numpy": True,
        "tensorboard": True,
        "mnist_suite": True,
    }
    dists = _python(engine, "mnist-suite:numpy", "-c", DISTRIBUTIONS)
    assert not [n for n in dists.stdout.lower().split() if n.startswith("tensorflow")]


def test_tf_image_has_the_locked_tensorflow(engine):
    assert _modules(engine, "mnist-suite:tf", "tensorflow", "tensorboard", "mnist_suite") == {
        "tensorflow": True,
        "tensorboard": True,
        "mnist_suite": True,
    }
    show = _python(
        engine,
        "mnist-suite:tf",
        "-c",
        "import importlib.metadata as m; print(m.version('tensorflow-cpu'))",
    )
    assert "tensorflow-cpu==" + show.stdout.strip() in images.LOCKS["tf"].read_text()


def test_bench_image_collects_the_benchmarks_with_the_locked_tools(engine):
    found = _modules(engine, "mnist-suite:bench", "tensorflow", "pytest_benchmark", "threadpoolctl")
    assert found == {"tensorflow": True, "pytest_benchmark": True, "threadpoolctl": True}
    collect = [
        engine, "run", "--rm", *container.confinement(), "--entrypoint", "pytest",
        "mnist-suite:bench", "-p", "no:cacheprovider", "--collect-only", "-q",
        "/opt/mnist-suite/bench",
    ]  # fmt: skip
    done = subprocess.run(collect, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "test_bench_numpy.py::" in done.stdout and "test_bench_tf.py::" in done.stdout


@pytest.mark.parametrize("flavour", container.FLAVOURS)
def test_images_are_labelled_non_root_and_start_the_suite(engine, flavour):
    image = container.image_name(flavour)
    config = _config(engine, image)
    assert config["User"] == f"{container.CONTAINER_UID}:{container.CONTAINER_GID}"
    assert config["Entrypoint"] == ["mnist-suite"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == images.project_version()
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert labels["io.mnist-suite.flavour"] == flavour
    base = labels["org.opencontainers.image.base.name"]
    assert labels["io.mnist-suite.base.id"] == container.image_id(engine, base) != ""
    env = dict(kv.split("=", 1) for kv in config["Env"])
    assert env["MNIST_SUITE_IMAGE"] == image
    assert env["MNIST_SUITE_GIT_COMMIT"] == labels["org.opencontainers.image.revision"]
    assert env["MNIST_SUITE_BASE_ID"] == labels["io.mnist-suite.base.id"]
    listed = subprocess.run(
        [engine, "run", "--rm", *container.confinement(), image, "list"],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0 and "softmax-original" in listed.stdout


def test_a_job_container_is_confined(engine, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    data = container.host_data()
    with container.mounts(engine, data, runs) as (user, mounted):
        argv = container.run_argv(
            engine, "mnist-suite:numpy", ["-c", CONFINEMENT], data=mounted, runs=runs,
            user=user, memory="3g", pids=300, entrypoint="python",
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["uid"] != 0 and seen["euid"] != 0 and seen["gid"] != 0
    assert seen["cap_eff"] == seen["cap_prm"] == seen["cap_bnd"] == 0
    assert seen["no_new_privs"] == "1"
    assert not seen["root_writable"] and not seen["etc_writable"] and not seen["venv_writable"]
    assert not seen["data_writable"]
    assert seen["tmp_writable"] and seen["runs_writable"]
    assert seen["interfaces"] == ["lo"]
    assert seen["pids_max"] == "300"
    assert int(seen["memory_max"]) == 3 * 1024**3
    # What the job wrote is the caller's again (root's folder was lent, then given back).
    assert (runs / "probe").stat().st_uid == os.getuid()


def _launch(engine: str, items, runs, workers: int = 1) -> dict[int, int]:
    return container.ContainerLauncher(engine).launch(items, LaunchOptions(runs, workers=workers))


def test_job_runs_in_its_image_records_it_and_is_skipped_when_done(engine, tmp_path):
    runs = tmp_path / "runs"
    items = build_plan(["softmax-original"], profile="quick")
    assert _launch(engine, items, runs) == {0: 0}
    assert container.check_runs(runs, items, in_container=True, uid=os.getuid()) == []
    run_dir = run_path_of(runs, items[0])
    config = read_json(run_dir / "config.json")
    labels = _config(engine, "mnist-suite:numpy")["Labels"]
    assert config["commit_info"] == {
        "id": labels["org.opencontainers.image.revision"],
        "dirty": False,
        "source": "image",
    }
    machine = config["machine_info"]
    assert machine["image"] == "mnist-suite:numpy"
    assert machine["image_id"] == container.image_id(engine, "mnist-suite:numpy")
    assert machine["base_id"] == labels["io.mnist-suite.base.id"] != ""
    ended = read_json(run_dir / "status.json")["ended_at"]

    assert _launch(engine, items, runs) == {0: 0}  # skipped: by the pool, or in the container
    assert read_json(run_dir / "status.json")["ended_at"] == ended


def test_an_image_of_other_code_is_refused_and_a_stray_record_is_no_success(
    engine, tmp_path, monkeypatch
):
    """The launcher plans each run folder from its code, the worker writes it from the image's:
    other code is refused before anything starts, and "done" elsewhere is a failure."""
    from mnist_suite import fingerprint

    code = container.image_code(engine, container.image_name("numpy"))
    assert code["softmax"] == fingerprint.for_job_name("softmax")  # the image is this checkout
    items = build_plan(["softmax"], profile="quick")
    # As if planned from other code: the worker records the run where its own code puts it.
    moved = [dataclasses.replace(items[0], run_id=items[0].run_id + "x")]
    assert _launch(engine, moved, tmp_path / "runs") == {0: 1}
    assert (run_path_of(tmp_path / "runs", items[0]) / "metrics.json").is_file()
    monkeypatch.setattr(fingerprint, "for_job_name", lambda name: "0" * 12)
    with pytest.raises(SuiteError, match=r"runs other code than this checkout \(softmax: "):
        _launch(engine, items, tmp_path / "again")
    assert not (tmp_path / "again" / "softmax").exists()


def test_two_workers_share_one_runs_folder(engine, tmp_path):
    runs = tmp_path / "runs"
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1, 2))
    assert _launch(engine, items, runs, workers=2) == {0: 0, 1: 0, 2: 0}
    assert container.check_runs(runs, items, in_container=True, uid=os.getuid()) == []


def test_exit_codes_propagate(engine, tmp_path):
    data = container.host_data()
    for command, code in (
        (["run", "no-such-job"], 2),
        (["run", "softmax", "--set", "no_such_field=1"], 2),
        (["run", "softmax", "--profile", "quick"], 0),
    ):
        with container.mounts(engine, data, tmp_path) as (user, mounted):
            argv = container.run_argv(
                engine, "mnist-suite:numpy", command, data=mounted, runs=tmp_path, user=user
            )
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert done.returncode == code, (command, done.stderr)
        if code == 2:
            assert done.stderr.strip().startswith("error: "), done.stderr


def test_stopped_container_leaves_its_run_interrupted(engine, tmp_path):
    overrides = ("epochs=500",)  # long enough to be stopped mid-run
    (item,) = build_plan(["softmax"], profile="full", overrides=overrides)
    run_dir = run_path_of(tmp_path, item)
    argv = [sys.executable, "-m", "mnist_suite", "train", "softmax", "--set", overrides[0]]
    argv += ["--containers", "--workers", "1", "--runs", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The launcher names each worker's container after its own pid and the worker's number.
    name = f"mnist-suite-{proc.pid}-w1"
    try:
        deadline = time.monotonic() + 180
        history = run_dir / "history.jsonl"
        while not history.is_file() or not history.read_text():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no history row within 180 s"
            time.sleep(0.5)
        subprocess.run([engine, "stop", "--time", "30", name], capture_output=True, check=True)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    status = read_json(run_dir / "status.json")
    assert status["state"] == "interrupted"
    assert status["message"] == "interrupted (SIGTERM)"
    assert not list(run_dir.rglob("*.tmp"))
    assert run_dir.stat().st_uid == os.getuid()
