"""An original project's one figure against our runs: the predictive p-value, the verdict's words
(consistent / borderline / not consistent), the printed precision as the only tolerance, and the
same words in the report, `runs --summary` and the README's table."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from mnist_suite import runs, verdicts
from mnist_suite.cli import main
from mnist_suite.jobs import Job
from mnist_suite.originals import Original, judge, original, predictive_p
from mnist_suite.report import SCHEMA_FILE, build_report
from mnist_suite.stats import prediction_interval, summarize

# Per-seed figures (seeds 0-4, full profile) of the committed reference report,
# reports/results.json: the rows a flat tolerance or a hair's breadth called "consistent".
DENOISING = [0.6209197238409214, 0.6192113630912237, 0.6197758593832319, 0.6199311864244915,
             0.6224406237345412]  # fmt: skip
LR01 = [2.3347821614583335, 2.3336474609375, 2.3191075846354168, 2.33115439453125,
        2.3339559244791666]  # fmt: skip
LR001 = [0.15239102783203126, 0.16058321126302083, 0.1559945068359375, 0.14875687459309897,
         0.15825992635091146]  # fmt: skip
MLP_ORIGINAL = [0.9176, 0.9174, 0.9074, 0.9148, 0.9165]
PCA_RATIO_1 = [0.09703738987445831] * 5  # deterministic: every seed the same


def test_p_is_the_t_distribution_of_the_standardized_distance():
    """Two-sided, n - 1 degrees of freedom, scale sd·√(1 + 1/n); p = 0.05 exactly at the 95%
    prediction interval's ends, whatever n, mean and sd."""
    rng = np.random.default_rng(7)
    for n in (2, 3, 5, 12):
        mean, sd = float(rng.normal()), float(rng.uniform(0.01, 2))
        t = (mean + 1.3 * sd - mean) / (sd * math.sqrt(1 + 1 / n))
        expected = 2 * scipy_stats.t.sf(t, n - 1)
        assert predictive_p(mean + 1.3 * sd, n, mean, sd) == pytest.approx(expected, rel=1e-12)
        assert predictive_p(mean - 1.3 * sd, n, mean, sd) == pytest.approx(expected, rel=1e-12)
        for level in (0.95, 0.9):
            low, high = prediction_interval(mean, sd, n, level)
            for end in (low, high):
                assert predictive_p(end, n, mean, sd) == pytest.approx(1 - level, abs=1e-9)
    assert predictive_p(0.5, 1, 0.4, None) is None  # one run: no spread, no p
    # Identical runs: within the printed precision is p = 1, beyond it p = 0.
    assert predictive_p(0.09704, 5, 0.0970374, 0.0, 5e-6) == 1.0
    assert predictive_p(0.09704, 5, 0.0970300, 0.0, 5e-6) == 0.0


def test_verdict_words_at_their_lines():
    assert verdicts.original(1.0) == verdicts.original(0.1) == "consistent"
    assert verdicts.original(0.0999) == verdicts.original(0.05) == "borderline"
    assert verdicts.original(0.0499) == verdicts.original(0.0) == "not consistent"
    # Two digits unless they would round a p-value across a line.
    assert [verdicts.p_text(p) for p in (0.8385, 0.05015, 0.0014566, 0.0)] == [
        "0.84", "0.050", "0.0015", "<0.0001",
    ]  # fmt: skip
    assert verdicts.p_text(0.09996) == "0.09996" and verdicts.p_text(0.04996) == "0.04996"


def test_printed_precision_is_half_a_unit_of_the_last_digit():
    assert Original.parse("0.6313", "x").precision == pytest.approx(0.00005, rel=1e-12)
    acc = Original.parse("96.08%", "x")
    assert acc.value == 0.9608 and acc.precision == pytest.approx(0.00005, rel=1e-12)
    assert acc.precision_text() == "±0.005 pt"
    assert Original.parse("0.0870", "x").precision == pytest.approx(0.00005, rel=1e-12)
    assert Original.parse("0.09704", "x").precision_text() == "±0.000005"
    about = Original.parse("about 92.5%", "x")
    assert about.value == 0.925 and about.precision is None  # no documented precision
    # The jobs declare them with the digits docs/original-projects.md gives.
    assert original("ae-original", "test_mse", "denoising").text == "0.6313"
    assert original("sgd-original", "final_train_loss").precision == pytest.approx(5e-5)
    assert original("mlp-original", "test_accuracy").precision is None


