"""Autoencoders behind PCA's interface, the noise transform, and PCA itself: invariants."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.autoencoders import (
    Autoencoder,
    build_autoencoder,
    clear_workspaces,
    fvu,
    gaussian_noise,
    latent_size,
    mse,
    noise_transform,
)
from mnist_suite.data import scalar_zscore, to_unit
from mnist_suite.errors import Diverged, ParameterError
from mnist_suite.jobs.autoencoders import fit_pca


@pytest.fixture(scope="module")
def pixels(mnist) -> tuple[np.ndarray, np.ndarray]:
    """(2000 training, 500 test) real MNIST images as (n, 784) pixels in [0, 1]."""
    return to_unit(mnist.x_train[:2000]), to_unit(mnist.x_test[:500])


# --- noise ------------------------------------------------------------------------------------


def test_gaussian_noise_has_zero_mean_and_the_factor_as_std():
    x = np.full((4000, 784), 0.25, np.float32)
    noise = gaussian_noise(x, 0.4, np.random.default_rng(0)) - x
    # 3.1M draws: the standard error of the mean is 0.4 / 1770 ≈ 2.3e-4.
    assert abs(noise.mean()) < 1.5e-3
    assert noise.std() == pytest.approx(0.4, rel=2e-3)
    assert noise.dtype == np.float32


def test_gaussian_noise_clipping_holds_and_bites():
    x = np.random.default_rng(1).random((1000, 784), dtype=np.float32)
    noisy = gaussian_noise(x, 0.5, np.random.default_rng(2), clip=(0.0, 1.0))
    assert noisy.min() == 0.0 and noisy.max() == 1.0
    # Clipping only moves values that left the range; the rest keep their noise.
    inside = (noisy > 0) & (noisy < 1)
    assert inside.mean() > 0.5
    assert not np.allclose(noisy[inside], x[inside])


def test_noise_is_fresh_per_draw_and_reproducible_per_seed():
    x = np.zeros((10, 784), np.float32)
    corrupt = noise_transform(0.4)
    rng = np.random.default_rng(3)
    first, second = corrupt(x, rng), corrupt(x, rng)
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(first, corrupt(x, np.random.default_rng(3)))


def test_negative_noise_is_refused():
    with pytest.raises(ParameterError, match=r"noise factor=-0\.1 must be >= 0"):
        noise_transform(-0.1)
    with pytest.raises(ParameterError, match="must be >= 0"):
        gaussian_noise(np.zeros((1, 784), np.float32), -1.0, np.random.default_rng(0))


# --- latent sizes and architectures -----------------------------------------------------------


@pytest.mark.parametrize("k", [0, -3, 784, 1000])
def test_latent_size_out_of_range_is_refused(k):
    with pytest.raises(ParameterError, match=r"latent size .* must be in 1\.\.783"):
        latent_size("deep", k)


def test_unknown_variant_and_fixed_latent_mismatch_are_refused():
    with pytest.raises(ParameterError, match="unknown autoencoder variant 'conv'"):
        latent_size("conv", 8)
    with pytest.raises(ParameterError, match="wide has a fixed latent size 512"):
        latent_size("wide", 32)
    assert latent_size("original-2d") == 2


@pytest.mark.parametrize(
    ("variant", "params"),
    [("original-2d", 3_922), ("wide", 804_112), ("original-deep", 667_280)],
)
def test_seed_architectures_have_the_seeds_parameter_counts(variant, params):
    _, _, model = build_autoencoder(variant)
    assert model.count_params() == params


def test_deep_is_symmetric_and_drops_widths_not_above_k():
    encoder, decoder, _ = build_autoencoder("deep", 32)
    assert [layer.units for layer in encoder.layers] == [512, 256, 128, 32]
    assert [layer.units for layer in decoder.layers] == [128, 256, 512, 784]
    encoder, decoder, _ = build_autoencoder("deep", 128)
    assert [layer.units for layer in encoder.layers] == [512, 256, 128]
    assert [layer.units for layer in decoder.layers] == [256, 512, 784]


def test_linear_variant_has_no_activation():
    encoder, decoder, _ = build_autoencoder("linear", 8)
    for layer in (*encoder.layers, *decoder.layers):
        assert layer.activation.__name__ == "linear"


# --- the sklearn-style interface --------------------------------------------------------------


def test_fit_returns_self_and_sets_fitted_attributes(pixels):
    x_train, x_test = pixels
    ae = Autoencoder("deep", 16, epochs=2, batch_size=128)
    assert ae.fit(x_train[:512], validation_data=(x_test, x_test)) is ae
    assert ae.latent_dim_ == 16 and ae.n_features_in_ == 784
    assert len(ae.history_["loss"]) == len(ae.history_["val_loss"]) == 2
    assert ae.n_steps_ == 2 * 4  # 512 samples in batches of 128, twice
    z = ae.transform(x_test)
    assert z.shape == (500, 16)
    assert ae.inverse_transform(z).shape == (500, 784)
    # The one-pass reconstruction is the composition of the two halves.
    np.testing.assert_allclose(ae.reconstruct(x_test), ae.inverse_transform(z), atol=1e-5)
    # val_loss is the MSE of that reconstruction.
    assert ae.history_["val_loss"][-1] == pytest.approx(mse(ae.reconstruct(x_test), x_test))


def test_bce_trains_on_cross_entropy_and_is_scored_by_mse(pixels):
    """The epoch loss is the pixels' binary cross-entropy (positive, far above the MSE), it
    falls, and validation stays the reconstruction's MSE."""
    x_train, x_test = pixels
    ae = Autoencoder("deep", 16, epochs=3, batch_size=128, loss="bce", random_state=0)
    ae.fit(x_train, validation_data=(x_test, x_test))
    losses = ae.history_["loss"]
    assert losses[-1] < losses[0] and losses[-1] > 3 * ae.history_["val_loss"][-1]
    assert ae.history_["val_loss"][-1] == pytest.approx(mse(ae.reconstruct(x_test), x_test))
    recon = ae.reconstruct(x_test[:1])
    # BCE of the reconstruction itself, from NumPy: the scale the training loss is on.
    p = np.clip(recon, 1e-7, 1 - 1e-7)
    bce = -np.mean(x_test[:1] * np.log(p) + (1 - x_test[:1]) * np.log(1 - p))
    assert 0.01 < bce < 1.0


