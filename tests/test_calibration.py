"""compare's error rates, measured by tools/calibrate.py on real runs (slow, a few seconds).

Sixteen seeds of a tiny softmax (two epochs of 3000 images): the same code on both sides with
other seeds must rarely read better or worse, a 1-point loss injected into NEW must read worse at
6 seeds per side, a change of exactly the margin must rarely read equivalent, and seeds until
decided must stop within its schedule. docs/results.md describes the full calibration.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mnist_suite.cli import main

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("calibrate", ROOT / "tools" / "calibrate.py")
calibrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibrate)

# Two epochs: a seed-to-seed sd of about 0.3 pt, where one epoch's 0.55 pt leaves a 1-point loss
# at 6 seeds per side found in only about 80% of tables (too close to the bound to test).
TINY = ["--set", "epochs=2", "--set", "n_train=3000", "--set", "n_dev=500"]
SEEDS = 16
DRAWS = 60  # random splits per rate: overlapping, so the bounds below leave room


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    runs = tmp_path_factory.mktemp("calibration") / "pool"
    argv = ["run", "softmax", "--profile", "quick", "--seeds", f"0-{SEEDS - 1}", *TINY]
    assert main([*argv, "--runs", str(runs)]) == 0
    return runs


def rng(section: int):
    return np.random.default_rng([0, section])


@pytest.mark.slow
def test_compare_is_rarely_wrong_on_real_runs(pool, capsys):
    capsys.readouterr()
    runs = calibrate.read_pool(pool)
    assert sorted(runs["softmax"]) == list(range(SEEDS))
    rules, welch = calibrate.compare.RULES, calibrate.WELCH
    # Unchanged code, other seeds: a false alarm is any better/worse; Holm's bound is 5%.
    null = calibrate.null(runs, 4, DRAWS, welch, rules, 0.95, rng(0))
    assert null["random"]["alarms"]["tables"] == DRAWS
    assert null["random"]["alarms"]["rate"] <= 0.10, null
    assert null["disjoint"]["alarms"]["tables"] == SEEDS // 8
    # The gate's pipeline at its own settings (read from noxfile.py): 4 seeds against 10 others.
    gate = calibrate.gate(runs, DRAWS, welch, rng(1))
    assert gate["compare_options"]["confidence"] == 0.99
    assert "test_accuracy=0.005" in gate["compare_options"]["min_effect"]
    assert (gate["jobs"], gate["new_seeds"], gate["baseline_seeds"]) == (["softmax"], 4, 10)
    assert gate["random"]["false_failures"]["rate"] <= 0.10, gate

    args = calibrate.parser().parse_args([str(pool), "--sizes", "6", "--max-seeds", "8"])
    args.draws = DRAWS
    # A 1-point loss injected into NEW's runs: worse at 6 seeds per side, and until decided
    # within the schedule's last look (4, 6, 8 seeds), most often before it.
    loss = calibrate.effect_tables(
        runs, "softmax", -0.01, lambda rows: calibrate.found(rows, -1.0), args, welch, rules,
        rng(2),
    )  # fmt: skip
    assert loss["fixed"]["6"]["random"]["rate"]["rate"] >= 0.80, loss["fixed"]
    decided = loss["until_decided"]["random"]
    assert decided["rate"]["rate"] >= 0.80, decided
    assert decided["most_seeds"] <= 8 and decided["mean_seeds"] < 8, decided
    # A change of exactly the margin (±0.1 pt) is not inside it: false equivalents stay rare.
    margin = calibrate.margin(runs, "softmax", args, welch, rules, rng(3))
    assert margin["margin"] == pytest.approx(0.001)
    for sign in ("+0.1", "-0.1"):
        assert margin[sign]["fixed"]["6"]["random"]["rate"]["rate"] <= 0.10, margin[sign]
        assert margin[sign]["until_decided"]["random"]["rate"]["rate"] <= 0.10, margin[sign]


@pytest.mark.slow
def test_the_command_writes_its_json_and_markdown(pool, tmp_path, capsys):
    # A weakened softmax (one epoch, about 2.5 pt lower) on four of the pool's seeds.
    weak = tmp_path / "weak"
    argv = ["run", "softmax", "--profile", "quick", "--seeds", "0-3", *TINY, "--set", "epochs=1"]
    assert main([*argv, "--runs", str(weak)]) == 0
    capsys.readouterr()
    md = tmp_path / "calibration.md"
    argv = [str(pool), str(weak), "--draws", "2", "--sizes", "4", "--max-seeds", "8"]
    assert calibrate.main([*argv, "--delta", "-1", "--md", str(md)]) == 0
    doc = json.loads(capsys.readouterr().out)
    detected = doc["detection"][str(weak)]
    assert detected["effect"] < -0.01 and detected["worse"]["tables"] == 1, detected
    assert detected["worse"]["count"] == 1, detected
    assert set(doc["designs"]) == {"welch", "relabelled"} and doc["until_decided_looks"] == [
        4,
        6,
        8,
    ]
    effect = doc["designs"]["relabelled"]["effects"]["-1"]
    assert effect["fixed"]["4"]["random"]["rate"]["tables"] == 2
    text = md.read_text()
    assert "**Null tables (welch; softmax; 4 seeds per side).**" in text
    assert "| -1 | 4 | 2 |" in text and "until decided (mean" in text
    # A pool too small for the sizes asked: one line, exit 2, nothing written.
    md.unlink()
    assert calibrate.main([str(pool), "--sizes", "9", "--md", str(md)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: softmax's effects needs 24 seeds of softmax; the pool holds 16"
    ]
    assert not md.exists()
