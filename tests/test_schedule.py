"""The pool's order (longest expected first) and the report's overhead table."""

from __future__ import annotations

import json

from mnist_suite.plan import build_plan, run_dir
from mnist_suite.report.common import Context
from mnist_suite.report.overview import overhead_table
from mnist_suite.runs import find_runs, load_run
from mnist_suite.schedule import expected_seconds, longest_first


def _record(runs, item, metrics: dict, state: str = "done") -> None:
    path = run_dir(runs, item)
    path.mkdir(parents=True)
    config = {"job": item.job, "cell": item.cell, "profile": item.profile, "seed": item.seed}
    (path / "config.json").write_text(json.dumps({**config, "run_id": item.run_id, "config": {}}))
    (path / "status.json").write_text(json.dumps({"state": state}))
    (path / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0, **metrics}))


def test_recorded_times_order_the_plan_and_estimates_fill_in(tmp_path):
    items = build_plan(["softmax", "mlp", "sgd-original"], profile="quick", seeds=(0, 1))
    by = {(i.job, i.seed): i for i in items}
    _record(tmp_path, by["softmax", 0], {"item_seconds": 90.0})  # slow here: its median counts
    _record(tmp_path, by["softmax", 1], {"item_seconds": 70.0})
    _record(tmp_path, by["sgd-original", 0], {"wall_seconds": 2.0})  # no item_seconds: the wall
    _record(tmp_path, by["sgd-original", 1], {"item_seconds": 500.0}, state="failed")  # not used
    expected = expected_seconds(items, tmp_path)
    assert expected[by["softmax", 0].index] == expected[by["softmax", 1].index] == 80.0
    assert expected[by["sgd-original", 1].index] == 2.0
    from mnist_suite.jobs import get_job

    assert expected[by["mlp", 0].index] == get_job("mlp").seconds[0]  # never run: the estimate
    order = [(i.job, i.seed) for i in longest_first(items, expected)]
    ranked = sorted(["softmax", "mlp", "sgd-original"], key=lambda j: -expected[by[j, 0].index])
    assert order == [(job, seed) for job in ranked for seed in (0, 1)]  # ties keep plan order


def test_a_long_cell_without_records_starts_before_its_shorter_siblings(tmp_path):
    """A job's cells need not take alike: a cell's own estimate orders it among the others."""
    from mnist_suite.jobs import get_job

    ae = get_job("ae")
    long_cells = {c for c, (_, full) in ae.cell_seconds.items() if full > ae.seconds[1]}
    assert long_cells, "ae's deep cells train several times as many epochs as the others"
    items = build_plan(["ae"], profile="full", seeds=(0,))
    order = [i.cell for i in longest_first(items, expected_seconds(items, tmp_path))]
    assert set(order[: len(long_cells)]) == long_cells
    assert order[len(long_cells) :] == [i.cell for i in items if i.cell not in long_cells]


def test_the_overhead_table_splits_first_and_warm_items_and_evaluation(tmp_path):
    items = build_plan(["softmax", "sgd-original"], profile="quick", seeds=(0, 1, 2))
    for item in items:
        first = item.seed == 0
        overhead = {"softmax": 2.0 if first else 0.25, "sgd-original": 9.0 if first else 4.0}
        evaluation = {"softmax": 1.5 if first else 0.5}.get(item.job)  # sgd-original: none
        metrics = {
            "train_seconds": 10.0,
            "item_seconds": 10.0 + (evaluation or 0.0) + overhead[item.job] + item.seed / 100,
            "process_item": 1 if first else item.seed + 1,
        }
        if evaluation is not None:
            metrics["eval_seconds"] = evaluation
        _record(tmp_path, item, metrics)
    ctx = Context([load_run(p) for p in find_runs(tmp_path)], [], None, tmp_path, None)
    table = overhead_table(ctx)
    assert [name for name, _ in table.columns][2:8] == [
        "first items", "first: median (s)", "first: evaluation (s)",
        "later items", "later: median (s)", "later: evaluation (s)",
    ]  # fmt: skip
    rows = {row[0]: row for row in table.rows}
    # Evaluation is its own column, never overhead.
    assert rows["softmax"][1:5] == ["numpy", 1, 2.0, 1.5]
    assert rows["softmax"][5] == 2 and abs(rows["softmax"][6] - 0.265) < 1e-9
    assert rows["softmax"][7] == 0.5 and rows["softmax"][9] == "met"
    # Runs recorded without eval_seconds (older runs): read, their evaluation left in overhead.
    sgd = rows["sgd-original"]
    assert sgd[1] == "tf" and sgd[4] is None and sgd[7] is None
    assert abs(sgd[6] - 4.015) < 1e-9 and sgd[9] == "missed"  # over 3 s once warm
