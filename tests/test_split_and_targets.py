"""The dev split (stratified, disjoint, one per seed) and time to target on known histories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnist_suite import runs
from mnist_suite.data.split import dev_split, split_arrays
from mnist_suite.errors import ConfigError
from mnist_suite.jobs import Job
from mnist_suite.targets import TargetClock, from_history


@pytest.fixture(scope="module")
def labels(mnist):
    return mnist.y_train


def test_dev_split_is_disjoint_and_covers_the_training_set(labels):
    train, dev = dev_split(labels, 5000, seed=0)
    assert len(dev) == 5000 and len(train) == len(labels) - 5000
    assert np.intersect1d(train, dev).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, dev])), np.arange(len(labels)))


def test_dev_split_is_stratified(labels):
    _, dev = dev_split(labels, 5000, seed=3)
    expected = np.bincount(labels, minlength=10) / len(labels)
    observed = np.bincount(labels[dev], minlength=10) / len(dev)
    # Stratified: every class within one example of its share (random: ~ +-0.4 points).
    np.testing.assert_allclose(observed, expected, atol=1.0 / len(dev) + 1e-12)


def test_dev_split_is_one_per_seed(labels):
    a = dev_split(labels, 5000, seed=1)[1]
    b = dev_split(labels, 5000, seed=1)[1]
    c = dev_split(labels, 5000, seed=2)[1]
    np.testing.assert_array_equal(a, b)  # any job, any run of seed 1: the same dev set
    assert np.intersect1d(a, c).size < 1000  # another seed: another split (~417 by chance)


def test_dev_split_only_uses_the_dev_stream(labels):
    """Jobs drawing from other streams before splitting cannot move the split."""
    from mnist_suite.seeding import rng

    before = dev_split(labels, 1000, seed=5)[1]
    rng(5, "order").permutation(100)
    rng(5, "init").standard_normal(10)
    np.testing.assert_array_equal(dev_split(labels, 1000, seed=5)[1], before)


def test_split_arrays_keeps_rows_with_labels():
    y = np.repeat(np.arange(10), 20)
    x = np.arange(200)[:, None] * np.ones((1, 3))
    x_tr, y_tr, x_dev, y_dev = split_arrays(x, y, 50, seed=0)
    assert x_tr.shape == (150, 3) and x_dev.shape == (50, 3) and y_tr.shape == (150,)
    np.testing.assert_array_equal(y[x_dev[:, 0].astype(int)], y_dev)
    np.testing.assert_array_equal(np.bincount(y_dev), np.full(10, 5))


@pytest.mark.parametrize("n_dev", [-1, 200])
def test_dev_split_rejects_bad_sizes(n_dev):
    with pytest.raises(ConfigError, match="n_dev"):
        dev_split(np.zeros(200, int), n_dev, seed=0)


def test_no_dev_split_is_empty():
    train, dev = dev_split(np.zeros(7, int), 0, seed=0)
    assert dev.size == 0 and list(train) == list(range(7))


# --- time to target -------------------------------------------------------------------------


def test_time_to_target_on_a_known_crossing():
    history = [
        {"kind": "epoch", "step": 1, "time": 2.0, "dev_accuracy": 0.95},
        {"kind": "epoch", "step": 2, "time": 4.0, "dev_accuracy": 0.975},
        {"kind": "epoch", "step": 3, "time": 6.0, "dev_accuracy": 0.972},  # dips: first crossing
        {"kind": "epoch", "step": 4, "time": 8.0, "dev_accuracy": 0.98},  # exactly on target
        {"kind": "epoch", "step": 5, "time": 9.5, "train_loss": 0.1},  # no evaluation
    ]
    summary = from_history(history)
    assert summary["seconds"] == {"0.97": 4.0, "0.98": 8.0, "0.99": None}
    assert summary["step"] == {"0.97": 2, "0.98": 4, "0.99": None}
    assert summary["reached"] == {"0.97": True, "0.98": True, "0.99": False}
    assert summary["evaluations"] == 4


def test_a_target_never_reached_is_none_not_zero():
    clock = TargetClock()
    assert clock.update(0.5, 0.0, 0) == []
    summary = clock.summary()
    assert all(v is None for v in summary["seconds"].values())
    assert not any(summary["reached"].values())


def test_a_jump_over_several_targets_reaches_each_at_that_evaluation():
    clock = TargetClock((0.97, 0.98, 0.99))
    assert clock.update(0.995, 3.0, 7) == [0.97, 0.98, 0.99]
    assert set(clock.summary()["seconds"].values()) == {3.0}


def _classifier(cfg, run):
    for epoch, acc in enumerate((0.9, 0.971, 0.985), start=1):
        with run.evaluating():
            pass
        run.log(epoch, "epoch", dev_accuracy=acc)
    return {"test_accuracy": 0.98}


def test_runner_records_time_to_target_in_metrics_and_history(tmp_path):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        n: int = 1

    job = Job("clf", "test", Cfg, _classifier)
    outcome = runs.execute(job, "", Cfg(), seed=4, profile="quick", out=tmp_path, run_id="r")
    assert outcome.state == "done"
    run = runs.load_run(outcome.path)
    ttt = run.metrics["time_to_target"]
    assert ttt["reached"] == {"0.97": True, "0.98": True, "0.99": False}
    assert ttt["seconds"]["0.99"] is None
    epochs = {r["step"]: r for r in run.history if r["kind"] == "epoch"}
    assert ttt["seconds"]["0.97"] == epochs[2]["time"] > 0  # the run's clock, never 0
    assert ttt["seconds"]["0.98"] == epochs[3]["time"]
    marks = [r["target"] for r in run.history if r["kind"] == "target"]
    assert marks == [0.97, 0.98]
    assert from_history(run.history) == ttt  # history alone rebuilds it
    assert run.metrics["eval_seconds"] >= 0
    json.dumps(run.metrics)


def test_time_to_target_counts_optimizer_steps_across_probes_and_epochs(tmp_path):
    """Probes between epochs and epoch ends share one axis, the optimizer step: a target first
    reached at an epoch's end is at that epoch's last step (72), never at its number (2); the
    final scoring, which repeats the kept weights' dev accuracy, is no evaluation."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cfg:
        n: int = 1

    def train(cfg, run):
        run.log(36, epoch=1, dev_accuracy=0.90)
        run.log(50, "step", dev_accuracy=0.95)
        run.log(72, epoch=2, dev_accuracy=0.975)
        run.log(100, "step", dev_accuracy=0.985)
        run.log(108, epoch=3, dev_accuracy=0.995)
        run.log(108, "eval", test_accuracy=0.99, dev_accuracy=0.995)
        return {"test_accuracy": 0.99}

    job = Job("clf", "test", Cfg, train)
    outcome = runs.execute(job, "", Cfg(), seed=0, profile="quick", out=tmp_path, run_id="r")
    run = runs.load_run(outcome.path)
    ttt = run.metrics["time_to_target"]
    assert ttt["step"] == {"0.97": 72, "0.98": 100, "0.99": 108}
    assert ttt["evaluations"] == 5
    epochs = [(r["step"], r["epoch"]) for r in run.history if r["kind"] == "epoch"]
    assert epochs == [(36, 1), (72, 2), (108, 3)]
    assert from_history(run.history) == ttt


