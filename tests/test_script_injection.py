"""No option and no saved-plan field can run a command through a generated script or manifest.

Property: hostile strings (quotes, ``$()``, backticks, newlines, ``${IFS}``, NUL, unicode) go
into every string option of ``slurm`` and ``k8s`` and into every field of a saved plan. Either
the command refuses with exit 2 and one line, or its output is harmless: the sbatch script,
run by bash with a fake engine (``podman``, ``apptainer``, ``python3`` that exit 0), never
creates the marker file, and the Kubernetes YAML parses back to exactly the documents built
(every value a string) and validates strictly against the 1.29 schemas.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
import yaml

from mnist_suite.cli import main

SEED = 20261201
PLAN_JOB = ["softmax", "--profile", "quick", "--seeds", "0"]
STUBS = ("podman", "apptainer", "python3", "python", "srun")


def payloads(marker: Path, rng: random.Random, n: int) -> list[str]:
    """Fixed attacks on ``marker`` plus ``n`` random mixes of shell-active fragments."""
    m = str(marker)
    fixed = [
        f"$(touch {m})",
        f"`touch {m}`",
        f"x\ntouch {m}",
        f"x';touch {m};'",
        f'x";touch {m};"',
        f"m$(touch${{IFS}}{m}).npz",
        f"r.io/$(touch {m})",
        f'r.io/"$(touch {m})"',
        f"4G\n#SBATCH --wrap=touch {m}",
        f"x\x00$(touch {m})",
        f"é☃$(touch {m})",
        f"--x=$(touch {m})",
        f"%x$(touch {m})",
    ]
    fragments = [
        f"$(touch {m})", f"`touch {m}`", f"touch${{IFS}}{m}", f";touch {m};", "'", '"', "\n",
        "\r", "\t", "\x00", "${IFS}", "$((1))", "${HOME}", "\\", "|", "&", "&&", "<", ">", "*",
        "?", "[", "]", "{", "}", "~", "!", "#", "%", ":", ",", "/", "..", " ", "--", "é", "☃",
        "a", "Z", "0", "-", ".", "_",
    ]  # fmt: skip
    mixed = ["".join(rng.choice(fragments) for _ in range(rng.randint(1, 8))) for _ in range(n)]
    return fixed + mixed


@pytest.fixture
def fake_engine(tmp_path) -> Path:
    """A folder of stub programs that exit 0 (``id -u`` says 1000, so the podman line runs)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in STUBS:
        (stubs / name).write_text("#!/bin/sh\nexit 0\n")
    (stubs / "id").write_text("#!/bin/sh\necho 1000\n")
    for path in stubs.iterdir():
        path.chmod(0o755)
    return stubs


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code: int, err: str) -> bool:
    """Exit 2 with one line, or argparse's usage error (exit 2, usage then one error line)."""
    assert "Traceback" not in err, err
    if code == 2:
        if err.startswith("usage: "):
            assert ": error: " in err.splitlines()[-1], err
        else:
            assert err.startswith("error: ") and err.count("\n") == 1, err
        return True
    assert code == 0, err
    return False


def _execute_script(script: str, stubs: Path, work: Path, marker: Path) -> None:
    path = work / "job.sbatch"
    path.write_text(script)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(work),
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_CPUS_PER_TASK": "1",
    }
    subprocess.run(["bash", str(path)], cwd=work, env=env, capture_output=True, timeout=30)
    assert not marker.exists(), script


SLURM_OPTIONS = (
    "--name", "--memory", "--time", "--partition", "--logs", "--image-registry", "--image-tag",
    "--data", "--python", "--runs", "--account", "--qos", "--constraint", "--sbatch",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["python", "auto", "podman", "apptainer"])
def test_no_slurm_option_runs_a_command(tmp_path, capsys, fake_engine, mode, monkeypatch):
    rng = random.Random(f"{SEED}-slurm-{mode}")
    marker = tmp_path / "PWNED"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # relative paths among the values resolve (and get made) here
    written = 0
    for option in SLURM_OPTIONS:
        for value in payloads(marker, rng, 12):
            argv = ["slurm", *PLAN_JOB, "--mode", mode, "--logs", str(work / "logs")]
            argv += ["--allow-local-paths", "--sbatch=--comment=x"]  # more of the script in play
            argv += ["--runs", str(work / "runs"), "--data", str(tmp_path / "mnist.npz")]
            if option != "--python":
                argv += ["--python", str(fake_engine / "python3")]
            argv.append(f"{option}={value}")  # the last occurrence wins
            code, out, err = _cli(capsys, *argv)
            assert not marker.exists(), (option, value)
            if not _refused(code, err):
                _execute_script(out, fake_engine, work, marker)
                written += 1
    assert written >= len(SLURM_OPTIONS)  # harmless values do produce scripts that run


