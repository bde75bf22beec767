"""Launchers: the local pool for real, Kubernetes manifests against the schemas, sbatch scripts."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml

from mnist_suite.launch import LaunchOptions
from mnist_suite.launch.kubernetes import KubernetesOptions, documents, manifests, to_yaml
from mnist_suite.launch.local import LocalLauncher
from mnist_suite.launch.slurm import SlurmOptions, sbatch_script
from mnist_suite.plan import build_plan, plan_hash, subset
from mnist_suite.runs import load_run

# Backoff per index and FailIndex need 1.29; validated there and at the newest schema we have.
KUBERNETES_VERSIONS = ("1.29.0", "1.30.0")
TINY = ("n_train=1000", "eval_every=500")
SGD_TINY = ("n_train=2000", "epochs=1")
# The `run` arguments that rebuild _plan() on a worker.
RUN_ARGS = ["softmax", "sgd-grid", "mlp-original", "--profile", "quick", "--seeds", "0,1"]


def _plan(jobs=("softmax", "sgd-grid", "mlp-original"), seeds=(0, 1)):
    return build_plan(list(jobs), profile="quick", seeds=seeds)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    items = _plan()
    text = manifests(items, items, RUN_ARGS, KubernetesOptions())
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["Job", "Job"]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError
    # The plan's ConfigMap variant, and a subset, validate too.
    chosen = subset(items, only=(0, 5))
    for doc in documents(items, chosen, ["--plan", "plan.json"], KubernetesOptions()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_job_per_flavour_indexes_its_own_items():
    items = _plan()
    numpy_job, tf_job = documents(items, items, RUN_ARGS, KubernetesOptions(parallelism=3))
    for job, flavour in ((numpy_job, "numpy"), (tf_job, "tf")):
        spec = job["spec"]
        mine = [i for i in items if i.flavour == flavour]
        assert spec["completionMode"] == "Indexed"
        assert spec["completions"] == len(mine) == 4
        assert spec["parallelism"] == 3 and spec["backoffLimitPerIndex"] == 2
        rules = spec["podFailurePolicy"]["rules"]
        assert rules[0]["action"] == "FailIndex" and rules[0]["onExitCodes"]["values"] == [2]
        assert rules[1] == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["image"] == f"mnist-suite:{flavour}"
        assert container["resources"]["limits"] == container["resources"]["requests"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/data"]["readOnly"] and "/runs" in mounts and "/tmp" in mounts
        args = container["args"]
        assert args[args.index("--flavour") + 1] == flavour
        assert args[args.index("--plan-hash") + 1] == plan_hash(items)
    # What a pod with JOB_COMPLETION_INDEX=k runs: the k-th item of its flavour.
    assert [i.index for i in subset(items, flavour="numpy")] == [0, 3, 4, 7]


def test_pod_command_runs_the_right_item(tmp_path):
    """The tf Job's args select the tf items, in plan order: completion index k is the k-th."""
    items = _plan()
    (_, tf_job) = documents(items, items, RUN_ARGS, KubernetesOptions())
    args = tf_job["spec"]["template"]["spec"]["containers"][0]["args"]
    from mnist_suite.batch import Selection, select
    from mnist_suite.cli import build_parser
    from mnist_suite.options import from_arguments

    parsed = build_parser().parse_args([*args[:-2], "--runs", str(tmp_path)])
    _, chosen, _ = select(from_arguments(Selection, parsed))
    assert [i.index for i in chosen] == [1, 2, 5, 6]


def test_rerun_job_for_some_items_gets_its_own_name():
    items = _plan()
    chosen = subset(items, only=(2, 3))
    docs = documents(items, chosen, ["x"], KubernetesOptions())
    names = [d["metadata"]["name"] for d in docs]
    full = [d["metadata"]["name"] for d in documents(items, items, ["x"], KubernetesOptions())]
    assert len(names) == 2 and not set(names) & set(full)
    args = docs[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--items") + 1] == "2" and docs[1]["spec"]["completions"] == 1


def test_yaml_emitter_round_trips():
    data = {"a": [1, {"b": "x: y", "c": [True, None]}, []], "d": {}, "e": "2", "f": [[1, 2]]}
    assert yaml.safe_load(to_yaml(data)) == data


def test_sbatch_script_array_logs_and_modes(tmp_path):
    items = _plan()
    options = SlurmOptions(
        runs=tmp_path / "runs", parallelism=2, logs=tmp_path / "logs", allow_local_paths=True
    )
    text = sbatch_script(items, items, RUN_ARGS, options)
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-7%2\n" in text
    assert f"#SBATCH --output={tmp_path / 'logs'}/%x-%A_%a.out\n" in text
    assert "FLAVOURS=(numpy tf tf numpy numpy tf tf numpy)" in text
    assert "command -v apptainer" in text and "podman run --rm" in text
    assert f"--plan-hash {plan_hash(items)}" in text
    python = sbatch_script(
        items,
        subset(items, only=(4, 5, 7)),
        ["softmax"],
        SlurmOptions(runs=tmp_path / "runs", mode="python", python="/opt/venv/bin/python"),
    )
    assert "#SBATCH --array=4-5,7\n" in python
    assert (
        'run() { exec /opt/venv/bin/python -m mnist_suite "${ARGS[@]}" --runs "$RUNS"; }' in python
    )
    assert "podman" not in python and "apptainer" not in python
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid shell


@pytest.mark.slow
def test_local_pool_runs_a_small_plan_with_two_workers(tmp_path, mnist, capsys):
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1, 2), overrides=TINY)
    runs = tmp_path / "runs"
    lines = []
    codes = LocalLauncher(echo=lines.append).launch(items, LaunchOptions(runs=runs, workers=2))
    assert codes == {0: 0, 1: 0, 2: 0}
    assert lines[0].startswith("3 items, 2 workers x ")
    finished = [line for line in lines if line.startswith("[")]
    assert len(finished) == 3 and all(": done (exit 0" in line for line in finished)
    from mnist_suite.batch import item_states

    assert item_states(items, runs) == ["done"] * 3
    # Every worker had its thread pools capped.
    import json

    for item in items:
        config = json.loads((runs / item.job / item.run_id / "config.json").read_text())
        assert config["machine_info"]["threads"]["OPENBLAS_NUM_THREADS"] == str(
            LocalLauncher().sizes(3, LaunchOptions(runs=runs, workers=2))[1]
        )