def test_runner_writes_job_cell_hparams_but_not_the_seed_for_every_job(tmp_path):
    from dataclasses import dataclass

    from tensorboard.plugins.hparams import metadata as hp_metadata

    from tests.test_tb import read

    @dataclass(frozen=True)
    class Cfg:
        widths: tuple[int, ...] = (8, 4)
        lr: float = 0.5
        note: str | None = None

    job = Job("clf", "test", Cfg, _classifier)
    outcome = runs.execute(job, "c1", Cfg(), seed=7, profile="full", out=tmp_path, run_id="r7")
    content = read(outcome.path / "tb").PluginTagToContent(hp_metadata.PLUGIN_NAME)
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG]
    )
    h = start.hparams
    assert "seed" not in h  # the seeds of one config are one session group
    assert (h["job"].string_value, h["cell"].string_value) == ("clf", "c1")
    assert h["profile"].string_value == "full"
    assert (h["widths"].string_value, h["lr"].number_value) == ("8,4", 0.5)
    assert h["note"].string_value == "none"
    assert start.group_name and start.group_name != "r7"  # named by the hparams, not the run


def test_every_job_declares_what_the_report_and_the_suite_need():
    from mnist_suite.jobs import all_jobs
    from mnist_suite.originals import Original

    jobs = all_jobs()
    for job in jobs.values():
        assert job.family in ("classifier", "reconstruction")
        assert job.improves_on is None or jobs[job.improves_on].faithful
        assert job.default_seeds("quick") == (0,)
        assert len(job.default_seeds("full")) == job.seed_count >= 2
    assert jobs["sgd-original"].printed("test_accuracy") == "96.08%"
    assert jobs["ae-original"].printed("test_mse", "wide") == "0.5695"
    # Every original figure reads as a number with its printed precision (mnist_suite.originals).
    for job in jobs.values():
        for key, text in job.original_figures.items():
            found = Original.parse(text, job.name)
            assert found.value > 0 and (found.precision or 0) >= 0, (job.name, key)
    assert jobs["mlp"].improves_on == "mlp-original" and not jobs["mlp"].faithful
