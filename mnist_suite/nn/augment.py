"""Random affine and elastic distortions of whole image batches, vectorised (no loop over images).

Simard, Steinkraus & Platt (2003) trained an 800-unit MLP to 0.70% MNIST test error on images
distorted afresh every epoch: each pixel moves by a smoothed random displacement field
``alpha * gaussian_filter(U(-1, 1), sigma)`` on top of a small random affine map. Here both are
computed for a batch at once:

- the Gaussian smoothing is separable and linear: ``scipy.ndimage.gaussian_filter(noise, sigma,
  mode="constant")`` is ``G @ noise @ G.T`` with a banded (H, H) matrix ``G``, and since a
  Gaussian-smoothed field has only a few significant components, a field is drawn directly in
  that low-rank form (two GEMMs for the whole batch, r² random numbers per field);
- the resampling is bilinear, from four gathers into a zero-padded copy of the batch.

Every random number comes from the ``numpy.random.Generator`` passed in, so a seed fixes every
distortion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_suite.errors import ParameterError


def gaussian_matrix(size: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The (size, size) matrix ``G`` with ``G @ v`` = 1-d Gaussian filtering of ``v``, zero-padded.

    Same kernel as ``scipy.ndimage.gaussian_filter1d(v, sigma, mode="constant",
    truncate=truncate)``: normalised over its full support, taps beyond the edge dropped.
    """
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None]  # (size, size): j - i
    inside = np.abs(offsets) <= radius
    return np.where(inside, kernel[np.clip(offsets + radius, 0, 2 * radius)], 0.0)


def smoothing_factor(size: int, sigma: float, tol: float = 1e-6) -> np.ndarray:
    """A (size, r) matrix ``L`` with ``L @ L.T`` = ``G @ G.T`` up to ``tol`` of its energy.

    ``G`` is :func:`gaussian_matrix`. Smoothed white noise ``G N G.T`` (N iid normal) has the
    same distribution as ``L M L.T`` with M an (r, r) iid normal matrix (both are Gaussian with
    covariance ``GG.T ⊗ GG.T``), and a wide Gaussian has few significant singular values
    (sigma = 4 px on 28 px: r = 9), so a field costs r² random numbers instead of size².
    """
    u, s, _ = np.linalg.svd(gaussian_matrix(size, sigma))
    energy = np.cumsum(s**2) / np.sum(s**2)
    r = int(np.searchsorted(energy, 1 - tol)) + 1
    return u[:, :r] * s[:r]


