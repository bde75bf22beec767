"""The benchmark regression gate (bench/compare.py) and the report's history view.

Synthetic stored runs pin the logic: a re-run with ordinary noise passes, a slowed kernel is
listed, files that are not benchmark runs are a usage error. One slow test runs the real
benchmark twice, the second time with an extra copy injected into every SGD step.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mnist_suite.report import build_report
from mnist_suite.report.benchmarks import _history_figure, stored_runs

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)

spec = importlib.util.spec_from_file_location("bench_conftest", ROOT / "bench" / "conftest.py")
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)

STEP = "bench/test_bench_numpy.py::test_sgd_step[784-256-10-b128]"
EPOCH = "bench/test_bench_numpy.py::test_mlp_epoch"
# Two 2-core VMs whose CPUs both call themselves "AMD EPYC": a Zen 3 and a Zen 5.
ZEN3 = {"vendor": "AuthenticAMD", "family": 25, "model": 1, "stepping": 1, "flags": "e5b590441e01"}
ZEN3 |= {"cores": 2, "memory_gib": 24, "host": "vm"}
ZEN5 = ZEN3 | {"family": 26, "model": 2, "flags": "7c0ffee01234"}
# What pytest-benchmark's py-cpuinfo records of the Zen 3 (a run without an identity of its own).
ZEN3_CPUINFO = {"vendor_id_raw": "AuthenticAMD", "family": 25, "model": 1, "stepping": 1}
ZEN3_CPUINFO |= {"count": 2, "flags": ["avx2", "rdrnd"]}


def run_file(
    path: Path,
    ratios: dict[str, list[float]],
    when: str,
    commit: str = "a" * 40,
    mode="quick",
    cpu="AMD EPYC",
    identity: dict | None = ZEN3,
    cpuinfo: dict | None = None,
):
    """A stored run whose benchmarks have these per-round fractions of the ceiling, measured
    on the machine ``identity`` (None: none recorded) with py-cpuinfo's ``cpuinfo`` fields."""
    benchmarks = []
    for name, values in ratios.items():
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        r = {"median": median, "q1": q1, "q3": q3, "rounds": len(values), "values": values}
        benchmarks.append(
            {
                "name": name.split("::")[-1],
                "fullname": name,
                "stats": {"median": 1e-3 + len(benchmarks) + sum(map(ord, when)) * 1e-6},
                "extra_info": {
                    "fraction_of_ceiling": median,
                    "ratios": {"fraction_of_ceiling": r},
                    "target": {"fraction_of_ceiling": 0.6},
                },
            }
        )
    data = {
        "benchmarks": benchmarks,
        "datetime": when,
        "mode": mode,
        "commit_info": {"id": commit, "dirty": False},
        "machine_info": {"cpu": {"brand_raw": cpu, **(cpuinfo or {})}},
    }
    if identity is not None:
        data["machine_info"]["identity"] = identity
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def noisy(center: float, spread: float, seed: int, n: int = 9) -> list[float]:
    return list(center * (1 + spread * np.random.default_rng(seed).standard_normal(n)))


class Config:
    def getoption(self, name):
        return name == "--quick"


@pytest.mark.parametrize(
    ("q1", "median", "q3", "verdict", "unstable"),
    [
        (0.62, 0.65, 0.70, "met", False),  # even the lower quartile reaches 0.6
        (0.40, 0.45, 0.50, "missed", False),  # even the upper quartile is below
        (0.55, 0.61, 0.66, "unstable", True),  # straddles: never a NO
        (0.61, 0.90, 1.40, "met", True),  # met, but too spread to compare with other runs
    ],
)
def test_verdicts_and_unstable_marks(q1, median, q3, verdict, unstable):
    ratio = {"median": median, "q1": q1, "q3": q3, "rounds": 9}
    row = {
        "fullname": STEP,
        "stats": {"median": 1e-3},
        "extra_info": {
            "fraction_of_ceiling": median,
            "ratios": {"fraction_of_ceiling": ratio},
            "target": {"fraction_of_ceiling": 0.6},
        },
    }
    out = {"benchmarks": [row]}
    conftest.pytest_benchmark_update_json(Config(), [], out)
    assert out["targets"][0]["verdict"] == verdict
    assert out["targets"][0]["met"] == {"met": True, "missed": False}.get(verdict)
    assert row["extra_info"].get("unstable", False) is unstable
    assert out["mode"] == "quick" and set(out["noise"]) >= {"loadavg_before", "loadavg_after"}


