"""The pca / ae-original / ae jobs end to end: metrics, artifacts, TensorBoard, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_suite.runs import load_run
from tests.conftest import run_path

AE_METRICS = {"test_mse", "test_mse_pixels", "fvu", "pca_test_mse_pixels", "latent_dim"}
PIXEL_STD = 0.3081  # std of every MNIST training pixel in [0, 1]


def events(path):
    acc = EventAccumulator(str(path / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def npz(path, name: str) -> dict[str, np.ndarray]:
    with np.load(path / "artifacts" / f"{name}.npz", allow_pickle=False) as f:
        return dict(f)


def test_listing_jobs_does_not_import_tensorflow():
    code = (
        "import sys; from mnist_suite.cli import main; main(['list']); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {"pca", "ae-original", "ae"} <= {line.split()[0] for line in done.stdout.splitlines()}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("ae", "--set", "models=deep-0"), "latent size 0 must be in 1..783"),
        (("ae", "--set", "models=deep-784"), "latent size 784 must be in 1..783"),
        (("ae", "--set", "models=conv-8"), "unknown model 'conv-8'"),
        (("ae", "--set", "models=linear"), "model 'linear' needs a latent size"),
        (("ae", "--set", "noise=-0.2"), "noise=-0.2 must be >= 0"),
        (("ae", "--set", "normalisation=minmax"), "unknown normalisation 'minmax'"),
        (("ae-original", "--set", "models=deep-32"), "unknown model 'deep-32'"),
        (("pca", "--set", "ks=2,784"), "latent size 784"),
    ],
)
def test_bad_input_is_one_line_before_training(run_cli, tmp_path, argv, message):
    code, _, err = run_cli("run", *argv)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and message in err
    assert not (tmp_path / "runs").exists()


def test_cells_list_one_run_per_model(run_cli):
    code, out, _ = run_cli("cells", "ae")
    assert code == 0
    labels = [line.split("\t")[1] for line in out.strip().splitlines()]
    assert labels == ["linear-2", "linear-32", "original-2d", "deep-32", "denoising-128"]


def test_pca_quick_records_everything(run_cli):
    code, out, _ = run_cli("run", "pca", "--profile", "quick")
    assert code == 0, out
    run = load_run(run_path(out))
    m = run.metrics
    assert run.state == "done" and len(m["explained_variance_ratio"]) == 2
    for k in (2, 8, 32, 128):
        # Z-score units and pixel units differ by the scalar std squared; FVU by nothing.
        assert m[f"test_mse_k{k}"] * PIXEL_STD**2 == pytest.approx(
            m[f"test_mse_pixels_k{k}"], rel=0.02
        )
        assert 0 < m[f"fvu_k{k}"] < 1
    assert m["test_mse_pixels_k2"] > m["test_mse_pixels_k8"] > m["test_mse_pixels_k128"]
    pca = npz(run.path, "pca")
    assert pca["components"].shape == (128, 784)
    np.testing.assert_allclose(pca["components"] @ pca["components"].T, np.eye(128), atol=1e-4)
    latents = npz(run.path, "latents")
    assert latents["z"].shape == (2000, 2) and latents["labels"].shape == (2000,)
    recon = npz(run.path, "reconstructions")
    assert recon["original"].shape == recon["k32"].shape == (10, 784)
    acc = events(run.path)
    assert [(e.step, e.value) for e in acc.Scalars("latent/fvu")] == [
        (k, pytest.approx(m[f"fvu_k{k}"])) for k in (2, 8, 32, 128)
    ]  # TensorBoard's step is the latent size
    (fit,) = acc.Scalars("epoch/epoch_seconds")
    assert fit.value == pytest.approx(m["train_seconds"], abs=1e-3)
    assert {r["step"] for r in run.history} == {0}  # PCA takes no optimizer step


def test_ae_quick_linear_and_denoising(run_cli, mnist):
    code, out, _ = run_cli(
        "run", "ae", "--profile", "quick", "--set", "models=linear-2,denoising-128"
    )
    assert code == 0, out
    paths = [run_path(line) for line in out.strip().splitlines()]
    linear, denoising = (load_run(p) for p in paths)
    for run in (linear, denoising):
        assert run.state == "done"
        assert set(run.metrics) >= AE_METRICS
        epochs = [row for row in run.history if row["kind"] == "epoch"]
        # 3,500 training images at batch 256: 14 optimizer steps an epoch.
        assert [(r["step"], r["epoch"]) for r in epochs] == [
            (14 * e, e) for e in range(1, run.metrics["epochs"] + 1)
        ]
        acc = events(run.path)
        assert len(acc.Scalars("epoch/train_loss")) == len(epochs)
        assert len(acc.Images("reconstructions")) == len(epochs)
        (final,) = acc.Scalars("eval/test_mse_pixels")
        assert final.value == pytest.approx(run.metrics["test_mse_pixels"], rel=1e-6)
    assert linear.metrics["latent_dim"] == 2
    assert npz(linear.path, "latents")["z"].shape == (1000, 2)
    assert npz(linear.path, "encoder_weights")["kernel"].shape == (784, 2)

    m = denoising.metrics
    assert m["latent_dim"] == 128
    # Pixel mode: the original's 0.4 z-units are 0.4 training-pixel stds, unclipped by default.
    assert m["noisy_mse_pixels"] == pytest.approx((0.4 * PIXEL_STD) ** 2, rel=0.03)
    # ÷ PCA is like for like: over PCA at the same k fed the same noisy test images.
    assert m["mse_vs_pca"] == pytest.approx(m["test_mse_pixels"] / m["pca_denoised_mse_pixels"])
    assert linear.metrics["mse_vs_pca"] == pytest.approx(
        linear.metrics["test_mse_pixels"] / linear.metrics["pca_test_mse_pixels"]
    )
    samples = npz(denoising.path, "reconstructions")
    assert set(samples) == {"indices", "original", "reconstruction", "pca", "noisy"}
    # The fixed samples: the first test image of each digit, in digit order.
    np.testing.assert_array_equal(mnist.y_test[samples["indices"]], np.arange(10))


def test_ae_seed_quick_is_z_scored_and_seed_style(run_cli):
    code, out, _ = run_cli("run", "ae-original", "--profile", "quick", "--set", "models=denoising")
    assert code == 0, out
    run = load_run(run_path(out))
    m = run.metrics
    assert m["normalisation"] == "zscore" and m["original_style"] is True
    assert m["parameters"] == 667_280
    assert m["test_mse"] == pytest.approx(m["final_val_loss"])
    assert m["test_mse"] * PIXEL_STD**2 == pytest.approx(m["test_mse_pixels"], rel=0.02)
    assert m["noisy_mse_pixels"] == pytest.approx((0.4 * PIXEL_STD) ** 2, rel=0.03)
    # ÷ PCA is like for like: over PCA at the same k fed the same noisy test images.
    assert m["mse_vs_pca"] == pytest.approx(m["test_mse_pixels"] / m["pca_denoised_mse_pixels"])


def test_nan_loss_is_recorded_as_diverged(run_cli):
    code, out, err = run_cli(
        "run",
        "ae",
        "--profile",
        "quick",
        "--set",
        "models=linear-2",
        "--set",
        "optimizer=sgd",
        "--set",
        "linear_lr=1e6",
    )
    assert code == 3 and "diverged" in err
    run = load_run(run_path(out))
    assert run.state == "diverged" and run.metrics["diverged_at_step"] > 0


def test_same_seed_same_numbers(run_cli, tmp_path):
    def metrics(out_dir: str) -> dict:
        code, out, _ = run_cli(
            "run", "ae", "--profile", "quick", "--set", "models=deep-8", "--out", out_dir
        )
        assert code == 0
        return load_run(run_path(out)).metrics

    first, second = metrics(str(tmp_path / "a")), metrics(str(tmp_path / "b"))
    assert first["test_mse"] == second["test_mse"]
    assert first["final_train_loss"] == second["final_train_loss"]


@pytest.mark.slow
def test_pca_full_reproduces_the_seed(run_cli):
    code, out, _ = run_cli("run", "pca")
    assert code == 0
    m = load_run(run_path(out)).metrics
    np.testing.assert_allclose(m["explained_variance_ratio"], [0.09704, 0.07095], atol=2e-4)
    np.testing.assert_allclose(m["explained_variance"], [53.9033, 39.4120], rtol=1e-3)
    for k, figure in ((2, 0.0557), (32, 0.0168), (128, 0.0042)):
        assert m[f"test_mse_pixels_k{k}"] == pytest.approx(figure, rel=0.02)
