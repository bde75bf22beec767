"""Jobs of other packages: found through their installed metadata (the entry point group
``mnist_suite.jobs``), run like ours, fingerprinted by their own code, and a broken one is one
line that never stops a built-in job."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_suite import envinfo, fingerprint, plugins
from mnist_suite.runs import find_runs, load_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "logreg-job"

TINY = """
from dataclasses import dataclass

import numpy as np

from mnist_suite.jobs import Job


@dataclass(frozen=True)
class TinyConfig:
    n: int = 500
    scale: float = 1.0

    def __post_init__(self):
        assert self.n > 0, f"n={self.n} must be > 0"  # not a ParameterError: any exception


def train(cfg, run):
    x = run.data().x_train[: cfg.n].astype(np.float64) / 255  # (n, 784)
    brightness = float(x.mean()) * cfg.scale + 1e-3 * float(run.rng("noise").random())
    run.log(1, "epoch", brightness=brightness)
    return {"brightness": brightness, "ink_fraction": float((x > 0.5).mean())}


JOB = Job(
    name="tiny",
    summary="mean brightness of the first n training images",
    config=TinyConfig,
    train=train,
    family="other",
    seconds=(1.0, 1.0),
    metrics={
        "brightness": "mean pixel value in [0, 1], times scale",
        "ink_fraction": "share of pixels brighter than 0.5",
    },
)
"""


def _forget() -> None:
    """Drop what this process remembers of plugins (entry points, loaded jobs, fingerprints)."""
    importlib.invalidate_caches()
    plugins.entry_points.cache_clear()
    plugins._loaded.clear()
    plugins._warned.clear()
    fingerprint.of_plugin.cache_clear()
    envinfo.package_versions.cache_clear()


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on ``sys.path`` that plugins are installed into as an installer lays them out:
    the module beside its ``.dist-info`` with ``METADATA`` and ``entry_points.txt``."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    _forget()
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]
    _forget()


def install(site: Path, module: str, source: str, entry: str = "", *, job: str = "tiny") -> Path:
    """Install ``module`` (``source``) as the distribution ``<module>-plugin`` whose entry point
    ``job`` names ``entry`` (default ``<module>:JOB``)."""
    info = site / f"{module}_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mnist_suite.jobs]\n{job} = {entry or module}:JOB\n")
    path = site / f"{module}.py"
    path.write_text(source)
    _forget()
    return path


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_plugin_job_runs_and_reports_like_ours(site, run_cli, tmp_path):
    install(site, "tiny_job", TINY)
    runs = tmp_path / "runs"
    code, out, _ = run_cli("list")
    assert code == 0 and "tiny" in out.split() and "softmax" in out.split()
    code, out, err = run_cli("run", "tiny", "--seeds", "0-2", "--set", "n=300", "--runs", str(runs))
    assert code == 0, err
    records = [load_run(p) for p in find_runs(runs)]
    assert [(r.job, r.seed, r.state) for r in records] == [("tiny", s, "done") for s in range(3)]
    code_print = fingerprint.for_job_name("tiny")
    assert code_print and all(r.fingerprint == code_print for r in records)
    assert all(r.run_id.endswith(f"-c{code_print}") for r in records)
    assert records[0].envelope["versions"]["tiny_job-plugin"] == "0.1"
    # A second run of the same items runs nothing: its code is the recorded code.
    code, out, _ = run_cli("run", "tiny", "--seeds", "0-2", "--set", "n=300", "--runs", str(runs))
    assert code == 0 and out.count("already recorded") == 3
    code, out, _ = run_cli(
        "plan", "tiny", "--seeds", "0-4", "--set", "n=300", "--status", "--runs", str(runs)
    )
    assert code == 0 and out.splitlines()[-1].endswith(": 3 done, 2 missing")

    # runs --summary: the job's first declared figure is its headline.
    code, out, _ = run_cli("runs", "--runs", str(runs), "--summary")
    assert code == 0 and out.splitlines()[1].split()[:5] == ["tiny", "-", "full", "brightness", "3"]

    from mnist_suite.report import build_report

    results = build_report(runs, None, tmp_path / "report")
    other = next(s for s in results["sections"] if s["key"] == "other")
    (table,) = other["tables"]
    figures = {r["metric"]: r for r in table["rows"]}
    assert list(figures)[:2] == ["brightness", "ink_fraction"]  # declared first, in order
    assert figures["brightness"]["meaning"] == "mean pixel value in [0, 1], times scale"
    assert figures["brightness"]["seeds_done"] == "3"
    values = [r.metrics["brightness"] for r in records]
    assert figures["brightness"]["mean"] == pytest.approx(sum(values) / 3, rel=1e-12)
    # Not judged against an original: no row of the answer table.
    answer = next(s for s in results["sections"] if s["key"] == "answer")
    assert not [r for r in answer["tables"][0]["rows"] if r["job"].startswith("tiny")]
    assert {(s["job"], s["metric"]) for s in results["summaries"]} >= {("tiny", "brightness")}


def test_runs_of_a_job_unknown_here_reach_the_generic_table(site, run_cli, tmp_path):
    """A plugin uninstalled before the report: its runs are still read, in the generic table."""
    install(site, "tiny_job", TINY)
    runs = tmp_path / "runs"
    assert run_cli("run", "tiny", "--seeds", "0-1", "--runs", str(runs))[0] == 0
    shutil.rmtree(site)
    site.mkdir()
    _forget()
    from mnist_suite.report import build_report

    results = build_report(runs, None, tmp_path / "report")
    other = next(s for s in results["sections"] if s["key"] == "other")
    (table,) = other["tables"]
    assert table["title"] == "tiny (not a job of this suite: no meanings)"
    assert {r["metric"] for r in table["rows"]} >= {"brightness", "ink_fraction", "wall_seconds"}
    assert {(s["job"], s["metric"]) for s in results["summaries"]} >= {("tiny", "brightness")}


def test_a_plugins_fingerprint_is_its_own_code(site):
    ours = {name: fingerprint.for_job_name(name) for name in ("softmax", "mlp", "pca")}
    path = install(site, "tiny_job", TINY)
    before = fingerprint.for_job_name("tiny")
    assert before and before not in ours.values()
    assert {name: fingerprint.for_job_name(name) for name in ours} == ours  # theirs, not ours

    path.write_text(path.read_text().replace("def train(cfg, run):", "def train(cfg, run):\n"
                                             "    # a comment changes no code\n"))  # fmt: skip
    fingerprint.of_plugin.cache_clear()
    assert fingerprint.for_job_name("tiny") == before
    path.write_text(path.read_text().replace("1e-3 *", "2e-3 *"))
    fingerprint.of_plugin.cache_clear()
    assert fingerprint.for_job_name("tiny") not in (before, None)


# What a fresh process imports to look one job up (the names of every job known first).
LOOK_UP = """
import json, sys
from mnist_suite.jobs import get_job, job_names
from mnist_suite.plan import build_plan