# Extra #SBATCH lines: what the script sets (under any name sbatch reads as it), its container,
# and forms the check cannot read as one long option.
SCRIPT_SETS = [
    "--time=1", "--tim=1", "--time-min=1", "--mem=1T", "--mem-per-cpu=1T", "--mem-per-gpu=1T",
    "--cpus-per-task=1024", "--cpus-per-t=1024", "--cpus-per-gpu=64", "--mincpus=64",
    "--ntasks=64", "--ntasks-per-node=64", "--nodes=100", "--node=100", "--no-requeue", "--no-r",
    "--requeue", "--signal=B:USR1@1", "--output=/tmp/x", "--error=/tmp/x", "--open-mode=truncate",
    "--job-name=x", "--array=0-9", "--partition=p", "--account=a", "--qos=q", "--constraint=c",
]  # fmt: skip
CONTAINER_LINES = [
    "--container=/b", "--contai=/b", "--container-image=docker://x", "--container-mounts=/:/host",
    "--container-remap-root", "--container-writable", "--no-container-remap-root", "--no-cont",
]  # fmt: skip
NOT_ONE_LONG_OPTION = ["-t1", "-t", "-c1024", "-N100", "--time 1", "1", "--mem 1T", "-Jx"]


@pytest.mark.parametrize("line", SCRIPT_SETS + CONTAINER_LINES + NOT_ONE_LONG_OPTION)
def test_an_extra_sbatch_line_never_changes_what_the_script_sets(tmp_path, capsys, line):
    logs = tmp_path / "logs"
    code, out, err = _cli(capsys, "slurm", *PLAN_JOB, "--mode", "python", "--logs", str(logs),
                          f"--sbatch={line}")  # fmt: skip
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("error: --sbatch ") and "Traceback" not in err, err
    if line in SCRIPT_SETS:
        assert "which the script sets itself" in err or "the script sets --" in err, err
    elif line in CONTAINER_LINES:
        assert "in what container" in err and err.rstrip().endswith("not allowed"), err
    else:
        assert "expected one long sbatch option" in err, err
    assert not logs.exists()  # nothing written


def test_the_signal_lead_is_checked_against_the_only_time_limit(tmp_path, capsys):
    """A later --time (or --time-min) would shorten the limit under the lead: refused."""
    base = ["slurm", *PLAN_JOB, "--mode", "python", "--logs", str(tmp_path / "logs"),
            "--time", "00:10:00", "--signal-seconds", "300"]  # fmt: skip
    code, out, err = _cli(capsys, *base)
    assert code == 0 and "#SBATCH --time=00:10:00\n" in out, err
    assert [line for line in out.splitlines() if "--time" in line] == ["#SBATCH --time=00:10:00"]
    for line in ("--time=1", "--time-min=1", "--t=1"):
        code, out, err = _cli(capsys, *base, f"--sbatch={line}")
        assert code == 2 and out == "" and err.count("\n") == 1, err


def test_harmless_extra_sbatch_lines_follow_the_scripts_own(tmp_path, capsys):
    extra = ["--mail-type=END", "--exclusive", "--nodelist=n1", "--comment=x", "--nice=10",
             "--gres=gpu:1", "--begin=now+60"]  # fmt: skip
    lines = [f"--sbatch={e}" for e in extra]
    code, out, err = _cli(capsys, "slurm", *PLAN_JOB, "--mode", "python",
                          "--logs", str(tmp_path / "logs"), *lines)  # fmt: skip
    assert code == 0, err
    directives = [line.removeprefix("#SBATCH ") for line in out.splitlines() if "#SBATCH" in line]
    assert directives[-len(extra) :] == extra and directives[-len(extra) - 1] == "--requeue"


K8S_OPTIONS = (
    "--name", "--namespace", "--image-registry", "--image-tag", "--runs-claim", "--data-claim",
    "--data-file", "--cpu", "--memory",
)  # fmt: skip


