"""A real single-node Slurm (munged, slurmctld, slurmd on localhost) runs a plan as an array job.

Everything lives in a temporary folder: its own slurm.conf, munge socket, spool, state and free
ports, so nothing of the machine's own Slurm or munge set-up is read or touched. The daemons are
children of the test and stopped at the end. Without the binaries the test is skipped (with the
reason); if they are there but the cluster does not come up, the test fails with their logs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo")
MUNGE_KEY = Path("/etc/munge/munge.key")
# Four softmax-original runs of 1,000 samples: seconds each, but a full Python + MNIST start-up.
PLAN = ["softmax-original", "--profile", "quick", "--seeds", "0-3",
        "--set", "n_train=1000", "--set", "eval_every=500"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tails(folder: Path) -> str:
    return "\n".join(
        f"--- {p.name}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
        for p in sorted(folder.glob("*.log"))
    )


class Cluster:
    """munged + slurmctld + slurmd for one node of 2 CPUs, configured under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool"):
            (r / sub).mkdir()
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=mnistsuitetest",
                    f"SlurmctldHost={self.host}(127.0.0.1)",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r}/munge.socket",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd.pid",
                    f"SlurmctldLogFile={r}/slurmctld.log",
                    f"SlurmdLogFile={r}/slurmd.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN",
                    "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                ]
            )
            + "\n"
        )

    def start(self) -> None:
        r = self.root
        self.write_config()
        self._spawn(
            "munged", "--foreground", "--force", f"--socket={r}/munge.socket",
            f"--key-file={MUNGE_KEY}", f"--log-file={r}/munged.log",
            f"--pid-file={r}/munged.pid", f"--seed-file={r}/munged.seed",
        )  # fmt: skip
        self._wait_for(lambda: (r / "munge.socket").exists(), "munged's socket")
        self._spawn("slurmctld", "-D", "-i", "-L", f"{r}/slurmctld.log")
        self._wait_for(self._controller_answers, "slurmctld to answer")
        self._spawn("slurmd", "-D", "-L", f"{r}/slurmd.log")
        self._wait_for(self._node_idle, "the node to be idle")

    def _spawn(self, *argv: str) -> None:
        log = open(self.root / f"{argv[0]}.out.log", "w")  # noqa: SIM115 (closed at stop)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        proc.log = log
        self.procs.append(proc)

    def _wait_for(self, ready, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                pytest.fail(f"{dead[0]} exited while waiting for {what}:\n{_tails(self.root)}")
            if ready():
                return
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{_tails(self.root)}")

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=30)

    def _controller_answers(self) -> bool:
        return self._run("sinfo", "-h").returncode == 0

    def _node_idle(self) -> bool:
        return self._run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle"

    def submit(self, script: Path) -> str:
        proc = self._run("sbatch", "--parsable", str(script))
        if proc.returncode != 0:
            pytest.fail(f"sbatch failed: {proc.stderr}\n{_tails(self.root)}")
        return proc.stdout.strip().split(";")[0]

    def wait(self, job: str, timeout: float = 900.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._run("squeue", "-h", "-j", job).stdout.strip():
                return
            time.sleep(2)
        pytest.fail(f"array job {job} still queued or running after {timeout:.0f} s")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.log.close()


@pytest.fixture
def cluster(tmp_path_factory):
    missing = [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None]
    if missing:
        pytest.skip(f"Slurm/munge not installed ({', '.join(missing)} not on PATH)")
    if os.geteuid() != 0:
        pytest.skip("slurmd must start as root to run tasks (not root here)")
    if not MUNGE_KEY.is_file():
        pytest.skip(f"no munge key at {MUNGE_KEY} (the munge package creates it)")
    # munged insists that its socket's folder is not writable by others: a private folder.
    root = tmp_path_factory.mktemp("slurm")
    root.chmod(0o700)
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _suite(*argv: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_suite", *argv], capture_output=True, text=True, env=env
    )


def test_array_job_runs_every_item_on_a_real_slurm(cluster, tmp_path, mnist):
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    source = str(Path(__file__).resolve().parent.parent)  # this checkout's `training`
    env = {**cluster.env, "PYTHONPATH": source}
    script = _suite(
        "slurm", *PLAN, "--mode", "python", "--python", sys.executable, "--parallelism", "2",
        "--memory", "500M", "--time", "00:15:00", "--runs", str(runs), "--logs", str(logs),
        "--data", str(mnist.location), env=env,
    )  # fmt: skip
    assert script.returncode == 0, script.stderr
    assert "#SBATCH --array=0-3%2" in script.stdout
    (tmp_path / "job.sbatch").write_text(script.stdout)

    started = time.monotonic()
    job = cluster.submit(tmp_path / "job.sbatch")
    cluster.wait(job)
    seconds = time.monotonic() - started

    task_logs = sorted(logs.glob(f"mnist-suite-{job}_*.out"))
    assert len(task_logs) == 4, f"per-task logs: {task_logs}\n{_tails(cluster.root)}"
    status = _suite("plan", *PLAN, "--status", "--runs", str(runs), "--json", env=env)
    states = [item["state"] for item in json.loads(status.stdout)["items"]]
    detail = "\n".join(f"{p.name}: {p.read_text()[-400:]}" for p in task_logs)
    assert states == ["done"] * 4, f"{states}\n{detail}"
    for i, log in enumerate(sorted(task_logs, key=lambda p: int(p.stem.rsplit("_", 1)[1]))):
        assert log.read_text().startswith(f"plan item {i} (numpy)")
    pending = _suite("plan", *PLAN, "--pending", "--runs", str(runs), env=env)
    assert pending.stdout.startswith("nothing pending"), pending.stdout
    print(f"4-task array on single-node Slurm: {seconds:.1f} s from sbatch to the last task")


# --- what sbatch itself reads from the script (its client alone: no daemon, no munge) --------


def _sbatch_reads(script: Path, folder: Path) -> dict[str, str]:
    """The options sbatch reads from ``script``: its ``-vvv`` list of defined options, printed
    before it looks for a controller (none answers on the free port it is given)."""
    conf = folder / "parse.conf"
    conf.write_text(
        f"ClusterName=parse\nSlurmctldHost=localhost\nSlurmctldPort={_free_port()}\n"
        "NodeName=localhost CPUs=2\nPartitionName=p Nodes=localhost Default=YES\n"
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    proc = subprocess.Popen(["sbatch", "-vvv", str(script)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    options, lines = {}, []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "end of defined options" in line:
                return options
            key, found, value = line.removeprefix("sbatch: ").partition(" : ")
            if found:
                options[key.strip()] = value.strip()
    finally:
        proc.kill()
        proc.wait()
    pytest.fail("sbatch listed no options:\n" + "".join(lines[-15:]))


def test_sbatch_reads_the_scripts_own_limits_past_every_accepted_extra_line(tmp_path):
    """The extra lines the suite accepts leave sbatch's time, size, output and requeue the
    script's; the lines it refuses would have changed them (sbatch: the last one wins)."""
    if shutil.which("sbatch") is None:
        pytest.skip("Slurm's client is not installed (sbatch not on PATH)")
    logs = tmp_path / "logs"
    accepted = ["--mail-type=END", "--exclusive", "--nodelist=localhost", "--comment=x",
                "--nice=10", "--hold", "--gres=gpu:1"]  # fmt: skip
    script = _suite(
        "slurm", *PLAN, "--mode", "python", "--time", "00:10:00", "--signal-seconds", "300",
        "--memory", "500M", "--cpus", "2", "--logs", str(logs), "--runs", str(tmp_path / "runs"),
        *(f"--sbatch={line}" for line in accepted),
    )  # fmt: skip
    assert script.returncode == 0, script.stderr
    path = tmp_path / "job.sbatch"
    path.write_text(script.stdout)
    read = _sbatch_reads(path, tmp_path)
    own = {"time": "00:10:00", "mem": "500", "cpus-per-task": "2", "requeue": "requeue",
           "signal": "B:USR1@300", "output": f"{logs}/%x-%A_%a.out"}  # fmt: skip
    assert {k: read.get(k) for k in own} == own, read
    assert not {"no-requeue", "time-min", "ntasks", "nodes", "container"} & set(read), read
    for line, key, value in [("--time=1", "time", "00:01:00"),
                             ("--no-requeue", "no-requeue", "no-requeue"),
                             ("--cpus-per-task=64", "cpus-per-task", "64"),
                             ("--container=/", "container", "/")]:  # fmt: skip
        refused = _suite("slurm", *PLAN, "--mode", "python", "--logs", str(logs),
                         f"--sbatch={line}")  # fmt: skip
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        by_hand = script.stdout.replace("#SBATCH --hold\n", f"#SBATCH --hold\n#SBATCH {line}\n")
        path.write_text(by_hand)
        assert _sbatch_reads(path, tmp_path)[key] == value