names = job_names()
build_plan([sys.argv[1]], profile="quick", seeds=(0,))
jobs = sorted(m for m in sys.modules if m.startswith(("mnist_suite.jobs.", "tiny_job")))
print(json.dumps({"names": names, "imported": jobs}))
"""


def test_looking_a_job_up_imports_its_module_alone(site):
    install(site, "tiny_job", TINY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def look_up(job: str) -> dict:
        done = subprocess.run([sys.executable, "-c", LOOK_UP, job], env=env, capture_output=True,
                              text=True, check=True, timeout=120)  # fmt: skip
        return json.loads(done.stdout)

    softmax = look_up("softmax")
    assert {"softmax", "mlp-fast", "sgd-grid", "ae", "tiny"} <= set(softmax["names"])
    assert softmax["imported"] == ["mnist_suite.jobs.softmax"]
    assert look_up("mlp-fast")["imported"] == ["mnist_suite.jobs.mlp"]
    assert look_up("tiny")["imported"] == ["tiny_job"]


BROKEN = {
    "import": ("raise RuntimeError('needs a GPU')", "cannot be loaded: RuntimeError: needs a GPU"),
    "object": ("JOB = 42", "is a int, not a mnist_suite.jobs.Job"),
    "name": (TINY, "its Job is named 'tiny'; the entry point must have its name"),
    "config": (
        TINY.replace("@dataclass(frozen=True)", "@dataclass"),
        "cannot be loaded: ValueError: tiny: config must be a frozen dataclass",
    ),
    "family": (
        TINY.replace('family="other"', 'family="regression"'),
        "cannot be loaded: ValueError: tiny: family 'regression' not in",
    ),
    "field": (
        TINY.replace("n: int = 500", "n: list = None"),
        "cannot be loaded: ValueError: tiny: config field n is <class 'list'>",
    ),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_plugin_is_one_line_and_stops_no_builtin_job(site, run_cli, tmp_path, kind):
    source, says = BROKEN[kind]
    install(site, "broken_job", source, job="broken")
    runs = tmp_path / "runs"
    code, out, err = run_cli("run", "broken", "--runs", str(runs))
    line = one_line(err)
    assert code == 2 and out == ""
    assert line.startswith("error: plugin job 'broken' (broken_job:JOB of broken_job-plugin 0.1)")
    assert says in line
    assert not runs.exists()
    # Every other job still lists and plans; the broken one is said once, and left out.
    code, out, err = run_cli("plan", "--profile", "quick", "--runs", str(runs))
    assert code == 0 and "softmax" in out and "broken" not in out
    assert one_line(err).startswith("WARNING: plugin job 'broken'") and "left out" in err
    code, out, err = run_cli("list")
    assert code == 0 and "softmax" in out and "broken" not in out


def test_a_plugin_named_like_a_builtin_job_is_left_out(site, run_cli, tmp_path):
    install(site, "clash_job", TINY.replace('name="tiny"', 'name="softmax"'), job="softmax")
    code, out, err = run_cli("plan", "softmax", "--profile", "quick", "--runs", str(tmp_path))
    assert code == 0 and err == ""  # asked by name: the built-in job, the plugin not imported
    assert "clash_job" not in sys.modules
    code, out, err = run_cli("list")
    assert code == 0 and "linear softmax done right" in out
    assert "a built-in job has that name; left out" in one_line(err)


@pytest.mark.parametrize("containers", [True, False])
def test_the_suites_images_refuse_a_plugin_job_in_one_line(site, run_cli, tmp_path, containers):
    install(site, "tiny_job", TINY)
    runs = tmp_path / "runs"
    command = ["train", "--containers", "--runs", str(runs)] if containers else ["k8s"]
    code, out, err = run_cli(*command, "tiny", "softmax")
    assert code == 2 and out == "" and not runs.exists()
    assert one_line(err) == (
        "error: tiny: a plugin's job runs from this installation, not in the suite's images: "
        "run it here (without --containers) or on Slurm"
    )


@pytest.mark.parametrize(
    ("change", "override", "says"),
    [
        ("", "n=0", "error: tiny: its config refused the values (AssertionError: n=0 must be > 0)"),
        ("", "scale=oops", "error: override scale=oops: expected float"),
        (
            'family="other",',
            "",
            "error: tiny: cell '../escape': expected letters, digits and ._+=-",
        ),
    ],
)
def test_a_refused_plugin_value_is_one_line_and_runs_nothing(
    site, run_cli, tmp_path, change, override, says
):
    source = TINY
    if change:  # a batch job whose cell label would name a folder outside its own
        source = TINY.replace(change, f'{change} cells=lambda c: [("../escape", c)],')
    install(site, "tiny_job", source)
    runs = tmp_path / "runs"
    given = ["--set", override] if override else []
    code, _, err = run_cli("run", "tiny", "--runs", str(runs), *given)
    assert code == 2 and one_line(err).startswith(says), err
    assert not runs.exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize(
    ("returns", "says"),
    [
        ('raise RuntimeError("out of ideas")', "error: tiny: RuntimeError: out of ideas"),
        (
            'return {"test_accuracy": 93.0}',
            "error: tiny: RecordError: metrics.json: test_accuracy is float 93.0, expected a "
            "number in its range",
        ),
    ],
)
def test_a_plugin_failing_in_training_is_one_line_and_exit_1(
    site, run_cli, tmp_path, returns, says
):
    source = TINY.replace(
        '    return {"brightness": brightness, "ink_fraction": float((x > 0.5).mean())}',
        f"    {returns}",
    )
    install(site, "tiny_job", source)
    runs = tmp_path / "runs"
    code, _, err = run_cli("run", "tiny", "--runs", str(runs))
    assert code == 1 and one_line(err) == says
    (path,) = find_runs(runs)
    run = load_run(path)
    assert run.state == "failed" and not (path / "metrics.json").exists()
    assert json.loads((path / "status.json").read_text())["message"] == says.split(": ", 2)[2]


@pytest.mark.slow
def test_the_example_plugin_installs_and_runs_through_every_command(tmp_path, mnist):
    """examples/logreg-job installed (pip, no dependencies, its metadata on PYTHONPATH): run,
    a pool of two workers, compare of two configs' runs folders (the API's rows are the
    command's), and the report, each in a process of its own as a user runs them."""
    source = tmp_path / "logreg-job"  # pip builds in the source folder: build a copy
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--no-index", "--target", str(site), str(source)], check=True,
                   timeout=600)  # fmt: skip
    assert (site / "mnist_suite_logreg-0.1.0.dist-info" / "entry_points.txt").is_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=1200)  # fmt: skip

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return run(sys.executable, "-m", "mnist_suite", *argv)

    code = dict(line.split() for line in cli("list", "--code").stdout.splitlines())
    assert code["logreg"] and code["softmax"]
    a, b = tmp_path / "runs-a", tmp_path / "runs-b"
    quick = ("logreg", "--profile", "quick", "--seeds", "0-2")
    ran = cli("run", *quick, "--runs", str(a))
    assert ran.returncode == 0, ran.stderr
    trained = cli("train", *quick, "--set", "lr=0.05", "--workers", "2", "--runs", str(b))
    assert trained.returncode == 0, trained.stderr
    assert "3 items" in trained.stdout and "0 failed" in trained.stdout
    for folder in (a, b):
        records = [load_run(p) for p in find_runs(folder)]
        assert [(r.job, r.state) for r in records] == [("logreg", "done")] * 3
        assert {r.fingerprint for r in records} == {code["logreg"]}
        assert all(0.8 < r.metric("test_accuracy") < 0.95 for r in records)

    compared = cli("compare", str(a), str(b), "--json")
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)["rows"]
    (accuracy,) = [r for r in rows if r["metric"] == "test_accuracy"]
    assert accuracy["job"] == "logreg" and accuracy["verdict"] == "worse"
    assert accuracy["method"] == "paired" and accuracy["config_changes"] == "lr: 0.2 -> 0.05"
    api = run(sys.executable, "-c", "import json, sys, mnist_suite; print(json.dumps("
              "[r.as_dict() for r in mnist_suite.compare(sys.argv[1], sys.argv[2])]))",
              str(a), str(b))  # fmt: skip
    assert api.returncode == 0, api.stderr
    assert json.loads(api.stdout) == rows

    out = tmp_path / "report"
    made = cli("report", "--runs", str(a), "--runs", str(b), "--out", str(out))
    assert made.returncode == 0, made.stderr
    results = json.loads((out / "results.json").read_text())
    sections = {s["key"]: s for s in results["sections"]}
    classified = sections["classification"]["tables"][0]["rows"]
    (row,) = [r for r in classified if r["job"] == "logreg"]
    assert row["seeds_done"] == "3" and 0.8 < row["test_acc_mean"] < 0.95
    inventory = [r for r in sections["runs"]["tables"][0]["rows"] if r["job"] == "logreg"]
    assert len(inventory) == 6
    assert {s["configs"][0]["lr"] for s in results["summaries"] if s["job"] == "logreg"} == {
        0.2,
        0.05,
    }