def elastic_field(
    n: int, size: int, alpha: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Simard's displacement fields, ``alpha * gaussian_filter(noise, sigma)`` per image and axis.

    The noise is normal with Simard's U(-1, 1) variance (1/3), smoothed through the low-rank
    factor of :func:`smoothing_factor` (same distribution as filtering a full noise image).

    Returns
    -------
    ndarray of shape (n, 2, size, size), float32
        Displacements in pixels along rows (``[:, 0]``) and columns (``[:, 1]``).
    """
    factor = smoothing_factor(size, sigma).astype(np.float32)  # (size, r)
    r = factor.shape[1]
    scale = np.float32(alpha / np.sqrt(3.0))
    m = rng.standard_normal((n * 2 * r, r), dtype=np.float32)  # rows of the (r, r) matrices M
    y = (m @ (scale * factor.T)).reshape(n * 2, r, size)  # M L.T for every field
    # (M L.T).T L.T = L M.T L.T: the transpose of a field, which has the same distribution.
    fields = y.transpose(0, 2, 1).reshape(-1, r) @ factor.T  # one GEMM for the whole batch
    return fields.reshape(n, 2, size, size)


def affine_matrices(
    n: int,
    rng: np.random.Generator,
    *,
    rotate: float,
    zoom: float,
    shear: float,
    translate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Random maps from output to input coordinates, about the image centre.

    Parameters
    ----------
    rotate : float
        Maximum rotation in degrees (uniform in ±rotate).
    zoom : float
        Maximum relative scaling per axis (each axis in 1 ± zoom, independently).
    shear : float
        Maximum shear factor (uniform in ±shear).
    translate : float
        Maximum translation in pixels per axis (uniform in ±translate).

    Returns
    -------
    A : ndarray of shape (n, 2, 2), float32
        Linear parts, acting on (row, col) offsets from the centre.
    t : ndarray of shape (n, 2), float32
        Translations in pixels.
    """
    angle = np.deg2rad(rng.uniform(-rotate, rotate, n))
    sy, sx = rng.uniform(1 - zoom, 1 + zoom, (2, n))
    k = rng.uniform(-shear, shear, n)
    t = rng.uniform(-translate, translate, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)  # (n, 2, 2)
    shr = np.zeros((n, 2, 2))
    shr[:, 0, 0] = shr[:, 1, 1] = 1
    shr[:, 1, 0] = k  # column offset grows with the row: a horizontal slant, like handwriting
    # Sampling coordinates: a zoom of s shows the image s× larger, so divide by it.
    zoom = np.zeros((n, 2, 2))
    zoom[:, 0, 0], zoom[:, 1, 1] = 1 / sy, 1 / sx
    return (rot @ shr @ zoom).astype(np.float32), t.astype(np.float32)


def bilinear_warp(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample each image at its own (row, col) coordinates, bilinearly; zero outside the image.

    Parameters
    ----------
    images : ndarray of shape (n, H, W)
        Any real dtype.
    rows, cols : ndarray of shape (n, H, W), float
        Where each output pixel is read from, in input pixel units.

    Returns
    -------
    ndarray of shape (n, H, W), float32
        Equal to ``scipy.ndimage.map_coordinates(image, [rows, cols], order=1, mode="constant")``
        per image (the interpolation is exact up to float32 rounding).
    """
    n, h, w = images.shape
    # One pixel of zero padding on every side: each of the four neighbours of a coordinate
    # inside (-1, H) x (-1, W) is then a valid index, and reading outside gives 0.
    padded = np.zeros((n, h + 2, w + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    flat = padded.reshape(-1)
    r = np.clip(rows, -1, h, dtype=np.float32) + np.float32(1)
    c = np.clip(cols, -1, w, dtype=np.float32) + np.float32(1)
    r0 = np.minimum(np.floor(r), h).astype(np.int32)  # top row of the 2x2 cell, in [0, H]
    c0 = np.minimum(np.floor(c), w).astype(np.int32)
    fr, fc = r - r0, c - c0  # (n, H, W) weights of the lower/right neighbours
    base = np.arange(n, dtype=np.int32)[:, None, None] * ((h + 2) * (w + 2))
    top = base + r0 * (w + 2) + c0  # flat index of the top-left neighbour
    upper = flat[top] + fc * (flat[top + 1] - flat[top])
    lower = flat[top + (w + 2)] + fc * (flat[top + (w + 3)] - flat[top + (w + 2)])
    return upper + fr * (lower - upper)


@dataclass(frozen=True)
class Distortion:
    """A random affine map plus Simard's elastic field, applied to batches of images.

    Parameters
    ----------
    rotate, zoom, shear, translate : float
        Affine ranges (see :func:`affine_matrices`); all 0 is no affine change.
    alpha, sigma : float
        Elastic displacement scale in pixels and smoothing width; ``alpha = 0`` turns it off.
    """

    rotate: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    translate: float = 0.0
    alpha: float = 0.0
    sigma: float = 4.0

    def __post_init__(self):
        if min(self.rotate, self.zoom, self.shear, self.translate, self.alpha) < 0:
            raise ParameterError(f"{self}: ranges must be >= 0")
        if not self.zoom < 1:
            raise ParameterError(f"{self}: zoom must be < 1 (a factor of 1 ± zoom)")
        if not self.sigma > 0:
            raise ParameterError(f"{self}: sigma must be > 0")

    @property
    def active(self) -> bool:
        return any((self.rotate, self.zoom, self.shear, self.translate, self.alpha))

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Distort every image of the batch with its own random draw.

        Parameters
        ----------
        images : ndarray of shape (n, H, W), uint8 or float
        rng : numpy.random.Generator
            Source of every random number (affine draws first, then the elastic noise).

        Returns
        -------
        ndarray of shape (n, H, W), same dtype as ``images`` (uint8 rounded and clipped to
        0..255, so an epoch's distorted copy costs no more memory than the originals).
        """
        if images.ndim != 3:
            raise ValueError(f"Distortion: images of shape {images.shape}, expected (n, H, W)")
        if not self.active:
            return images
        n, h, w = images.shape
        a, t = affine_matrices(
            n, rng, rotate=self.rotate, zoom=self.zoom, shear=self.shear, translate=self.translate
        )
        centre = np.array([(h - 1) / 2, (w - 1) / 2], np.float32)
        grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))  # (2, H, W)
        offsets = grid.reshape(2, -1).astype(np.float32) - centre[:, None]  # (2, H*W)
        coords = a @ offsets + (centre + t)[:, :, None]  # (n, 2, H*W)
        coords = coords.reshape(n, 2, h, w)
        if self.alpha:
            if h != w:
                raise ValueError(f"Distortion: elastic fields need square images, got {h}x{w}")
            coords += elastic_field(n, h, self.alpha, self.sigma, rng)
        out = bilinear_warp(images, coords[:, 0], coords[:, 1])
        if images.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(images.dtype, copy=False)