def test_no_k8s_option_escapes_its_string(tmp_path, capsys):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    rng = random.Random(f"{SEED}-k8s")
    marker = tmp_path / "PWNED"
    accepted = 0
    for option in K8S_OPTIONS:
        for value in [*payloads(marker, rng, 12), "a", "x-0", "2"]:  # the last: harmless
            code, out, err = _cli(capsys, "k8s", *PLAN_JOB, f"{option}={value}")
            if _refused(code, err):
                continue
            docs = list(yaml.safe_load_all(out))
            for doc in docs:
                kubernetes_validate.validate(doc, "1.29.0", strict=True)
            # Accepted means carried as data: the value is inside one of the strings, whole.
            assert any(value in text for text in _strings(docs)), (option, value)
            accepted += 1
    assert not marker.exists()
    assert accepted >= len(K8S_OPTIONS)  # harmless values pass (digits, letters, '-')


def _strings(obj) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


# Every field of a saved plan item, with hostile strings and wrong types.
WRONG_TYPES = ["0", ["softmax"], None, -1, 10**30, 1.5, True, {}, "", "numpy tf"]
PLAN_FIELDS = ("index", "job", "cell", "cell_index", "seed", "profile", "run_id", "flavour")


@pytest.mark.slow
def test_no_saved_plan_field_reaches_a_script(tmp_path, capsys, fake_engine):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    rng = random.Random(f"{SEED}-plan")
    marker = tmp_path / "PWNED"
    work = tmp_path / "work"
    work.mkdir()
    saved = tmp_path / "good.json"
    code, _, err = _cli(capsys, "plan", *PLAN_JOB, "--save", str(saved))
    assert code == 0, err
    good = json.loads(saved.read_text())
    cases = [(f, v) for f in PLAN_FIELDS for v in [*payloads(marker, rng, 4), *WRONG_TYPES]]
    cases += [("overrides", [v]) for v in payloads(marker, rng, 6)]
    cases += [("overrides", "lr=0.1"), ("extra", "x"), ("items", None)]
    for field, value in cases:
        doc = json.loads(json.dumps(good))
        if doc["items"][0].get(field, ...) == value:
            continue  # not a mutation
        if field == "items":
            doc["items"] = value
        else:
            doc["items"][0][field] = value
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps(doc))
        for command in (
            ["plan", "--plan", str(plan), "--json"],
            ["slurm", "--plan", str(plan), "--mode", "python", "--logs", str(work / "logs"),
             "--python", str(fake_engine / "python3")],
            ["k8s", "--plan", str(plan)],
        ):  # fmt: skip
            code, out, err = _cli(capsys, *command)
            assert _refused(code, err), (field, value, command[0])  # every mutation is invalid
    assert not marker.exists()
    # The unmodified plan still goes through all three.
    code, out, err = _cli(capsys, "k8s", "--plan", str(saved))
    assert code == 0, err
    for doc in yaml.safe_load_all(out):
        kubernetes_validate.validate(doc, "1.29.0", strict=True)
    code, out, err = _cli(
        capsys, "slurm", "--plan", str(saved), "--mode", "python", "--logs", str(work / "logs"),
        "--python", str(fake_engine / "python3"),
    )  # fmt: skip
    assert code == 0, err
    _execute_script(out, fake_engine, work, marker)


def test_sbatch_for_a_real_plan_still_runs_with_the_fake_engine(tmp_path, capsys, fake_engine):
    """The quoting keeps scripts working: each mode reaches its engine with the right image."""
    log = tmp_path / "calls"
    for name in ("podman", "apptainer"):
        (fake_engine / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {log}\n')
    work = tmp_path / "work"
    work.mkdir()
    for mode in ("podman", "apptainer"):
        code, out, err = _cli(
            capsys, "slurm", *PLAN_JOB, "--mode", mode, "--logs", str(work / "logs"),
            "--image-registry", "registry.example.com/team", "--image-tag=-v1",
            "--data", str(tmp_path / "mnist.npz"),
        )  # fmt: skip
        assert code == 0, err
        _execute_script(out, fake_engine, work, tmp_path / "PWNED")
    calls = log.read_text()
    assert "registry.example.com/team/mnist-suite:numpy-v1" in calls
    assert "docker://registry.example.com/team/mnist-suite:numpy-v1" in calls
