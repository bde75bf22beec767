"""One table of what each metric means: every reader follows it, and a metric it does not hold
gets the documented meaning of its name's words."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mnist_suite import compare, meanings, records
from mnist_suite.cli import main
from mnist_suite.meanings import LARGEST, MAX_SECONDS, Meaning, Rule, meaning
from mnist_suite.stats import summarize

SPREAD = [0.000, 0.002, -0.002, 0.001, -0.001]


def _runs(folder: Path, metrics: list[dict]) -> None:
    """Done runs of job ``up`` (quick profile), one per seed 0.., each with ``metrics``."""
    for seed, figures in enumerate(metrics):
        path = folder / "up" / f"quick-s{seed}-up"
        path.mkdir(parents=True)
        cfg = {"job": "up", "cell": "", "profile": "quick", "seed": seed, "run_id": path.name}
        (path / "config.json").write_text(json.dumps(cfg | {"config": {}, "fingerprint": "f"}))
        (path / "status.json").write_text(json.dumps({"state": "done"}))
        (path / "metrics.json").write_text(json.dumps(figures | {"wall_seconds": 10.0}))


@pytest.fixture
def half_a_point(tmp_path) -> tuple[Path, Path]:
    """Five seeds of test accuracy, every seed 0.5 point higher on new."""
    for side, mean in (("base", 0.900), ("new", 0.905)):
        _runs(tmp_path / side, [{"test_accuracy": mean + d} for d in SPREAD])
    return tmp_path / "base", tmp_path / "new"


def _compare(capsys, base: Path, new: Path) -> tuple[dict[str, str], str]:
    """compare's verdict per metric (its JSON) and its terminal table."""
    assert main(["compare", str(base), str(new), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert main(["compare", str(base), str(new)]) == 0
    return {r["metric"]: r["verdict"] for r in rows}, capsys.readouterr().out


def _line(table: str, metric: str) -> str:
    return next(line for line in table.splitlines() if line.startswith("up ") and metric in line)


def test_the_table_alone_says_how_compare_judges_and_prints(half_a_point, capsys, monkeypatch):
    found, table = _compare(capsys, *half_a_point)
    assert found == {"test_accuracy": "better"}
    assert "+0.5 pt [+0.5, +0.5]" in _line(table, "test_accuracy")
    assert "test_accuracy 0.001" in table  # the footnote's minimum effect

    # Lower is better, no percent and a 1-point minimum effect, written in the table only.
    flipped = Meaning("test_accuracy", False, 0.0, 1.0, rule=Rule(False, absolute=0.01))
    monkeypatch.setitem(meanings.METRICS, "test_accuracy", flipped)
    found, table = _compare(capsys, *half_a_point)
    assert found == {"test_accuracy": "equivalent"}  # significant, below its minimum effect
    assert "+0.005 [+0.005, +0.005]" in _line(table, "test_accuracy")
    assert " pt" not in _line(table, "test_accuracy") and "test_accuracy 0.01" in table
    monkeypatch.setitem(meanings.METRICS, "test_accuracy", replace(flipped, rule=Rule(False)))
    assert _compare(capsys, *half_a_point)[0] == {"test_accuracy": "worse"}

    # A metric given a rule in the table is judged (here a side's summaries that hold it: a
    # runs folder summarises its headline figure only), printed as its meaning says.
    sides = []
    for label, mean in (("base", 0.900), ("new", 0.905)):
        values = {seed: mean + d for seed, d in enumerate(SPREAD)}
        s = summarize(values.values())
        side = compare.Side(label, "results")
        side.stats[("up", "", "quick", "dev_accuracy")] = compare.Stat(s.n, s.mean, s.sd, values)
        sides.append(side)
    assert compare.compare(*sides) == []
    dev = Meaning("dev_accuracy", True, 0.0, 1.0, meanings.PERCENT, Rule(True, absolute=0.001))
    monkeypatch.setitem(meanings.METRICS, "dev_accuracy", dev)
    (row,) = compare.compare(*sides)
    assert (row["metric"], row["verdict"]) == ("dev_accuracy", "better")
    assert "+0.5 pt" in _line(compare.render_text(*sides, [row]), "dev_accuracy")
    assert compare.RULES["dev_accuracy"] == dev.rule and "dev_accuracy" in compare.RULES


def test_an_override_changes_a_rule_of_the_table_not_the_table(monkeypatch):
    rules = compare.parse_min_effects(["test_accuracy=0.005"], ["test_mse=5%"])
    assert rules["test_accuracy"] == Rule(True, absolute=0.005)
    assert rules["test_mse"] == Rule(
        False, relative=0.03, margin_absolute=0.0, margin_relative=0.05
    )
    assert meanings.METRICS["test_accuracy"].rule == Rule(True, absolute=0.001)
    assert dict(compare.RULES) == {
        "test_accuracy": Rule(True, absolute=0.001),
        "test_mse": Rule(False, relative=0.03),
        "test_mse_pixels": Rule(False, relative=0.03),
        "final_train_loss": Rule(False, relative=0.03),
        "train_seconds": Rule(False, relative=0.10),
    }
    assert compare.RULES | {"test_mse": Rule(True)} == dict(compare.RULES) | {
        "test_mse": Rule(True)
    }


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dev_accuracy", Meaning("dev_accuracy", True, 0.0, 1.0, "%")),
        ("eval_seconds", Meaning("eval_seconds", False, 0.0, MAX_SECONDS, "s")),
        ("noisy_mse_pixels", Meaning("noisy_mse_pixels", False, 0.0, on_read=False)),
        ("test_loss", Meaning("test_loss", False)),
        ("n_train", Meaning("n_train", None, 0.0, on_read=False)),
        ("a_plugins_score", Meaning("a_plugins_score", None, -LARGEST, LARGEST, "")),
    ],
)
def test_a_metric_outside_the_table_gets_the_meaning_of_its_words(name, expected):
    assert name not in meanings.METRICS and meaning(name) == expected
    assert meaning(name).rule is None and name not in compare.RULES


def test_records_and_compare_check_the_tables_ranges(tmp_path, capsys, monkeypatch):
    for bad in ({"dev_accuracy": 1.5}, {"eval_seconds": -1.0}):
        with pytest.raises(records.RecordError, match="expected a number in its range"):
            records.check_metrics(bad | {"wall_seconds": 1.0})
    records.check_metrics({"noisy_mse_pixels": -1.0, "wall_seconds": 1.0})  # checked later
    # A plugin's score in [0, 10], said in the table: a record beyond it is damaged.
    score = Meaning("score", True, 0.0, 10.0)
    monkeypatch.setitem(meanings.METRICS, "score", score)
    with pytest.raises(records.RecordError, match="score is int 11"):
        records.check_metrics({"score": 11, "wall_seconds": 1.0})
    # compare refuses a summary beyond the range, in one line (exit 2).
    row = {"job": "up", "cell": "", "profile": "quick", "metric": "score", "n": 1, "mean": 12}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema_version": 3, "summaries": [row]}))
    assert main(["compare", str(path), str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: up score: mean 12 out of range [0, 10]\n"


def test_a_rule_against_its_metrics_direction_is_refused():
    with pytest.raises(ValueError, match="direction"):
        Meaning("test_accuracy", True, 0.0, 1.0, rule=Rule(False, absolute=0.001))