def test_transform_before_fit_is_an_error():
    with pytest.raises(ValueError, match="not fitted"):
        Autoencoder("linear", 2).transform(np.zeros((1, 784), np.float32))


def test_bad_parameters_fail_at_fit_before_any_training(pixels):
    x_train, _ = pixels
    for kwargs, message in [
        ({"variant": "deep", "latent_dim": 0}, "latent size 0"),
        ({"variant": "resnet", "latent_dim": 8}, "unknown autoencoder variant"),
        ({"variant": "deep", "latent_dim": 8, "optimizer": "lbfgs"}, "unknown optimizer"),
        ({"variant": "deep", "latent_dim": 8, "learning_rate": -1.0}, "learning_rate=-1.0"),
        ({"variant": "deep", "latent_dim": 8, "loss": "l1"}, "unknown loss"),
        ({"variant": "linear", "latent_dim": 8, "loss": "bce"}, "needs a sigmoid output"),
    ]:
        ae = Autoencoder(**kwargs)
        with pytest.raises(ParameterError, match=message):
            ae.fit(x_train[:10])
        assert not hasattr(ae, "model_")


def test_same_random_state_same_model_other_state_other_model(pixels):
    x_train, x_test = pixels

    def reconstruction(seed: int) -> np.ndarray:
        ae = Autoencoder("wide", epochs=1, batch_size=128, random_state=seed)
        return ae.fit(x_train[:512]).reconstruct(x_test[:50])

    first = reconstruction(0)
    np.testing.assert_array_equal(first, reconstruction(0))
    assert not np.allclose(first, reconstruction(1))