# A worker that aborts (as a segfaulting extension would) when it is given seed 1's item, and
# serves every other item for real.
CRASH_ON_SEED_1 = """
import os, sys
from mnist_suite import cli
from mnist_suite.launch.worker import serve
run = cli.main
def main(argv):
    if argv[argv.index("--seed") + 1] == "1":
        print("boom", file=sys.stderr, flush=True)
        os.abort()
    return run(argv)
cli.main = main
sys.exit(serve())
"""


class _CrashingOne(LocalLauncher):
    def worker_command(self, kind, options, number):
        return [sys.executable, "-c", CRASH_ON_SEED_1]


@pytest.mark.slow
def test_a_crashing_item_stays_alone_and_is_tried_once_more(tmp_path, mnist):
    from mnist_suite.batch import batch_exit_code

    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1), overrides=TINY)
    lines = []
    codes = _CrashingOne(echo=lines.append).launch(items, LaunchOptions(tmp_path, workers=2))
    assert codes[0] == 0 and codes[1] < 0  # killed by SIGABRT, twice
    retries = [line for line in lines if "trying it once more in a fresh worker" in line]
    assert len(retries) == 1 and retries[0].startswith("#1 softmax-original:")
    assert "    boom" in lines, "the failed item's log tail is printed"
    assert batch_exit_code(codes.values()) == 1


@pytest.mark.slow
def test_a_warm_worker_gives_each_item_the_figures_it_gets_alone(tmp_path, mnist):
    """Two items in one worker: the second's figures equal those of a process of its own."""
    items = build_plan(["sgd-original"], profile="quick", seeds=(0, 1), overrides=SGD_TINY)
    pooled = tmp_path / "pooled"
    codes = LocalLauncher(echo=lambda line: None).launch(items, LaunchOptions(pooled, workers=1))
    assert codes == {0: 0, 1: 0}
    alone = tmp_path / "alone"
    argv = [sys.executable, "-m", "mnist_suite", *items[1].argv(), "--runs", str(alone)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    runs = [load_run(root / "sgd-original" / items[1].run_id) for root in (pooled, alone)]
    figures = [
        {
            k: v
            for k, v in r.metrics.items()
            if "seconds" not in k and k not in ("samples_per_second", "time_to_target")
        }
        for r in runs
    ]
    assert figures[0]["test_accuracy"] > 0.5 and figures[0] == {**figures[1], "process_item": 2}
    first = load_run(pooled / "sgd-original" / items[0].run_id)
    assert first.metrics["process_item"] == 1 and runs[1].metrics["process_item"] == 1
    assert first.status["pid"] == runs[0].status["pid"]  # one worker ran both
    for run in (first, runs[0]):
        assert 0 < run.metrics["train_seconds"] < run.metrics["item_seconds"]


@pytest.mark.slow
def test_train_cli_uses_the_pool(tmp_path, mnist):
    argv = [
        sys.executable,
        "-m",
        "mnist_suite",
        "train",
        "softmax-original",
        "--profile",
        "quick",
        "--seeds",
        "0-1",
        "--workers",
        "2",
        "--runs",
        str(tmp_path / "runs"),
    ]
    argv += [a for kv in TINY for a in ("--set", kv)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": done (exit 0") == 2, shlex.join(argv)


@pytest.mark.slow
def test_ctrl_c_stops_the_pool_and_running_items_end_interrupted(tmp_path, mnist):
    """A terminal's Ctrl-C reaches the pool, which stops every item it runs."""
    import os
    import signal
    import time

    from mnist_suite.batch import item_states

    # Slow items (the full 60,000 samples), so the interrupt lands mid-run.
    overrides = ("eval_every=500",)
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1, 2), overrides=overrides)
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "mnist_suite", "train", "softmax-original", "--profile", "quick",
            "--seeds", "0-2", "--set", overrides[0], "--workers", "1",
            "--runs", str(runs)]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    first = runs / items[0].job / items[0].run_id / "history.jsonl"
    deadline = time.monotonic() + 300
    while not (first.exists() and first.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "stopping on SIGINT: 1 running items end as interrupted, 2 not started" in out
    assert item_states(items, runs) == ["interrupted", "missing", "missing"]


def test_slurm_podman_tasks_are_confined_and_never_root(tmp_path):
    """The sbatch's podman line carries the container launcher's confinement; root is refused."""
    from mnist_suite.launch.container import confinement

    items = _plan()
    options = SlurmOptions(
        runs=tmp_path / "runs", mode="podman", data=tmp_path / "mnist.npz", allow_local_paths=True
    )
    text = sbatch_script(items, items, RUN_ARGS, options)
    line = next(x for x in text.splitlines() if x.startswith("run() { exec podman run"))
    for flag in ("--cap-drop=ALL", "--read-only", "no-new-privileges", "--pids-limit"):
        assert flag in line and flag in confinement()
    assert 'if [ "$(id -u)" = 0 ]' in text and "exit 2" in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
