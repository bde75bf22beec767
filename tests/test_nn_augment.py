"""Batch distortions: SciPy equivalence of the pieces, identity at zero strength, seeding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mnist_suite.errors import ParameterError
from mnist_suite.nn import Distortion
from mnist_suite.nn.augment import (
    affine_matrices,
    bilinear_warp,
    elastic_field,
    gaussian_matrix,
    smoothing_factor,
)

SIMARD = Distortion(rotate=10, zoom=0.1, shear=0.2, translate=2, alpha=34, sigma=4)


@pytest.fixture
def images() -> np.ndarray:
    """(16, 28, 28) uint8 blobs: a bright disc at a random place in each image."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:28, :28]
    centres = rng.uniform(8, 20, (16, 2))
    d2 = (rows - centres[:, :1, None]) ** 2 + (cols - centres[:, 1:, None]) ** 2
    return np.clip(255 * np.exp(-d2 / 18), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [1.5, 4.0, 6.0])
def test_gaussian_matrix_is_scipys_zero_padded_filter(sigma):
    noise = np.random.default_rng(1).uniform(-1, 1, (3, 28, 28))
    g = gaussian_matrix(28, sigma)
    expected = np.stack([ndimage.gaussian_filter(n, sigma, mode="constant") for n in noise])
    np.testing.assert_allclose(g @ noise @ g.T, expected, atol=1e-12)


def test_low_rank_factor_keeps_the_smoothing_covariance():
    g = gaussian_matrix(28, 4.0)
    factor = smoothing_factor(28, 4.0)
    assert factor.shape[1] < 14  # few components: the point of the factorisation
    np.testing.assert_allclose(factor @ factor.T, g @ g.T, atol=1e-5 * np.abs(g @ g.T).max())


def test_elastic_field_matches_filtered_uniform_noise_in_spread():
    """Per-pixel std of the fields equals that of Simard's filtered U(-1, 1) noise (within 6%)."""
    rng = np.random.default_rng(2)
    fields = elastic_field(3000, 28, 34.0, 4.0, rng)
    assert fields.shape == (3000, 2, 28, 28) and fields.dtype == np.float32
    noise = rng.uniform(-1, 1, (3000, 28, 28))
    simard = 34.0 * ndimage.gaussian_filter(noise, (0, 4.0, 4.0), mode="constant")
    np.testing.assert_allclose(fields[:, 0].std(axis=0), simard.std(axis=0), rtol=0.06)
    np.testing.assert_allclose(fields[:, 1].std(axis=0), simard.std(axis=0), rtol=0.06)
    assert abs(fields.mean()) < 0.05 * simard.std()


def test_bilinear_warp_is_map_coordinates_order_1(images):
    rng = np.random.default_rng(3)
    x = images.astype(np.float64)
    rows, cols = rng.uniform(-3, 31, (2, *images.shape))
    expected = np.stack(
        [
            ndimage.map_coordinates(im, [r, c], order=1, mode="grid-constant")
            for im, r, c in zip(x, rows, cols, strict=True)
        ]
    )
    np.testing.assert_allclose(bilinear_warp(x, rows, cols), expected, atol=1e-3)


def test_bilinear_warp_on_the_pixel_grid_is_the_identity(images):
    rows, cols = np.broadcast_arrays(*np.mgrid[:28, :28].astype(np.float32)[:, None])
    np.testing.assert_array_equal(bilinear_warp(images, rows, cols), images.astype(np.float32))


def test_zero_strength_returns_the_batch_unchanged(images):
    rng = np.random.default_rng(4)
    assert Distortion()(images, rng) is images
    # Active but vanishingly small: every pixel lands back on its own value.
    tiny = Distortion(rotate=1e-6, zoom=1e-8, shear=1e-8, translate=1e-6, alpha=1e-6)
    np.testing.assert_array_equal(tiny(images, rng), images)


def test_affine_with_zero_ranges_is_the_identity_map():
    a, t = affine_matrices(5, np.random.default_rng(5), rotate=0, zoom=0, shear=0, translate=0)
    np.testing.assert_array_equal(a, np.broadcast_to(np.eye(2), (5, 2, 2)))
    np.testing.assert_array_equal(t, 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_shape_and_dtype_are_kept(images, dtype):
    x = images.astype(dtype)
    out = SIMARD(x, np.random.default_rng(6))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 255


def test_same_seed_same_distortion_other_seed_another(images):
    first = SIMARD(images, np.random.default_rng(7))
    np.testing.assert_array_equal(first, SIMARD(images, np.random.default_rng(7)))
    assert np.any(first != SIMARD(images, np.random.default_rng(8)))
    assert np.any(first != images)


def test_distortions_move_ink_but_keep_most_of_it(images):
    """A digit stays a digit: total ink per image changes by well under a third on average."""
    out = SIMARD(images, np.random.default_rng(9)).astype(np.float64)
    ratio = out.sum(axis=(1, 2)) / images.astype(np.float64).sum(axis=(1, 2))
    assert 0.8 < ratio.mean() < 1.25
    assert np.abs(out - images).mean() > 1.0  # and something did move


def test_each_image_gets_its_own_draw(images):
    same = np.repeat(images[:1], 8, axis=0)
    out = SIMARD(same, np.random.default_rng(10))
    assert len({o.tobytes() for o in out}) == 8


@pytest.mark.parametrize(
    "kwargs", [{"rotate": -1}, {"zoom": 1.0}, {"alpha": -2}, {"sigma": 0}, {"translate": -0.5}]
)
def test_bad_ranges_are_config_errors(kwargs):
    with pytest.raises(ParameterError):
        Distortion(**kwargs)


def test_non_batch_input_is_rejected():
    with pytest.raises(ValueError, match=r"expected \(n, H, W\)"):
        SIMARD(np.zeros((28, 28), np.uint8), np.random.default_rng(0))
