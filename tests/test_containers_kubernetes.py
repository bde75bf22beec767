"""The Kubernetes Indexed Job contract, run the way the kubelet would run it, under Podman.

No cluster runs here, so a small kubelet stand-in reads the Job that ``mnist-suite k8s`` writes
(mnist_suite/launch/kubernetes.py) and does what the Job controller and the kubelet do with it:
one container of the real image per completion index with ``JOB_COMPLETION_INDEX`` set, the
pod's args, env, security context and memory limit, ``parallelism`` pods at a time, one shared
runs volume; a failed index is retried up to ``backoffLimitPerIndex`` times, and an exit code
that ``podFailurePolicy`` maps to ``FailIndex`` (2: bad config or data) fails the index at once.
"""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_suite.files import read_json_object as read_json
from mnist_suite.launch import container
from mnist_suite.launch.kubernetes import KubernetesOptions, documents
from mnist_suite.plan import build_plan, run_dir
from tools import images

images.use_repo_podman_conf()
ENGINE = container.detect_engine()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE is None, reason="no container engine (podman or docker) here"),
]
JOB = "softmax"
# Long enough (tens of seconds) for a pod to be stopped mid-run, short enough for a test.
OVERRIDES = ("epochs=40", "n_train=20000")


def _memory(quantity: str) -> str:
    """A Kubernetes memory quantity ("4Gi", "512Mi") as the engines take it."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    return next((quantity[:-2] + u for s, u in units.items() if quantity.endswith(s)), quantity)


def pod_argv(job: dict, index: int, *, name: str, runs: Path, data: Path) -> list[str]:
    """The container the kubelet would start for completion ``index`` of ``job``."""
    pod = job["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    security = {**pod["securityContext"], **spec["securityContext"]}
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    argv = [ENGINE, "run", "--rm", "--init", "--name", name, "--network", "none"]
    argv += ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    argv += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    if not security["allowPrivilegeEscalation"]:
        argv += ["--security-opt", "no-new-privileges"]
    if security["readOnlyRootFilesystem"]:
        argv.append("--read-only")
    argv += ["--memory", _memory(spec["resources"]["limits"]["memory"])]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in spec["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            argv += ["--tmpfs", mount["mountPath"]]
        elif mount["name"] == "runs":
            argv += ["-v", f"{runs}:{mount['mountPath']}"]
        else:  # the data claim holds the verified mnist.npz
            argv += ["-v", f"{data}:{mount['mountPath']}/{data.name}:ro"]
    for pair in spec["env"]:
        argv += ["-e", f"{pair['name']}={pair['value']}"]
    argv += ["-e", f"JOB_COMPLETION_INDEX={index}"]
    return [*argv, spec["image"], *spec["args"]]


def run_indexed_job(
    job: dict,
    *,
    runs: Path,
    data: Path,
    stop: Callable[[int, int], Path | None] = lambda index, attempt: None,
) -> dict:
    """Run ``job`` to its end; return per index its attempts' exit codes and its outcome.

    ``stop(index, attempt)`` may name a run folder: that pod is stopped (SIGTERM, as a deleted
    or evicted pod without a disruption condition) once the run in it has logged a step.
    """
    spec = job["spec"]
    (fail_index,) = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailIndex"]
    no_retry = set(fail_index["onExitCodes"]["values"])
    queue = deque(range(spec["completions"]))
    attempts: dict[int, list[int]] = {i: [] for i in queue}
    outcome: dict[int, str] = {}
    running: dict[int, tuple[subprocess.Popen, str, Path | None, float]] = {}
    most = 0
    while queue or running:
        while queue and len(running) < spec["parallelism"]:
            index = queue.popleft()
            name = f"mnist-suite-k8s-{index}-{len(attempts[index])}-{time.monotonic_ns()}"
            argv = pod_argv(job, index, name=name, runs=runs, data=data)
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            running[index] = (proc, name, stop(index, len(attempts[index])), time.time())
        most = max(most, len(running))
        for index, (proc, name, target, launched) in list(running.items()):
            if target and _logged_since(target, launched) and proc.poll() is None:
                stopped = subprocess.run(
                    [ENGINE, "stop", "--time", "30", name], capture_output=True
                )
                if stopped.returncode == 0:
                    running[index] = (proc, name, None, launched)
            if proc.poll() is None:
                continue
            del running[index]
            attempts[index].append(proc.returncode)
            if proc.returncode == 0:
                outcome[index] = "succeeded"
            elif proc.returncode in no_retry:
                outcome[index] = "failed (FailIndex)"
            elif len(attempts[index]) > spec["backoffLimitPerIndex"]:
                outcome[index] = "failed (backoffLimitPerIndex)"
            else:
                queue.append(index)
        time.sleep(0.2)
    return {"attempts": attempts, "outcome": outcome, "most_running": most}


def _logged_since(run: Path, launched: float) -> bool:
    """Has this attempt (not an earlier one) logged a step in ``run``?"""
    history = run / "history.jsonl"
    try:
        return history.stat().st_mtime >= launched and bool(history.read_text().strip())
    except OSError:
        return False


@pytest.fixture(scope="module")
def numpy_image() -> str:
    if not container.image_exists(ENGINE, container.image_name("numpy")):
        images.build_images(ENGINE, ["numpy"])
    return ENGINE


def _job(items, **options) -> dict:
    # The run arguments `mnist-suite k8s JOB --seeds 0-3 --set …` gives every pod.
    run_args = [JOB, "--profile", "full", "--seeds", "0,1,2,3"]
    run_args += [a for pair in OVERRIDES for a in ("--set", pair)]
    (job,) = documents(items, items, run_args, KubernetesOptions(**options))
    return job


def test_indexed_job_runs_parallelism_at_a_time_and_retries_a_failed_index(numpy_image, tmp_path):
    items = build_plan([JOB], profile="full", seeds=(0, 1, 2, 3), overrides=OVERRIDES)
    job = _job(items, parallelism=2, backoff_limit_per_index=2)
    assert job["spec"]["completions"] == 4 and job["spec"]["parallelism"] == 2
    runs = tmp_path / "runs"
    runs.mkdir()

    # Index 1 is stopped on its first attempt only; index 3 on every attempt.
    def stop(index: int, attempt: int) -> Path | None:
        if index == 3 or (index == 1 and attempt == 0):
            return run_dir(runs, items[index])
        return None

    # As root, mounts() lends the shared volume to the pods' user, as fsGroup would.
    with container.mounts(ENGINE, container.host_data(), runs) as (_, data):
        result = run_indexed_job(job, runs=runs, data=data, stop=stop)

    assert result["most_running"] == 2
    assert result["outcome"] == {
        0: "succeeded",
        1: "succeeded",
        2: "succeeded",
        3: "failed (backoffLimitPerIndex)",
    }
    assert result["attempts"][0] == result["attempts"][2] == [0]
    assert result["attempts"][1] == [130, 0]
    assert result["attempts"][3] == [130, 130, 130]  # 1 + backoffLimitPerIndex attempts
    for index, state in ((0, "done"), (1, "done"), (2, "done"), (3, "interrupted")):
        status = read_json(run_dir(runs, items[index]) / "status.json")
        assert status["state"] == state, (index, status)
    config = read_json(run_dir(runs, items[0]) / "config.json")
    assert config["seed"] == 0 and config["machine_info"]["image"] == "mnist-suite:numpy"


def test_an_index_exiting_2_is_not_retried(numpy_image, tmp_path):
    items = build_plan([JOB], profile="full", seeds=(0, 1, 2, 3), overrides=OVERRIDES)
    job = _job(items, parallelism=2, backoff_limit_per_index=2)
    # An image whose jobs expand differently than the plan the manifest was written for: every
    # pod refuses its item (exit 2, one line) and retrying cannot help.
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    args[args.index("--plan-hash") + 1] = "0" * 12
    runs = tmp_path / "runs"
    runs.mkdir()
    with container.mounts(ENGINE, container.host_data(), runs) as (_, data):
        result = run_indexed_job(job, runs=runs, data=data)
    assert result["attempts"] == {i: [2] for i in range(4)}
    assert set(result["outcome"].values()) == {"failed (FailIndex)"}
    assert not [p for p in runs.rglob("*") if ".logs" not in p.parts]
