"""The comparison's table-wide false-alarm rate, measured on real quick runs (slow).

Unchanged code on both sides, other seeds (Welch) and the same seeds (paired): at 95% the share
of tables with any better/worse must stay near Holm's bound of 5%. docs/results.md publishes the
full calibration (tools/calibrate.py over 160 seeds, and detection of graded weakenings).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mnist_suite.cli import main

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("calibrate", ROOT / "tools" / "calibrate.py")
calibrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibrate)


@pytest.mark.slow
def test_null_tables_stay_within_the_false_alarm_bound(tmp_path, capsys):
    runs, again = tmp_path / "runs", tmp_path / "again"
    for job in ("mlp-fast", "softmax"):
        argv = ["run", job, "--profile", "quick", "--seeds", "0-15", "--runs", str(runs)]
        assert main(argv) == 0
    argv = ["run", "mlp-fast", "--profile", "quick", "--seeds", "0-3", "--runs", str(again)]
    assert main(argv) == 0
    capsys.readouterr()
    rules = calibrate.compare.RULES
    jobs = calibrate.by_job(runs)
    null = calibrate.null_other_seeds(jobs, 4, 200, 0.95, rules)
    # 200 overlapping draws from 16 seeds: an estimate of the rate, not 200 independent tables;
    # 0.10 leaves room for that (the published figure over 160 seeds is 1.3%).
    assert null["rows_per_table"] == 2 and null["rate"] <= 0.10, null
    same = calibrate.null_same_seeds(jobs, calibrate.by_job(again), 0.95, rules)
    assert same == {"tables": 1, "alarms_or_nonzero": 0}
