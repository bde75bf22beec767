"""Job registry, profiles, strict overrides and the CLI's one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from mnist_suite.config import apply_overrides, config_hash
from mnist_suite.errors import ConfigError
from mnist_suite.jobs import all_jobs, get_job
from mnist_suite.plan import run_id


@dataclass(frozen=True)
class C:
    lr: float = 0.1
    epochs: int = 3
    nesterov: bool = False
    widths: tuple[int, ...] = (256,)
    name: str = "x"
    clip: float | None = None


def test_overrides_parse_by_field_type():
    c = apply_overrides(
        C(), ["lr=1e-3", "epochs=7", "nesterov=true", "widths=512, 256", "name=y", "clip=none"]
    )
    assert c == C(lr=1e-3, epochs=7, nesterov=True, widths=(512, 256), name="y", clip=None)
    assert apply_overrides(C(), ["clip=0.5"]).clip == 0.5


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("lrr=1", "unknown key for C .valid: lr, epochs"),
        ("epochs=2.5", "expected int"),
        ("nesterov=maybe", "expected bool"),
        ("lr", "expected key=value"),
        ("widths=a,b", "expected int"),
    ],
)
def test_bad_overrides_are_named(pair, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(C(), [pair])


def test_config_hash_is_stable_and_sensitive():
    assert config_hash("a", {"x": 1}) == config_hash("a", {"x": 1})
    assert config_hash("a", {"x": 1}) != config_hash("a", {"x": 2})


def test_every_job_is_well_formed():
    jobs = all_jobs()
    assert {"softmax-original", "softmax"} <= set(jobs)
    for name, job in jobs.items():
        assert job.name == name and job.summary and "\n" not in job.summary
        full, quick = job.resolve("full"), job.resolve("quick")
        assert job.expand(full) and job.expand(quick)
        labels = [label for label, _ in job.expand(full)]
        assert len(labels) == len(set(labels)), f"{name}: duplicate cell labels"


def test_run_ids_are_deterministic_and_distinct():
    job = get_job("softmax")
    cfg = job.resolve("quick")
    assert run_id(job, "", cfg, "quick", 0) == run_id(job, "", cfg, "quick", 0)
    assert run_id(job, "", cfg, "quick", 0) != run_id(job, "", cfg, "quick", 1)
    assert run_id(job, "", cfg, "quick", 0) != run_id(job, "", job.resolve("full"), "full", 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope"], "unknown job 'nope'"),
        (["run", "softmax", "--set", "bogus=1"], "unknown key"),
        (["run", "softmax", "--set", "lr=-1"], "lr=-1.0 must be > 0"),
        (["run", "softmax", "--set", "batch_size=0"], "batch_size=0 must be > 0"),
        (["run", "softmax", "--set", "batch_size=100000"], "exceeds the"),
        (["run", "softmax-original", "--set", "eta=abc"], "expected float"),
        (["run", "softmax", "--index", "3"], "index 3: the plan has items 0..0"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(run_cli, argv, message):
    code, _, err = run_cli(*argv)
    assert code == (1 if "exceeds" in message else 2), err
    assert message in err or pytest.fail(err)
    assert "Traceback" not in err


def test_list_and_cells(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0 and any(line.startswith("softmax-original ") for line in out.splitlines())
    code, out, _ = run_cli("cells", "softmax")
    assert code == 0 and out == "0\tsoftmax\n"


def test_list_json_gives_every_job_its_fields_configs_and_fingerprint(run_cli):
    from mnist_suite.fingerprint import of_job
    from mnist_suite.jobs import all_jobs

    code, out, _ = run_cli("list", "--json")
    listed = {job["name"]: job for job in json.loads(out)}
    assert code == 0 and set(listed) == set(all_jobs())
    softmax = listed["softmax"]
    assert softmax["fingerprint"] == of_job(all_jobs()["softmax"]) != ""
    assert softmax["family"] == "classifier" and softmax["batch"] is False
    quick, full = all_jobs()["softmax"].resolve("quick"), all_jobs()["softmax"].resolve("full")
    assert softmax["config"]["quick"]["epochs"] == quick.epochs
    assert softmax["config"]["full"]["epochs"] == full.epochs
    assert listed["sgd-grid"]["batch"] is True


@pytest.mark.parametrize("old", ["softmax-seed", "mlp-seed", "sgd-seed", "ae-seed"])
def test_former_job_names_are_aliases_that_name_the_new_one(run_cli, old):
    """The jobs that reproduce the original projects had "-seed" names: still accepted, noted."""
    new = old.replace("-seed", "-original")
    code, out, err = run_cli("plan", old, "--profile", "quick", "--json")
    assert code == 0, err
    assert f"{old!r} is now called {new!r}" in err
    assert {item["job"] for item in json.loads(out)["items"]} == {new}


def test_listing_and_numpy_jobs_never_import_tensorflow(tmp_path, mnist):
    code = (
        "import sys\n"
        "from mnist_suite.cli import main\n"
        "assert main(['list']) == 0\n"
        f"assert main(['run', 'softmax', '--profile', 'quick', '--out', r'{tmp_path}']) == 0\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_bare_train_estimates_instead_of_running_everything(run_cli, tmp_path):
    code, out, err = run_cli("train", "--profile", "quick", "--runs", str(tmp_path / "r"))
    assert code == 2 and out == ""
    # The count is the plan `train --all` would run: one item per job and grid point, seed 0.
    from mnist_suite.jobs import all_jobs
    from mnist_suite.plan import build_plan

    n = len(build_plan(list(all_jobs()), profile="quick", seeds=(0,)))
    assert n >= len(list(all_jobs()))
    assert f"{n} items" in err and "--all" in err and "min on" in err
    assert not (tmp_path / "r").exists(), "nothing is launched"


def test_version_exit_codes_and_variables_are_in_help(capsys):
    from mnist_suite import __version__
    from mnist_suite.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"mnist-suite {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in ("exit codes:", "130", "MNIST_SUITE_RUNS", "MNIST_SUITE_DATA", "MNIST_SUITE_CACHE"):
        assert word in text


def test_a_tensorflow_job_without_tensorflow_is_one_clear_line(run_cli, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name)
    )
    code, _, err = run_cli("run", "sgd-original", "--profile", "quick")
    assert code == 2
    assert "need TensorFlow" in err and "mnist-suite[tf]" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "sgd-original").exists()
