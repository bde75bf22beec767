"""What users of Kubernetes and Slurm expect of generated manifests and scripts.

Kubernetes: the recommended labels, a finished-Job TTL, a deadline, a failed-index budget and
pass-through of scheduling options (node selector, tolerations, priority class, labels,
annotations, a Kueue queue), images by digest, all schema-valid (strict, 1.29 and 1.30).
Slurm: account, QoS, constraint and extra ``#SBATCH`` lines; a task stopped before its time
limit is requeued; no script silently points at this workstation's image or MNIST cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from mnist_suite.cli import main

KUBERNETES_VERSIONS = ("1.29.0", "1.30.0")
JOBS = ["softmax", "sgd-original", "--profile", "quick"]
DIGEST = "sha256:" + "ab" * 32
EVERYTHING = [
    "--node-selector", "disktype=ssd", "--toleration", "gpu:NoSchedule",
    "--toleration", "team=ml:NoExecute", "--priority-class", "batch-low", "--label", "team=ml",
    "--annotation", "example.com/note=any text: here", "--queue", "team-q",
    "--image-digest", f"numpy={DIGEST}", "--max-failed-indexes", "5",
    "--active-deadline-seconds", "7200", "--ttl-seconds-after-finished", "3600",
]  # fmt: skip
RECOMMENDED = ("name", "instance", "version", "component", "part-of", "managed-by")


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _jobs(capsys, *extra: str) -> list[dict]:
    code, out, err = _cli(capsys, "k8s", *JOBS, *extra)
    assert code == 0, err
    return list(yaml.safe_load_all(out))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_with_every_option_validate_strictly(capsys, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for docs in (_jobs(capsys), _jobs(capsys, *EVERYTHING)):
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_recommended_labels_and_default_ttl(capsys):
    for job in _jobs(capsys):
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            assert all(f"app.kubernetes.io/{k}" in labels for k in RECOMMENDED), labels
            assert labels["app.kubernetes.io/managed-by"] == "mnist-suite"
        assert job["spec"]["ttlSecondsAfterFinished"] == 7 * 24 * 3600
        assert "activeDeadlineSeconds" not in job["spec"] and "suspend" not in job["spec"]
    numpy, tf = _jobs(capsys)
    component = "app.kubernetes.io/component"
    assert numpy["metadata"]["labels"][component] != tf["metadata"]["labels"][component]
    (none,) = [d for d in _jobs(capsys, "--ttl-seconds-after-finished", "none")][:1]
    assert "ttlSecondsAfterFinished" not in none["spec"]


def test_scheduling_options_pass_through(capsys):
    numpy, tf = _jobs(capsys, *EVERYTHING)
    for job in (numpy, tf):
        spec, pod = job["spec"], job["spec"]["template"]["spec"]
        assert spec["ttlSecondsAfterFinished"] == 3600 and spec["activeDeadlineSeconds"] == 7200
        assert spec["maxFailedIndexes"] == 1  # never above completions
        assert spec["suspend"] is True  # Kueue admits it
        assert pod["nodeSelector"] == {"disktype": "ssd"}
        assert pod["tolerations"] == [
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
        ]
        assert pod["priorityClassName"] == "batch-low"
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            assert labels["team"] == "ml" and labels["kueue.x-k8s.io/queue-name"] == "team-q"
        assert job["metadata"]["annotations"]["example.com/note"] == "any text: here"
    image = lambda job: job["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert image(numpy) == f"mnist-suite:numpy@{DIGEST}"
    assert image(tf) == "mnist-suite:tf"  # no digest given for it: by tag


@pytest.mark.parametrize(
    "argv",
    [
        ["--toleration", "gpu:Sometimes"],
        ["--toleration", "gpu"],
        ["--node-selector", "disktype"],
        ["--node-selector", "bad key=x"],
        ["--label", "team=a b"],
        ["--label", "-team=x"],
        ["--annotation", "Bad Key=x"],
        ["--queue", "a/b"],
        ["--priority-class", "Low!"],
        ["--image-digest", "numpy=sha256:abc"],
        ["--image-digest", "gpu=" + DIGEST],
        ["--ttl-seconds-after-finished", "-1"],
        ["--active-deadline-seconds", "0"],
        ["--max-failed-indexes", "-2"],
    ],
)
def test_bad_pass_through_values_are_refused(capsys, argv):
    code, out, err = _cli(capsys, "k8s", *JOBS, *argv)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert err.splitlines()[-1].count("error") == 1


# --- Slurm ----------------------------------------------------------------------------------


def _script(capsys, tmp_path, *extra: str) -> str:
    code, out, err = _cli(capsys, "slurm", "softmax", "--profile", "quick", "--mode", "python",
                          "--logs", str(tmp_path / "logs"), *extra)  # fmt: skip
    assert code == 0, err
    return out


def test_account_qos_constraint_and_extra_lines(capsys, tmp_path):
    text = _script(capsys, tmp_path, "--account", "proj-42", "--qos", "normal",
                   "--constraint", "intel&avx512", "--sbatch=--mail-type=END",
                   "--sbatch=--exclusive")  # fmt: skip
    for line in ("--account=proj-42", "--qos=normal", "--constraint=intel&avx512",
                 "--mail-type=END", "--exclusive"):  # fmt: skip
        assert f"#SBATCH {line}\n" in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["--sbatch=--mail-type=END\n#SBATCH --wrap=x"],
        ["--sbatch=mail-type=END"],
        ["--sbatch=--array=0-3"],
        ["--sbatch=--output=/tmp/x"],
        ["--sbatch=--comment=a b"],
        ["--account", "a;b"],
        ["--qos", "q\nx"],
        ["--constraint", "a b"],
        ["--signal-seconds", "-1"],
        # Who runs the script, where, and with what environment is not the caller's to set.
        ["--sbatch=--export=ALL,BASH_ENV=/tmp/x"],
        ["--sbatch=--export=ALL,LD_PRELOAD=/tmp/x.so"],
        ["--sbatch=--export"],
        ["--sbatch=--export-file=/tmp/env"],
        ["--sbatch=--chdir=/tmp"],
        ["--sbatch=--uid=0"],
        ["--sbatch=--gid=0"],
        ["--sbatch=--get-user-env"],
        ["--sbatch=-D/tmp"],
        ["--sbatch=--exp=ALL"],  # sbatch reads an unambiguous prefix as the option
        ["--sbatch=--chd=/tmp"],
        # A lead above half the time limit would stop items that could finish.
        ["--time", "2", "--signal-seconds", "120"],
        ["--time", "00:10:00", "--signal-seconds", "301"],
        ["--time", "1-0", "--signal-seconds", "50000"],
    ],
)
def test_bad_slurm_pass_through_is_refused(capsys, tmp_path, argv):
    code, out, err = _cli(capsys, "slurm", "softmax", "--profile", "quick", "--mode", "python",
                          "--logs", str(tmp_path / "logs"), *argv)  # fmt: skip
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, err


def test_a_signal_lead_of_half_the_time_limit_is_accepted(capsys, tmp_path):
    text = _script(capsys, tmp_path, "--time", "00:10:00", "--signal-seconds", "300")
    assert "#SBATCH --signal=B:USR1@300\n" in text and "#SBATCH --time=00:10:00\n" in text
    code, _, err = _cli(capsys, "slurm", "softmax", "--profile", "quick", "--mode", "python",
                        "--logs", str(tmp_path / "logs"), "--time", "00:10:00",
                        "--signal-seconds", "301")  # fmt: skip
    assert code == 2 and "at most half of --time 00:10:00 (300 s)" in err, err


def test_tasks_are_signalled_before_their_time_limit_and_requeued(capsys, tmp_path):
    text = _script(capsys, tmp_path)
    assert "#SBATCH --signal=B:USR1@120\n" in text and "#SBATCH --requeue\n" in text
    plain = _script(capsys, tmp_path, "--signal-seconds", "0")
    assert "--signal" not in plain and "--requeue" not in plain and "trap" not in plain


def test_usr1_stops_the_task_and_requeues_it(capsys, tmp_path):
    """The script run by bash: USR1 reaches the shell, which TERMs the task and requeues it."""
    stubs, log = tmp_path / "stubs", tmp_path / "calls"
    stubs.mkdir()
    python = stubs / "python3"
    python.write_text(
        "#!/bin/bash\n"
        "sleep 60 &\n"
        f"trap 'echo task got TERM >> {log}; kill $!; exit 130' TERM\n"
        f"echo task started >> {log}\n"
        "wait\n"
    )
    (stubs / "scontrol").write_text(f'#!/bin/sh\necho scontrol "$@" >> {log}\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    text = _script(capsys, tmp_path, "--python", str(python))
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0",
           "SLURM_ARRAY_JOB_ID": "77", "HOME": str(tmp_path)}  # fmt: skip
    proc = subprocess.Popen(["bash", str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not (log.exists() and "task started" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "time limit near" in err
    assert log.read_text().splitlines() == ["task started", "task got TERM",
                                            "scontrol requeue 77_0"]  # fmt: skip


@pytest.mark.parametrize("mode", ["auto", "podman", "apptainer"])
def test_no_script_points_at_this_workstation_unless_allowed(capsys, tmp_path, mode, monkeypatch):
    monkeypatch.delenv("MNIST_SUITE_DATA", raising=False)
    base = ["slurm", "softmax", "--profile", "quick", "--mode", mode,
            "--logs", str(tmp_path / "logs")]  # fmt: skip
    code, out, err = _cli(capsys, *base)
    assert code == 2 and "--image-registry is needed" in err and out == "", err
    code, out, err = _cli(capsys, *base, "--image-registry", "registry.example.com/team")
    assert code == 2 and "--data is needed" in err and "cache" in err, err
    data = tmp_path / "mnist.npz"
    code, out, err = _cli(capsys, *base, "--image-registry", "registry.example.com/team",
                          "--data", str(data))  # fmt: skip
    assert code == 0 and "registry.example.com/team/mnist-suite:" in out, err
    assert str(data) in out
    code, out, err = _cli(capsys, *base, "--allow-local-paths")
    assert code == 0 and ("docker://mnist-suite:" in out or mode == "podman"), err
    assert Path(tmp_path / "logs").is_dir()


def test_python_mode_needs_no_registry(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_SUITE_DATA", raising=False)
    assert "mnist_suite" in _script(capsys, tmp_path)