def test_rerun_with_ordinary_noise_passes_and_a_slowdown_is_listed(tmp_path, capsys):
    history = tmp_path / "history" / "Linux-CPython-3.11-64bit"
    base = run_file(
        history / "0001_base.json",
        {STEP: noisy(0.62, 0.08, 0), EPOCH: noisy(0.70, 0.05, 1)},
        "2026-11-28T06:00:00",
    )
    for seed in range(2, 12):  # ten re-runs of the same code: noise only
        rerun = run_file(
            tmp_path / "latest.json",
            {STEP: noisy(0.62, 0.08, seed), EPOCH: noisy(0.70, 0.05, seed + 50)},
            "2026-11-28T07:00:00",
        )
        verdicts = {r["verdict"] for r in compare.compare(base, rerun)}
        assert verdicts <= {"no detectable change", "better"}
    # The step 25% slower (an extra pass over the weights), the epoch unchanged.
    run_file(
        tmp_path / "latest.json",
        {STEP: noisy(0.62 / 1.25, 0.08, 3), EPOCH: noisy(0.70, 0.05, 4)},
        "2026-11-28T07:00:00",
    )
    code = compare.main(["--current", str(tmp_path / "latest.json"), "--history", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"regressed beyond their noise: {STEP}" in out
    assert "0001_base.json" in out  # the default baseline: the newest other stored run


def test_a_noisy_current_run_needs_a_larger_drop(tmp_path):
    base = run_file(tmp_path / "b.json", {STEP: noisy(0.62, 0.03, 0)}, "t0")
    quiet = run_file(tmp_path / "q.json", {STEP: noisy(0.55, 0.02, 1)}, "t1")
    loud = run_file(tmp_path / "l.json", {STEP: noisy(0.55, 0.40, 1)}, "t2")
    assert compare.compare(base, quiet)[0]["verdict"] == "worse"
    assert compare.compare(base, loud)[0]["verdict"] == "no detectable change"


def test_baseline_is_the_newest_other_run_of_the_same_mode(tmp_path):
    history = tmp_path / "history"
    run_file(history / "1.json", {STEP: [0.6]}, "2026-11-28T01:00:00")
    run_file(history / "2.json", {STEP: [0.6]}, "2026-11-28T02:00:00")
    run_file(history / "3.json", {STEP: [0.6]}, "2026-11-28T03:00:00", mode="full")
    current = run_file(history / "4.json", {STEP: [0.6]}, "2026-11-28T04:00:00")
    assert compare.default_baseline(history, current, history / "4.json") == history / "2.json"


def test_runs_on_other_cpus_are_not_compared(tmp_path, capsys):
    """A fraction of the CPU's own GEMM ceiling is not CPU-independent: another CPU's run is
    never the default baseline, and naming one is refused in one line."""
    history = tmp_path / "history"
    run_file(history / "1.json", {STEP: [0.80]}, "2026-11-28T01:00:00")
    intel = ZEN3 | {"vendor": "GenuineIntel", "family": 6, "model": 106}
    run_file(history / "2.json", {STEP: [0.53]}, "2026-11-28T02:00:00", "b" * 40, identity=intel)
    current = run_file(tmp_path / "latest.json", {STEP: [0.80]}, "2026-11-28T03:00:00")
    assert (
        compare.default_baseline(history, current, tmp_path / "latest.json") == history / "1.json"
    )
    argv = ["--current", str(tmp_path / "latest.json"), "--baseline", str(history / "2.json")]
    assert compare.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not comparable: other machine kinds" in err
    assert (
        "GenuineIntel family 6 model 106" in err and "they differ in vendor, family, model" in err
    )
    sapphire = intel | {"model": 143}
    other = run_file(tmp_path / "i.json", {STEP: [0.53]}, "2026-11-28T04:00:00", identity=sapphire)
    assert compare.default_baseline(history, other, tmp_path / "i.json") is None
    assert compare.main(["--current", str(tmp_path / "i.json"), "--history", str(history)]) == 2
    assert "GenuineIntel family 6 model 143 stepping 1" in capsys.readouterr().err


def test_one_brand_two_machine_kinds_are_not_compared(tmp_path, capsys):
    """Both CPUs call themselves "AMD EPYC" (as on these VMs), one a Zen 3, one a Zen 5: the
    brand string alone called them one CPU. Their identities differ in family, model and flags;
    a run on the same kind under another host name is compared (a ratio measured in
    alternation does not depend on the host)."""
    history = tmp_path / "history"
    zen3 = run_file(history / "1.json", {STEP: [0.80]}, "2026-11-28T01:00:00")
    zen5 = run_file(tmp_path / "zen5.json", {STEP: [0.90]}, "2026-11-28T02:00:00", identity=ZEN5)
    assert compare.default_baseline(history, zen5, tmp_path / "zen5.json") is None
    argv = ["--current", str(tmp_path / "zen5.json"), "--baseline", str(history / "1.json")]
    assert compare.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: not comparable: other machine kinds: {history / '1.json'} was measured on "
        "AuthenticAMD family 25 model 1 stepping 1, flags e5b590441e01, 2 cores, 24 GiB, "
        f"{tmp_path / 'zen5.json'} on AuthenticAMD family 26 model 2 stepping 1, flags "
        "7c0ffee01234, 2 cores, 24 GiB; they differ in family, model, flags (a fraction of the "
        "CPU's own GEMM ceiling differs from CPU to CPU)\n"
    )
    elsewhere = ZEN3 | {"host": "ci-runner-7"}
    moved = run_file(tmp_path / "m.json", {STEP: [0.80]}, "2026-11-28T03:00:00", identity=elsewhere)
    assert compare.default_baseline(history, moved, tmp_path / "m.json") == history / "1.json"
    assert compare.compare(zen3, moved)[0]["verdict"] == "no detectable change"
    # A run that records no machine at all (only the brand) is comparable with none.
    bare = run_file(tmp_path / "bare.json", {STEP: [0.80]}, "2026-11-28T04:00:00", identity=None)
    assert compare.default_baseline(history, bare, tmp_path / "bare.json") is None
    argv = ["--current", str(tmp_path / "bare.json"), "--baseline", str(history / "1.json")]
    assert compare.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'bare.json'} records no machine identity: comparable with none\n"
    )


