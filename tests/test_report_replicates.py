"""The report over seeds: groups, intervals, the grid chosen on dev (never on test), time to
target, accessible HTML. Synthetic run records: no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_suite.report import figures
from mnist_suite.report.classification import chosen_cell, time_to_target_table
from mnist_suite.report.collect import RunRecord
from mnist_suite.report.document import FigureRef, Section, Table, render_html, render_markdown
from mnist_suite.report.figures import FigureWriter
from mnist_suite.report.replicates import groups, pick_cell_groups


class NoTest(dict):
    """Metrics whose test figures may not be read: proves a choice never looks at test."""

    def get(self, key, default=None):
        if key.startswith("test"):
            raise AssertionError(f"{key} was read while choosing")
        return super().get(key, default)


def record(cell, seed, metrics, *, job="sgd-grid", state="done", profile="full", lr=0.1):
    config = {"lr": lr, "batch_size": 32, "widths": [32, 32]}
    return RunRecord(
        path=Path(f"/runs/{job}/{cell}-{profile}-s{seed}"),
        state=state,
        config_file={"job": job, "cell": cell, "profile": profile, "seed": seed, "config": config},
        status={"started_at": f"2026-01-01T00:00:0{seed}"},
        metrics=metrics,
    )


def grid(dev_a, dev_b, *, test_a=0.99, test_b=0.90, guard=False):
    wrap = NoTest if guard else dict
    runs = []
    for seed, (da, db) in enumerate(zip(dev_a, dev_b, strict=True)):
        runs.append(record("a", seed, wrap(dev_accuracy=da, test_accuracy=test_a), lr=0.1))
        runs.append(record("b", seed, wrap(dev_accuracy=db, test_accuracy=test_b), lr=0.3))
    return runs


def test_the_grid_point_is_chosen_on_dev_means_never_on_test():
    # Test says a (0.99 vs 0.90); dev says b: b is chosen, and test is never read.
    runs = grid([0.95, 0.96, 0.94], [0.97, 0.96, 0.98], guard=True)
    assert chosen_cell(pick_cell_groups(runs, "sgd-grid")).cell == "b"


def test_the_choice_follows_dev_when_dev_changes():
    runs = grid([0.97, 0.98, 0.99], [0.97, 0.96, 0.98], test_a=0.90, test_b=0.99)
    assert chosen_cell(pick_cell_groups(runs, "sgd-grid")).cell == "a"


def test_the_choice_uses_the_mean_not_one_lucky_seed():
    # b has the single best seed (0.995) but the lower mean.
    runs = grid([0.980, 0.981, 0.982], [0.995, 0.95, 0.96])
    assert chosen_cell(pick_cell_groups(runs, "sgd-grid")).cell == "a"


def test_groups_split_by_cell_profile_and_config_and_count_unfinished_seeds():
    runs = [
        record("a", 0, {"test_accuracy": 0.96}),
        record("a", 1, {"test_accuracy": 0.98}),
        record("a", 2, {}, state="diverged"),
        record("a", 0, {"test_accuracy": 0.5}, profile="quick"),
        record("a", 0, {"test_accuracy": 0.7}, lr=0.01),  # another config: another group
    ]
    found = groups(runs, "sgd-grid")
    assert len(found) == 3
    full = found[0]  # the full profile first
    assert (full.profile, full.config["lr"], full.seeds) == ("full", 0.1, [0, 1, 2])
    assert full.count_text() == "2 of 3 (1 diverged)"
    s = full.summary("test_accuracy")
    assert s.n == 2 and s.mean == pytest.approx(0.97)
    # sd = 0.02 / sqrt(2), sem = sd / sqrt(2) = 0.01; t(0.975, df=1) = 12.7062...
    assert s.half_width == pytest.approx(12.706204736174707 * 0.01)
    assert pick_cell_groups(runs, "sgd-grid")["a"] == full


def _ttt(seconds_per_seed, evaluations=3):
    return {
        "time_to_target": {
            "evaluations": evaluations,
            "seconds": dict(zip(("0.97", "0.98", "0.99"), seconds_per_seed, strict=True)),
        },
        "eval_seconds": 0.5,
    }


def test_time_to_target_table_medians_bold_fastest_and_not_reached():
    fast = [record("", s, _ttt(t), job="fast") for s, t in enumerate(
        [(1.0, 2.0, None), (3.0, 4.0, None), (2.0, 9.0, None)])]  # fmt: skip
    slow = [record("", s, _ttt(t), job="slow") for s, t in enumerate(
        [(5.0, 6.0, 20.0), (6.0, 7.0, None), (7.0, 8.0, 30.0)])]  # fmt: skip
    nodev = [record("", 0, _ttt((None, None, None), evaluations=0), job="nodev")]

    class J:
        dev_note = "no dev split (the original had none)"

    entries = [
        (j, groups(r, j)[0], J()) for j, r in (("fast", fast), ("slow", slow), ("nodev", nodev))
    ]
    table = time_to_target_table(entries)
    rows = {r[0]: dict(zip([c for c, _ in table.columns], r, strict=True)) for r in table.rows}
    assert rows["fast"]["to 97% dev (s, median)"] == 2.0
    assert rows["fast"]["to 97%: range (s)"] == "1–3"
    assert rows["fast"]["to 99%: reached"] == "not reached"
    assert rows["fast"]["to 99% dev (s, median)"] is None  # not reached is never 0
    assert rows["slow"]["to 99% dev (s, median)"] == 30.0  # 2 of 3 reached: median is a time
    assert rows["slow"]["to 99%: reached"] == "2/3"
    assert rows["nodev"]["to 97%: reached"] == "no dev split"
    assert "nodev: no dev split (the original had none)." in table.note
    col = {c: j for j, (c, _) in enumerate(table.columns)}
    assert table.bold == {
        (0, col["to 97% dev (s, median)"]),
        (0, col["to 98% dev (s, median)"]),
        (1, col["to 99% dev (s, median)"]),
    }


def test_html_tables_have_captions_scoped_headers_and_figures_alt_text():
    table = Table("T", [("job", "text"), ("x", "f2")], [["a", 1.0], ["b", 2.0]], bold={(1, 1)})
    figure = FigureRef("figures/f.png", "F", "cap", alt="F shows that b is larger than a.")
    html = render_html("R", [Section("k", "K", tables=[table], figures=[figure])])
    assert "<caption>T</caption>" in html
    assert '<th scope="col">job</th>' in html and '<th scope="row">a</th>' in html
    assert "<strong>2.00</strong>" in html  # emphasis in the markup, not by colour
    assert 'alt="F shows that b is larger than a."' in html
    md = render_markdown("R", [Section("k", "K", tables=[table], figures=[figure])])
    assert "| b | **2.00** |" in md and "![F shows that b is larger than a.]" in md


def test_curve_title_and_caption_name_the_same_finished_seeds(tmp_path):
    from mnist_suite.report.classification import _learning_curves

    history = [{"kind": "epoch", "step": e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    runs = [record("", s, {"test_accuracy": 0.9}, job="mlp") for s in (0, 2)]
    runs.append(record("", 1, {}, job="mlp", state="failed"))
    for r in runs:
        r.history = history
    (g,) = groups(runs, "mlp")
    ref = _learning_curves(FigureWriter(tmp_path / "figures"), "mlp", g)
    assert "mean of 2 seeds" in ref.title
    assert "over seeds [0, 2]" in ref.caption  # seed 1 failed: in neither


def test_prose_marks_render_and_nothing_else_passes():
    """`code` and **emphasis** in intros, notes and captions render in both pages; text inside
    and around them stays text (no tag, link or heading from a run's name)."""
    intro = "A target is **unstable** when noisy: run `nox -s bench` <b>then</b> [x](javascript:1)"
    note = "No runs in `/tmp/a`b <script>` here"
    section = Section("k", "K", intro, notes=[note])
    html = render_html("R", [section], "made by `mnist-suite report`")
    assert "<strong>unstable</strong>" in html and "<code>nox -s bench</code>" in html
    body = html.split("<body>")[1]
    assert "**" not in body and "`nox" not in body and "`mnist-suite" not in body
    assert "&lt;b&gt;then&lt;/b&gt;" in html and "<script>" not in html
    assert "<code>/tmp/a</code>b &lt;script&gt;` here" in html  # an unpaired backtick is text
    assert "<details open><summary><h2>K</h2></summary>" in html
    md = render_markdown("R", [section], "made by `mnist-suite report`")
    assert "**unstable**" in md and "`nox -s bench`" in md and "made by `mnist-suite report`" in md
    assert "&lt;b&gt;" in md and "\\[x\\](javascript:1)" in md


def test_code_span_cannot_be_closed_from_inside():
    from mnist_suite.text import code_span

    assert code_span("test_accuracy") == "`test_accuracy`"
    assert code_span("a`b") == "``a`b``" and code_span("``x") == "``` ``x ```"
    assert code_span("a|b", in_table=True) == "`a\\|b`" and code_span("") == ""
    assert code_span("line\nbreak") == "`line\\nbreak`"


class _Recording(FigureWriter):
    """A FigureWriter that keeps the last figure it saved, to measure what was drawn."""

    def save(self, fig, *args, **kwargs):
        self.figure = fig
        return super().save(fig, *args, **kwargs)


def test_legends_sit_beside_the_data_and_long_labels_are_not_cut(tmp_path):
    from PIL import Image

    writer = _Recording(tmp_path / "figures")
    series = {f"ae-original/model-{i}": ([2, 8, 32, 128], [0.06, 0.04, 0.02, 0.004 + i / 1e3])
              for i in range(9)}  # fmt: skip
    figures.curves(writer, "mse", "MSE vs k", "k", [("MSE", series)], logx=True, logy=[True])
    fig = writer.figure
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    legend, plot = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= plot.x1  # the legend is right of the axes: it covers no point

    labels = ["original", "ae-original/original-2d-with-a-long-name"]
    ref = figures.image_grid(
        writer, "grid", "Reconstructions", [(lb, np.zeros((3, 784))) for lb in labels],
        col_label="test image",
    )  # fmt: skip
    fig = writer.figure
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, every label included
    width, height = Image.open(tmp_path / ref.file).size
    assert width >= drawn.width * figures.DPI - 1 and height >= drawn.height * figures.DPI - 1
    left_label = min(t.get_window_extent().x0 for t in fig.axes[0].get_yticklabels())
    assert left_label < 0 or width > fig.bbox.width  # it reached past the canvas: kept by the box


def _rows(kind, points, **values):
    """History rows of ``kind`` at (step, epoch) ``points`` (epoch None: no such field)."""
    rows = []
    for step, epoch in points:
        row = {"kind": kind, "step": step, "time": float(step)}
        if epoch is not None:
            row["epoch"] = epoch
        rows.append(row | values)
    return rows


def test_curves_read_epochs_from_this_history_and_from_older_records():
    """Epoch rows carry the optimizer step in ``step`` and their epoch apart; older records
    keep the epoch in ``step``: both draw at epochs 1, 2, 3."""
    from mnist_suite.report.common import curve_kind

    now = _rows("epoch", [(36, 1), (72, 2), (108, 3)], train_loss=0.5)
    now += _rows("step", [(50, None), (100, None)], dev_accuracy=0.9)
    now += _rows("eval", [(108, None)], test_accuracy=0.9, dev_accuracy=0.9)
    older = _rows("epoch", [(1, None), (2, None), (3, None)], train_loss=0.5)
    older += _rows("probe", [(50, None)], dev_accuracy=0.9)
    older += _rows("final", [(3, None)], test_accuracy=0.9)
    for history in (now, older):
        run = record("", 0, {"test_accuracy": 0.9}, job="mlp")
        run.history = history
        assert curve_kind(run) == "epoch"
        (g,) = groups([run], "mlp")
        x, mean, _ = g.curve("epoch", "train_loss")
        assert x.tolist() == [1.0, 2.0, 3.0] and mean.tolist() == [0.5] * 3


@pytest.mark.parametrize(
    ("history", "kind"),
    [
        # softmax-original: evaluations within its one epoch, then that epoch and the scoring.
        (
            _rows("step", [(s, None) for s in (1000, 2000)], train_loss=0.5, test_accuracy=0.8)
            + _rows("epoch", [(2000, 1)], train_loss=0.5, epoch_seconds=1.0)
            + _rows("eval", [(2000, None)], test_accuracy=0.8),
            "step",
        ),
        (_rows("eval", [(s, None) for s in (1000, 2000)], train_loss=0.5), "eval"),  # older
        # mlp-original: evaluations every 250 draws and an epoch every 590.
        (
            _rows("step", [(s, None) for s in (250, 500, 750)], train_loss=0.5, dev_accuracy=0.8)
            + _rows("epoch", [(590, 1)], train_loss=0.5, dev_accuracy=0.8),
            "step",
        ),
        # sgd: batch losses between epochs; the epochs measure more.
        (
            _rows("step", [(s, None) for s in range(1, 9)], train_loss=0.5)
            + _rows("epoch", [(4, 1), (8, 2)], train_loss=0.5, train_accuracy=0.8),
            "epoch",
        ),
    ],
)
def test_curves_come_from_the_rows_that_measure_most(history, kind):
    from mnist_suite.report.common import curve_kind

    run = record("", 0, {"test_accuracy": 0.9}, job="mlp")
    run.history = history
    assert curve_kind(run) == kind