def test_denoising_outside_our_interval_is_not_consistent():
    """0.6313 is 23 of our seed-sds above our mean: a flat ±0.03 called it consistent."""
    s = summarize(DENOISING)
    judged = judge(original("ae-original", "test_mse", "denoising"), s)
    assert judged.verdict == "not consistent" and judged.p == pytest.approx(0.0015, abs=5e-5)
    assert judged.text == (
        "not consistent: original 0.6313 above our 95% prediction interval [0.61660, 0.62432]"
    )
    assert abs(0.6313 - s.mean) < 0.03 and (0.6313 - s.mean) / s.sd > 8


def test_figures_at_the_interval_edge_are_borderline():
    """lr 0.1 passed by 2e-5 (p = 0.050), lr 0.01 at p = 0.056, mlp-original at p = 0.092."""
    lr01 = judge(original("sgd-lr-sweep", "final_train_loss", "lr0.1"), summarize(LR01))
    assert lr01.verdict == "borderline" and 0.05 <= lr01.p < 0.052
    assert lr01.text.startswith(
        "borderline: original 2.3107 inside our 95% prediction interval [2.31068, 2.35038] but "
        "outside the 90% one [2.31529, 2.34577]"
    )
    lr001 = judge(original("sgd-lr-sweep", "final_train_loss", "lr0.01"), summarize(LR001))
    assert lr001.verdict == "borderline" and lr001.p == pytest.approx(0.057, abs=1e-3)
    mlp = judge(original("mlp-original", "test_accuracy"), summarize(MLP_ORIGINAL))
    assert mlp.verdict == "borderline" and mlp.p == pytest.approx(0.0922, abs=1e-4)
    assert mlp.text == (
        "borderline: original 92.5% inside our 95% prediction interval [90.18%, 92.77%] but "
        "outside the 90% one [90.48%, 92.47%]"
    )
    assert mlp.short == "borderline (p=0.092)"


def test_the_printed_precision_is_the_only_tolerance():
    pca = original("pca", "explained_variance_ratio_1")
    same = judge(pca, summarize(PCA_RATIO_1))  # deterministic, equal to the printed digits
    assert (same.verdict, same.p, same.text) == ("consistent", 1.0, "consistent")
    off = judge(pca, summarize([0.09703] * 5))  # 0.00001 off: twice the printed precision
    assert off.verdict == "not consistent" and off.p == 0.0
    # Printed 1.0241, 0.00003 above our 95% interval's end 1.02407: within its precision of
    # it, so borderline (not "not consistent"), and the reason says so.
    z = np.array([0.0, 1.0, -1.0, 0.5, -0.5])
    sd = 0.02407 / (scipy_stats.t.ppf(0.975, 4) * math.sqrt(1 + 1 / 5))
    s = summarize(1 + sd * z / z.std(ddof=1))
    judged = judge(Original.parse("1.0241", "x"), s)
    assert judged.verdict == "borderline" and judged.p == pytest.approx(0.05, abs=1e-3)
    assert judged.reason == (
        "original 1.0241 above our 95% prediction interval [0.97593, 1.02407] by less than its "
        "printed precision ±0.00005"
    )
    assert judge(Original.parse("1.0242", "x"), s).verdict == "not consistent"  # beyond it
    assert judge(Original.parse("1.0241", "x"), summarize([1.0])).text == "n=1: no interval"


@dataclass(frozen=True)
class _Config:
    lr: float = 0.1


def _seeds(out: Path, name: str, cell: str, metrics: list[dict]) -> None:
    """Done runs of ``name``/``cell`` (full profile), one per seed, through the runner."""
    for seed, figures in enumerate(metrics):
        job = Job(name, "a faithful job's seeds", _Config, lambda cfg, run, m=figures: dict(m))
        run_id = f"{cell or name}-full-s{seed}"
        outcome = runs.execute(
            job, cell, _Config(), seed=seed, profile="full", out=out, run_id=run_id
        )
        assert outcome.state == "done"


@pytest.fixture
def faithful_runs(tmp_path) -> Path:
    out = tmp_path / "runs"
    _seeds(out, "ae-original", "denoising",
           [{"test_mse_pixels": v * 0.095, "test_mse": v} for v in DENOISING])  # fmt: skip
    _seeds(out, "sgd-lr-sweep", "lr0.1",
           [{"test_accuracy": 0.1, "final_train_loss": v} for v in LR01])  # fmt: skip
    _seeds(out, "mlp-original", "", [{"test_accuracy": v} for v in MLP_ORIGINAL])
    return out