def test_a_run_without_an_identity_is_known_by_its_cpu_record(tmp_path, capsys):
    """pytest-benchmark's CPU record (vendor, family, model, stepping, cores) stands for a
    missing identity: compared on those fields, with a note saying so."""
    history = tmp_path / "history"
    run_file(history / "1.json", {STEP: [0.80]}, "t1", identity=None, cpuinfo=ZEN3_CPUINFO)
    current = run_file(tmp_path / "latest.json", {STEP: [0.80]}, "t2")
    assert compare.default_baseline(history, current, tmp_path / "latest.json") == (
        history / "1.json"
    )
    assert (
        compare.main(["--current", str(tmp_path / "latest.json"), "--history", str(history)]) == 0
    )
    out = capsys.readouterr().out
    assert (
        f"note: {history / '1.json'} records pytest-benchmark's CPU fields, no machine identity: "
        "machine kinds compared by vendor, family, model, stepping and cores (not flags or "
        "memory)\n"
    ) in out
    zen5 = run_file(tmp_path / "zen5.json", {STEP: [0.80]}, "t3", identity=ZEN5)
    assert compare.default_baseline(history, zen5, tmp_path / "zen5.json") is None


def test_bad_files_are_a_usage_error(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert compare.main(["--current", str(tmp_path / "x.json")]) == 2
    assert "not a pytest-benchmark file" in capsys.readouterr().err
    run_file(tmp_path / "c.json", {STEP: [0.6]}, "t")
    code = compare.main(["--current", str(tmp_path / "c.json"), "--history", str(tmp_path / "n")])
    assert code == 2 and "no stored run" in capsys.readouterr().err


def test_report_history_view_from_three_stored_runs(tmp_path):
    history = tmp_path / "bench" / "history" / "Linux-CPython-3.11-64bit"
    for i in range(3):
        run_file(
            history / f"000{i + 1}_{'abc'[i] * 10}.json",
            {STEP: noisy(0.5 + 0.05 * i, 0.05, i), EPOCH: noisy(0.7, 0.05, i)},
            f"2026-11-28T0{i + 1}:00:00",
            commit="abc"[i] * 40,
        )
    runs = stored_runs(tmp_path / "bench" / "history")
    assert [r["commit"] for r in runs] == ["a" * 10, "b" * 10, "c" * 10]
    (tmp_path / "runs").mkdir()
    results = build_report(tmp_path / "runs", tmp_path / "bench", tmp_path / "reports")
    section = next(s for s in results["sections"] if s["key"] == "benchmarks")
    table = next(t for t in section["tables"] if t["title"].startswith("History"))
    assert len(table["rows"]) == 6 and list(table["rows"][0].values())[1] == "a" * 10
    assert "figures/bench-history.png" in section["figures"]
    assert (tmp_path / "reports" / "figures" / "bench-history.png").stat().st_size > 0


def test_report_history_keeps_each_cpu_its_own_series(tmp_path):
    """Ratios are fractions of each CPU's own ceiling: the history names the series of each run,
    and the figure draws one line per series (never one line through two CPUs)."""
    history = tmp_path / "bench" / "history"
    run_file(history / "1.json", {STEP: [0.80]}, "2026-11-28T01:00:00")
    run_file(
        history / "2.json", {STEP: [0.53]}, "2026-11-28T02:00:00", cpu="Intel(R) Xeon(R) Processor"
    )
    run_file(history / "3.json", {STEP: [0.81]}, "2026-11-28T03:00:00")
    runs = stored_runs(history)
    assert [r["series"].split(",")[0] for r in runs] == ["AMD EPYC", "Intel Xeon", "AMD EPYC"]
    (tmp_path / "runs").mkdir()
    results = build_report(tmp_path / "runs", tmp_path / "bench", tmp_path / "reports")
    section = next(s for s in results["sections"] if s["key"] == "benchmarks")
    table = next(t for t in section["tables"] if t["title"].startswith("History"))
    series = [list(row.values())[3] for row in table["rows"]]  # the run's CPU and definition
    assert series[0] == series[2] != series[1] and "Intel Xeon" in series[1]
    key = next(iter(runs[0]["ratios"]))
    ctx = SimpleNamespace(writer=SimpleNamespace(save=lambda fig, *_: fig))
    fig = _history_figure(ctx, runs, [key], {key: 0.6})
    lines = {line.get_label(): list(line.get_xdata()) for line in fig.axes[0].get_lines()}
    assert lines[f"median: {runs[0]['series']}"] == [0, 2]  # the AMD runs, skipping the Intel one
    assert lines[f"median: {runs[1]['series']}"] == [1]


@pytest.mark.slow
def test_real_runs_gate_trips_on_an_injected_copy(tmp_path):
    """The original net's quick step twice; the second copies its parameters 200 more times a step
    (several times slower: outside the spread of even a heavily loaded machine)."""

    def bench(name: str, **env: str) -> Path:
        out = tmp_path / f"{name}.json"
        subprocess.run(
            [sys.executable, "-m", "pytest", "bench/test_bench_numpy.py", "--quick",
             "-k", "test_sgd_step and 784-10-10", "--benchmark-only", "-q",
             "-p", "no:cacheprovider", f"--benchmark-json={out}"],
            cwd=ROOT, check=True, capture_output=True, env=os.environ | env,
        )  # fmt: skip
        return out

    base = bench("base")
    slow = bench("slow", MNIST_SUITE_BENCH_SLOWDOWN="copy:200")
    rows = compare.compare(compare.load(base), compare.load(slow))
    assert {r["metric"] for r in rows} == {"fraction_of_ceiling", "speedup_over_seed_loop"}
    assert "worse" in {r["verdict"] for r in rows}, rows
    assert compare.main(["--current", str(slow), "--baseline", str(base)]) == 1


def test_ratio_definitions_are_never_compared_across_versions(tmp_path, capsys):
    old = run_file(tmp_path / "old.json", {STEP: noisy(0.62, 0.03, 0)}, "t0")
    new = json.loads(json.dumps(old)) | {"ratio_definition": 2, "datetime": "t1"}
    (tmp_path / "new.json").write_text(json.dumps(new))
    argv = ["--current", str(tmp_path / "new.json"), "--baseline", str(tmp_path / "old.json")]
    assert compare.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "definition 1" in err and "definition 2" in err
    assert "old.json" in err and "new.json" in err
    # mnist-suite compare refuses the same pair in one line, exit 2.
    from mnist_suite.cli import main

    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not comparable" in err


def test_a_fraction_of_the_ceiling_above_one_is_a_definition_error(tmp_path, capsys):
    run_file(tmp_path / "b.json", {STEP: noisy(0.62, 0.02, 0)}, "t0")
    run_file(tmp_path / "c.json", {STEP: noisy(2.9, 0.02, 1)}, "t1")
    argv = ["--current", str(tmp_path / "c.json"), "--baseline", str(tmp_path / "b.json")]
    assert compare.main(argv) == 1
    out = capsys.readouterr().out
    assert "definition error" in out and "better" not in out


def test_the_shipped_history_passes_its_own_gate(capsys, shipped):
    """bench/results/latest.json against bench/results/history, as committed: what `nox -s
    bench_compare` (run in CI) checks. The shipped runs record py-cpuinfo's CPU fields and no
    identity; all say "AMD EPYC", but latest.json ran on a family 26 CPU and every other stored
    run on family 25: latest.json is the first of its kind, with nothing to compare. Two runs
    of one kind are compared (with the note), and another kind or definition is refused."""
    history = shipped("bench/results/history")
    latest = shipped("bench/results/latest.json")
    argv = ["--current", str(latest), "--history", str(history)]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nothing to compare: {latest} is the first stored run of its kind")
    assert "AuthenticAMD family 26 model 2 stepping 1, 2 cores" in out
    (copy,) = history.glob("*/0010_*.json")
    (zen3,) = history.glob("*/0008_*.json")
    assert f"stored as {copy}; 9 stored runs of other kinds left out" in out
    assert compare.main([*argv, "--baseline", str(zen3)]) == 2
    assert "they differ in family, model" in capsys.readouterr().err
    (loaded,) = history.glob("*/0009_*.json")
    assert compare.main(["--current", str(loaded), "--history", str(history)]) == 0
    out = capsys.readouterr().out
    assert "0006_" in out.splitlines()[0] and "note: both runs record pytest-benchmark's" in out
    (old,) = history.glob("*/0004_*.json")
    assert compare.main([*argv, "--baseline", str(old)]) == 2
