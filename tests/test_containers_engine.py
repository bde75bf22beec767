"""The images and jobs in them, with the real engine (images are built first if missing)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from training import containers
from training.jobs import get_job
from training.files import read_json_object as read_json

containers.use_repo_podman_conf()
ENGINE = containers.detect_engine()
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


@pytest.fixture(scope="module")
def images() -> str:
    """The engine, with both images present (built from the lock files if missing)."""
    missing = [
        f
        for f in containers.FLAVOURS
        if not containers.image_exists(ENGINE, containers.image_name(f))
    ]
    if missing:
        containers.build_images(ENGINE, missing)
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


def test_numpy_image_contains_no_tensorflow(images):
    check = (
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)"
    )
    assert _python(images, "mnist-suite:numpy", "-c", check).returncode == 0
    found = _modules(
        images, "mnist-suite:numpy", "tensorflow", "keras", "numpy", "tensorboard", "training"
    )
    assert found == {
        "tensorflow": False,
        "keras": False,
        "numpy": True,
        "tensorboard": True,
        "training": True,
    }
    dists = _python(images, "mnist-suite:numpy", "-c", DISTRIBUTIONS)
    assert not [n for n in dists.stdout.lower().split() if n.startswith("tensorflow")]


def test_tf_image_has_the_locked_tensorflow(images):
    assert _modules(images, "mnist-suite:tf", "tensorflow", "tensorboard", "training") == {
        "tensorflow": True,
        "tensorboard": True,
        "training": True,
    }
    show = _python(
        images,
        "mnist-suite:tf",
        "-c",
        "import importlib.metadata as m; print(m.version('tensorflow-cpu'))",
    )
    assert "tensorflow-cpu==" + show.stdout.strip() in containers.LOCKS["tf"].read_text()


@pytest.mark.parametrize("flavour", containers.FLAVOURS)
def test_images_are_labelled_non_root_and_start_the_suite(images, flavour):
    image = containers.image_name(flavour)
    config = _config(images, image)
    assert config["User"] == "suite"
    assert config["Entrypoint"] == ["mnist-suite"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == containers.project_version()
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    env = dict(kv.split("=", 1) for kv in config["Env"])
    assert env["MNIST_SUITE_IMAGE"] == image
    assert env["MNIST_SUITE_GIT_COMMIT"] == labels["org.opencontainers.image.revision"]
    uid = _python(images, image, "-c", "import os; print(os.getuid())")
    assert uid.stdout.strip() != "0"
    listed = subprocess.run(
        [images, "run", "--rm", "--network", "none", image, "list"], capture_output=True, text=True
    )
    assert listed.returncode == 0 and "softmax-seed" in listed.stdout


def test_job_runs_in_its_image_records_it_and_is_skipped_when_done(images, tmp_path, capfd):
    out = tmp_path / "runs"
    assert containers.train(["softmax-seed"], profile="quick", out=out, engine=images) == 0
    assert (
        containers.check_runs(
            out, ["softmax-seed"], profile="quick", in_container=True, uid=os.getuid()
        )
        == []
    )
    (run_dir,) = (out / "softmax-seed").iterdir()
    config = read_json(run_dir / "config.json")
    revision = _config(images, "mnist-suite:numpy")["Labels"]["org.opencontainers.image.revision"]
    assert config["commit_info"] == {"id": revision, "dirty": False, "source": "image"}
    ended = read_json(run_dir / "status.json")["ended_at"]
    capfd.readouterr()

    assert containers.train(["softmax-seed"], profile="quick", out=out, engine=images) == 0
    assert "(already recorded, skipped)" in capfd.readouterr().out
    assert read_json(run_dir / "status.json")["ended_at"] == ended


def test_exit_codes_propagate(images, tmp_path):
    data = containers.host_data()
    for command, code in (
        (["run", "no-such-job"], 2),
        (["run", "softmax", "--set", "no_such_field=1"], 2),
        (["run", "softmax", "--profile", "quick", "--out", "/runs"], 0),
    ):
        argv = containers.run_argv(
            images,
            "mnist-suite:numpy",
            command,
            data=data,
            runs=tmp_path,
            user=["--user", f"{os.getuid()}:{os.getgid()}"],
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert done.returncode == code, (command, done.stderr)
        if code == 2:
            assert done.stderr.strip().startswith("error: "), done.stderr


def test_stopped_container_leaves_its_run_interrupted(images, tmp_path):
    job = get_job("softmax")
    overrides = ["epochs=500"]  # long enough to be stopped mid-run
    ((label, config),) = job.expand(job.resolve("full", overrides))
    run_dir = tmp_path / job.name / job.run_id(label, config, "full", 0)
    name = f"mnist-suite-test-stop-{os.getpid()}"
    argv = containers.run_argv(
        images, "mnist-suite:numpy", ["run", "softmax", "--set", overrides[0], "--out", "/runs"],
        data=containers.host_data(), runs=tmp_path,
        user=["--user", f"{os.getuid()}:{os.getgid()}"], name=name,
    )  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (
            not (run_dir / "history.jsonl").is_file() or not (run_dir / "history.jsonl").read_text()
        ):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no history row within 120 s"
            time.sleep(0.5)
        subprocess.run([images, "stop", "--time", "30", name], capture_output=True, check=True)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    status = read_json(run_dir / "status.json")
    assert status["state"] == "interrupted"
    assert status["message"] == "interrupted (SIGTERM)"
    assert not list(run_dir.rglob("*.tmp"))