def test_runs_summary_says_the_verdict_its_p_and_why(faithful_runs, capsys):
    assert main(["runs", "--runs", str(faithful_runs), "--summary", "--all-code"]) == 0
    out = capsys.readouterr().out
    lines = {tuple(line.split()[:2]): line for line in out.splitlines()}
    denoising = lines[("ae-original", "denoising")]
    assert " test_mse " in denoising  # the figure the original printed, in its units
    assert re.search(
        r" 0\.6313 +0\.0015 +not consistent: original 0\.6313 above our 95% ", denoising
    )
    sweep = lines[("sgd-lr-sweep", "lr0.1")]
    assert re.search(r" final_train_loss .* 0\.051 +borderline: original 2\.3107 inside ", sweep)
    mlp = lines[("mlp-original", "-")]
    assert re.search(r" 92\.50% +0\.092 +borderline: original 92\.5% inside our 95% ", mlp)
    assert "consistent from p = 0.1, borderline from 0.05, not consistent below" in out.lower()
    assert " within the documented" not in out and "±0.03" not in out


def test_report_tables_and_results_json_carry_p_beside_the_verdict(faithful_runs, tmp_path):
    import jsonschema

    results = build_report(faithful_runs, None, tmp_path / "reports")
    on_disk = json.loads((tmp_path / "reports" / "results.json").read_text())
    jsonschema.validate(on_disk, json.loads(SCHEMA_FILE.read_text()))
    sections = {s["key"]: s for s in results["sections"]}
    answer = {r["job"]: r for r in sections["answer"]["tables"][0]["rows"]}
    row = answer["ae-original/denoising"]
    assert row["p"] == pytest.approx(0.0015, abs=5e-5)
    assert row["original_vs_ours_or_gain"].startswith("not consistent: original 0.6313 above")
    assert answer["mlp-original"]["original_vs_ours_or_gain"].startswith("borderline: ")
    assert answer["sgd-lr-sweep/lr0.1"]["original_vs_ours_or_gain"].startswith("borderline: ")
    mse = {r["model"]: r for r in sections["reconstruction"]["tables"][0]["rows"]}
    assert mse["ae-original/denoising"]["p"] == row["p"]
    assert mse["ae-original/denoising"]["original_vs_ours_one_run_interval"].startswith(
        "not consistent: "
    )
    sweep = {r["cell"]: r for r in sections["sgd"]["tables"][0]["rows"]}
    assert sweep["lr0.1"]["original_vs_ours_one_run_interval"].startswith("borderline: ")
    accuracy = {r["job"]: r for r in sections["classification"]["tables"][0]["rows"]}
    assert accuracy["mlp-original"]["p"] == pytest.approx(0.0922, abs=1e-4)
    page = (tmp_path / "reports" / "index.md").read_text()
    assert "| 0.0015 | not consistent: original 0.6313 above our 95% prediction interval" in page
    assert "±0.03" not in page and "(within the documented" not in page
    # The README's table from this report: the word and p, the same as the report's.
    from mnist_suite.report.headline import markdown_table

    table = markdown_table(json.loads((tmp_path / "reports" / "results.json").read_text()))
    assert "| not consistent (p=0.0015) |" in table and "| borderline (p=0.092) |" in table


def test_readme_table_judges_rows_written_without_p():
    """A report's answer rows without a p-value (schema 2's "inside/outside our CI", schema 3's
    plain "consistent") are judged again from their n, mean and 95% half-width."""
    from mnist_suite.report.headline import markdown_table

    s = summarize(DENOISING)
    row = {"job": "ae-original/denoising", "metric": "test_mse", "n": 5, "ours_mean": s.mean,
           "95pct_ci": s.half_width, "original": 0.6313}  # fmt: skip
    schema_2 = {**row, "original_inside_our_ci_or_gain": "outside"}
    schema_3 = {**row, "runs_profile_config": "full", "original_vs_ours_or_gain": "consistent",
                "over_pca": None, "over_noisy_input": None}  # fmt: skip
    for version, written in ((2, schema_2), (3, schema_3)):
        results = {"schema_version": version, "summaries": [], "runs": [],
                   "sections": [{"key": "answer", "tables": [{"rows": [written]}]}]}  # fmt: skip
        assert "| not consistent (p=0.0015) |" in markdown_table(results), version
