"""A warm process traces each model shape once: its later runs give every figure a fresh run gives.

The items of a batch run one after another in this process (as in a warm worker), reusing the
graphs traced for the same shape; then each item runs again alone with nothing kept, and every
recorded figure is compared exactly: metrics, history rows and saved arrays. Only clocks differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.runs import find_runs, load_run

pytestmark = pytest.mark.slow  # each test trains its items twice (quick profiles)


def _figures(value):
    """``value`` without its clocks (``*seconds``, ``time``) and the process's item number."""
    if isinstance(value, dict):
        return {
            k: _figures(v)
            for k, v in value.items()
            if not k.endswith("seconds") and k not in ("time", "samples_per_second", "process_item")
        }
    if isinstance(value, list):
        return [_figures(v) for v in value]
    return value


def _recorded(out) -> dict:
    """Every finished run under ``out`` by run id: (metrics, history, artifacts) sans clocks."""
    runs = {}
    for path in find_runs(out):
        run = load_run(path)
        assert run.state == "done", run.path
        arrays = {}
        for npz in sorted((path / "artifacts").glob("*.npz")):
            with np.load(npz, allow_pickle=False) as f:
                arrays.update({f"{npz.stem}/{k}": f[k] for k in f.files})
        runs[path.name] = (_figures(run.metrics), _figures(run.history), arrays)
    return runs


def _warm(run_cli, tmp_path, argv: list[str], forget) -> dict:
    """The runs of ``argv``'s items, one after another in this process after ``forget()``."""
    forget()
    code, out, _ = run_cli(*argv, "--out", str(tmp_path / "warm"))
    assert code == 0, out
    return _recorded(tmp_path / "warm")


def _fresh(run_cli, tmp_path, argv: list[str], forget, items: int) -> dict:
    """The runs of ``argv``'s items, each alone after ``forget()``: nothing traced is kept."""
    for index in range(items):
        forget()
        code, out, _ = run_cli(*argv, "--index", str(index), "--out", str(tmp_path / "fresh"))
        assert code == 0, out
    return _recorded(tmp_path / "fresh")


def _assert_same_figures(warm: dict, fresh: dict) -> None:
    assert sorted(warm) == sorted(fresh)
    for run_id, (metrics, history, arrays) in warm.items():
        fresh_metrics, fresh_history, fresh_arrays = fresh[run_id]
        assert metrics == fresh_metrics, run_id  # floats compared with ==: bit for bit
        assert history == fresh_history, run_id
        assert sorted(arrays) == sorted(fresh_arrays), run_id
        for name, array in arrays.items():
            np.testing.assert_array_equal(array, fresh_arrays[name], err_msg=f"{run_id} {name}")


def test_sgd_grid_cells_and_seeds_of_two_shapes_trace_once_each(run_cli, tmp_path):
    """Two nets x two learning rates x two seeds: 4 runs per shape, one trace per shape."""
    from mnist_suite.tfsgd import loop

    argv = [
        *("run", "sgd-grid", "--profile", "quick", "--seeds", "0,1"),
        *("--set", "nets=32-32,16", "--set", "lrs=0.1,0.03", "--set", "batch_sizes=64"),
        *("--set", "n_train=2000", "--set", "n_dev=500"),
    ]
    warm = _warm(run_cli, tmp_path, argv, loop.clear_trainers)
    assert len(warm) == 8
    for widths in ((32, 32), (16,)):
        # The shape's cached trainer: its epoch and its evaluation each traced once in 4 runs.
        assert loop.trainer(widths, 0.1, 64, "mean").tracing_count == 2
    _assert_same_figures(warm, _fresh(run_cli, tmp_path, argv, loop.clear_trainers, 8))


@pytest.mark.parametrize(
    "argv",
    [
        # SGD at lr 0.1, once-drawn noise for the denoiser
        ["ae-original", "--set", "models=original-2d,denoising", "--set", "n_test=500"],
        # Adam on a cosine schedule, the dev split, fresh noise per epoch
        ["ae", "--set", "models=linear-2,denoising-128", "--set", "n_dev=500"],
    ],
)
def test_autoencoders_of_one_shape_share_a_workspace_and_give_fresh_figures(
    run_cli, tmp_path, argv
):
    from mnist_suite import autoencoders

    argv = ["run", *argv, "--profile", "quick", "--seeds", "0,1", "--set", "n_train=2000"]
    warm = _warm(run_cli, tmp_path, argv, autoencoders.clear_workspaces)
    assert len(warm) == 4
    # Two models, two seeds each: two workspaces, each traced once.
    traced = [
        w.train_epoch.experimental_get_tracing_count() for w in autoencoders._WORKSPACES.values()
    ]
    assert traced == [1, 1]
    _assert_same_figures(warm, _fresh(run_cli, tmp_path, argv, autoencoders.clear_workspaces, 4))