@pytest.mark.parametrize(
    ("optimizer", "schedule", "momentum"), [("adam", "cosine", 0.0), ("sgd", "constant", 0.9)]
)
def test_fits_of_one_shape_trace_once_and_give_a_fresh_fits_figures(
    pixels, optimizer, schedule, momentum
):
    """The second fit of a shape trains in the first one's traced workspace: bit for bit what it
    gives with nothing kept (weights and optimiser state start over), into models of its own."""
    x_train, x_test = pixels

    def fit(seed: int) -> Autoencoder:
        ae = Autoencoder(
            "original-2d",
            optimizer=optimizer,
            learning_rate=0.05,
            schedule=schedule,
            momentum=momentum,
            batch_size=128,
            epochs=2,
            random_state=seed,
        )
        return ae.fit(x_train[:512], validation_data=(x_test, x_test))

    clear_workspaces()
    first = fit(0)
    kept = first.reconstruct(x_test)
    second = fit(1)
    assert (first.traced_, second.traced_) == (1, 0)
    np.testing.assert_array_equal(first.reconstruct(x_test), kept)  # not the second's weights
    clear_workspaces()
    fresh = fit(1)
    assert fresh.traced_ == 1
    assert second.history_ == fresh.history_ and second.n_steps_ == fresh.n_steps_
    for got, want in zip(second.model_.get_weights(), fresh.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(second.transform(x_test), fresh.transform(x_test))


def test_outputs_stay_in_the_output_range(pixels):
    x_train, x_test = pixels
    mean, std, (z_train, z_test) = scalar_zscore(x_train, x_test)
    lo, hi = -mean / std, (1 - mean) / std
    ae = Autoencoder("original-2d", output_range=(lo, hi), epochs=1).fit(z_train[:512])
    out = ae.reconstruct(z_test)
    assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5
    # The original-2d latent is a ReLU: never negative.
    assert ae.transform(z_test).min() >= 0


def test_denoising_is_a_data_transform_drawn_afresh_each_epoch(pixels):
    x_train, _ = pixels
    seen = []

    def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = gaussian_noise(x, 0.1, rng, clip=(0.0, 1.0))
        seen.append(noisy)
        return noisy

    Autoencoder("linear", 4, epochs=3, batch_size=200, corrupt=corrupt).fit(x_train[:500])
    # The whole training input, once per epoch, never the same twice.
    assert [s.shape for s in seen] == [(500, 784)] * 3
    assert not np.allclose(seen[0], seen[1]) and not np.allclose(seen[1], seen[2])


def test_nan_loss_raises_diverged(pixels):
    x_train, _ = pixels
    x = x_train[:256].copy()
    x[3, 7] = np.nan
    with pytest.raises(Diverged, match="loss became nan"):
        Autoencoder("linear", 2, epochs=3).fit(x)


# --- PCA, the reference -----------------------------------------------------------------------


def test_pca_explained_variance_is_the_projected_variance(pixels):
    x_train, _ = pixels
    pca = fit_pca(x_train, 16)
    z = pca.transform(x_train)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), pca.explained_variance_, rtol=1e-4)
    # fit().transform is what fit_transform would give.
    np.testing.assert_allclose(fit_pca(x_train, 16).fit_transform(x_train), z, rtol=1e-4, atol=1e-4)
    assert pca.inverse_transform(z).shape == x_train.shape


def test_pca_components_are_nested(pixels):
    x_train, _ = pixels
    small, large = fit_pca(x_train, 2), fit_pca(x_train, 32)
    # Equal up to sign: the exact solver's k-component fit is the first k of a larger one.
    cos = np.abs(np.sum(small.components_ * large.components_[:2], axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)
    np.testing.assert_allclose(small.explained_variance_, large.explained_variance_[:2], rtol=1e-5)


def test_fvu_is_invariant_to_scalar_normalisation(pixels):
    x_train, x_test = pixels
    _, std, (z_train, z_test) = scalar_zscore(x_train, x_test)
    pix, zed = fit_pca(x_train, 8), fit_pca(z_train, 8)
    recon_pix = pix.inverse_transform(pix.transform(x_test))
    recon_z = zed.inverse_transform(zed.transform(z_test))
    assert fvu(recon_z, z_test) == pytest.approx(fvu(recon_pix, x_test), rel=1e-4)
    assert mse(recon_z, z_test) * std**2 == pytest.approx(mse(recon_pix, x_test), rel=1e-4)
    # Predicting the mean image explains nothing.
    mean_image = np.broadcast_to(x_test.mean(axis=0), x_test.shape)
    assert fvu(mean_image, x_test) == pytest.approx(1.0)


@pytest.mark.slow
def test_linear_autoencoder_reaches_pca_at_the_same_k(mnist):
    """PCA's subspace is the optimum of a linear AE: Adam on 6,000 images gets within 3%."""
    x_train, x_test = to_unit(mnist.x_train[:6000]), to_unit(mnist.x_test[:2000])
    for k in (2, 16):
        pca = fit_pca(x_train, k)
        pca_mse = mse(pca.inverse_transform(pca.transform(x_test)), x_test)
        ae = Autoencoder(
            "linear", k, learning_rate=1e-2, schedule="cosine", batch_size=128, epochs=20
        ).fit(x_train)
        ratio = mse(ae.reconstruct(x_test), x_test) / pca_mse
        # It cannot beat PCA by more than train/test noise, and should come within 3%.
        assert 0.98 < ratio < 1.03, (k, ratio)
