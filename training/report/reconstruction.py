"""PCA and autoencoders: reconstruction error tables and the image figures."""

from __future__ import annotations

import numpy as np

from training.report import figures
from training.report.collect import RunRecord, number, pick, pick_cells
from training.report.common import (
    Context,
    done_metric,
    missing_note,
    state_text,
)
from training.report.document import Section, Table
from training.report.seed import SOURCE, seed_figure

AE_JOBS = ("ae-seed", "ae")
UNITS = {"zscore": "z-score units", "unit": "pixel units [0, 1]"}


def _pca_ks(run: RunRecord) -> list[int]:
    ks = run.metrics.get("ks")
    return sorted(int(k) for k in ks if number(k) is not None) if isinstance(ks, list) else []


def reconstruction(ctx: Context) -> Section:
    """PCA variance, reconstruction MSE vs PCA at the same k, denoising, image figures."""
    s = Section(
        "reconstruction",
        "Reconstruction: PCA and autoencoders",
        "Test-set reconstruction error in each run's own units (z-scored pixels for the seed's "
        "models), in pixel units ([0, 1]) and as the fraction of variance unexplained (FVU = "
        "MSE ÷ total test variance), next to PCA at the same latent size k.",
    )
    pca = pick(ctx.runs, "pca")
    cells = {job: pick_cells(ctx.runs, job) for job in AE_JOBS}
    absent = [j for j, run in (("pca", pca), *((j, cells[j]) for j in AE_JOBS)) if not run]
    if absent:
        s.notes.append(missing_note(absent, "their rows and figures are not shown"))
    if pca is not None:
        _pca_variance(s, pca)
    _mse_table(s, pca, cells)
    _denoising_table(s, cells)
    _reconstruction_figures(ctx, s, pca, cells)
    return s


def _pca_variance(s: Section, pca: RunRecord) -> None:
    ratios = pca.metrics.get("explained_variance_ratio")
    ratios = ratios if isinstance(ratios, list) and pca.state == "done" else []
    rows = []
    for i in (1, 2):
        ours = number(ratios[i - 1]) if len(ratios) >= i else None
        seed, _ = seed_figure("pca", f"explained_variance_ratio_{i}")
        rows.append(
            [
                f"PC {i}",
                pca.metrics.get("normalisation", ""),
                pca.profile,
                state_text(pca),
                ours,
                seed,
                None if ours is None or seed is None else ours - seed,
            ]
        )
    s.tables.append(
        Table(
            "PCA explained variance ratio (the seed's PCA(2))",
            [
                ("component", "text"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("state", "text"),
                ("ours", "f4"),
                ("seed's", "f4"),
                ("Δ", "f4"),
            ],
            rows,
        )
    )


def _mse_table(s: Section, pca: RunRecord | None, cells: dict) -> None:
    rows = []
    if pca is not None:
        for k in _pca_ks(pca):
            pixels = done_metric(pca, f"test_mse_pixels_k{k}")
            rows.append(
                [
                    f"pca (k={k})",
                    "pca",
                    k,
                    pca.metrics.get("normalisation", ""),
                    pca.profile,
                    state_text(pca),
                    done_metric(pca, f"test_mse_k{k}"),
                    pixels,
                    done_metric(pca, f"fvu_k{k}"),
                    pixels,
                    1.0 if pixels else None,
                    None,
                    None,
                ]
            )
    for job in AE_JOBS:
        for cell, run in cells[job].items():
            own = done_metric(run, "test_mse")
            seed, _ = seed_figure(job, "test_mse", cell)
            rows.append(
                [
                    f"{job}/{cell}",
                    run.metrics.get("variant", ""),
                    run.metrics.get("latent_dim"),
                    run.metrics.get("normalisation") or run.config.get("normalisation", "zscore"),
                    run.profile,
                    state_text(run),
                    own,
                    done_metric(run, "test_mse_pixels"),
                    done_metric(run, "fvu"),
                    done_metric(run, "pca_test_mse_pixels"),
                    done_metric(run, "mse_vs_pca"),
                    seed,
                    None if own is None or seed is None else own - seed,
                ]
            )
    if not rows:
        return
    s.tables.append(
        Table(
            "Test reconstruction MSE",
            [
                ("model", "text"),
                ("variant", "text"),
                ("latent k", "int"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("state", "text"),
                ("MSE (own units)", "f4"),
                ("MSE (pixels)", "f4"),
                ("FVU", "f4"),
                ("PCA MSE at k (pixels)", "f4"),
                ("÷ PCA", "f2"),
                ("seed's MSE", "f4"),
                ("Δ vs seed", "f4"),
            ],
            rows,
            note="Own units: z-scored pixels (the seed's scalar mean/std) or [0, 1] pixels. "
            f"The seed's figures are its final validation MSE in z-score units ({SOURCE}).",
        )
    )


def _denoising_table(s: Section, cells: dict) -> None:
    rows = []
    for job in AE_JOBS:
        for cell, run in cells[job].items():
            if run.metrics.get("variant") != "denoising" and not cell.startswith("denoising"):
                continue
            rows.append(
                [
                    f"{job}/{cell}",
                    state_text(run),
                    done_metric(run, "noisy_mse_pixels"),
                    done_metric(run, "test_mse_pixels"),
                    done_metric(run, "denoised_vs_noisy"),
                    done_metric(run, "pca_denoised_mse_pixels"),
                    done_metric(run, "clean_input_mse_pixels"),
                ]
            )
    if rows:
        s.tables.append(
            Table(
                "Denoising: MSE against the clean test images (pixels)",
                [
                    ("model", "text"),
                    ("state", "text"),
                    ("noisy input", "f4"),
                    ("denoised", "f4"),
                    ("denoised ÷ noisy", "f2"),
                    ("PCA-denoised", "f4"),
                    ("clean input", "f4"),
                ],
                rows,
                note="The denoiser is fed the noisy test images (the seed fed clean ones).",
            )
        )


def _done_cells(cells: dict) -> list[tuple[str, RunRecord]]:
    return [
        (f"{job}/{c}", r) for job in AE_JOBS for c, r in cells[job].items() if r.state == "done"
    ]


def _reconstruction_figures(ctx: Context, s: Section, pca, cells) -> None:
    w = ctx.writer
    pca_done = pca if pca is not None and pca.state == "done" else None
    done = _done_cells(cells)

    # Components of PCA and single-layer encoders' weights, as images.
    rows = []
    if pca_done and (comp := pca_done.array("pca", "components")) is not None:
        rows.append(("PCA", comp[:10]))
    for label, run in done:
        kernel = run.array("encoder_weights", "kernel")  # (784, k)
        if kernel is not None and kernel.shape[1] <= 10:
            rows.append((label, kernel.T))
    if rows:
        s.figures.append(
            figures.image_grid(
                w,
                "pca-components",
                "PCA components and single-layer encoder weights",
                rows,
                col_label="component / latent unit",
                value_label="signed weight, each image scaled to its largest |w|",
                diverging=True,
                caption="Red positive, blue negative. PCA rows are the leading components.",
            )
        )

    # 2-D latents of the test set coloured by digit.
    panels = []
    if pca_done and (z := pca_done.array("latents", "z")) is not None:
        unit = UNITS.get(str(pca_done.metrics.get("normalisation")), "input units")
        panels.append(("PCA (k=2)", z, pca_done.array("latents", "labels"), unit))
    for label, run in done:
        z = run.array("latents", "z")
        if z is not None and z.ndim == 2 and z.shape[1] == 2:
            panels.append((label, z, run.array("latents", "labels"), "activation"))
    if panels:
        s.figures.append(
            figures.scatter2d(
                w,
                "latents-2d",
                "2-D latents of the test set, coloured by digit",
                panels,
                caption="PCA projects onto its first two components; the autoencoders' 2-unit "
                "codes are their bottleneck activations.",
            )
        )

    # Reconstructions of the same test images by each model.
    ref = None
    grid = []
    if pca_done and (recon := pca_done.npz("reconstructions")):
        ref = recon.get("indices")
        grid.append(("original", recon["original"]))
        grid += [(f"PCA k={k}", recon[f"k{k}"]) for k in _pca_ks(pca_done) if f"k{k}" in recon]
    for label, run in done:
        recon = run.npz("reconstructions") or {}
        if "reconstruction" not in recon:
            continue
        if ref is None:
            ref = recon.get("indices")
            grid.insert(0, ("original", recon["original"]))
        if np.array_equal(recon.get("indices"), ref):
            grid.append((label, recon["reconstruction"]))
    if len(grid) > 1:
        s.figures.append(
            figures.image_grid(
                w,
                "reconstructions",
                "Reconstructions of the same test images per model",
                grid,
                col_label="test image (the first of each digit)",
                caption="Denoisers reconstruct from their noisy inputs.",
            )
        )

    for label, run in done:
        recon = run.npz("reconstructions") or {}
        if "noisy" in recon and "reconstruction" in recon:
            slug = label.replace("/", "-")
            s.figures.append(
                figures.image_grid(
                    w,
                    f"denoising-{slug}",
                    f"Noisy, denoised and clean test images: {label}",
                    [
                        ("noisy input", recon["noisy"]),
                        ("denoised", recon["reconstruction"]),
                        ("clean", recon["original"]),
                    ],
                    col_label="test image (the first of each digit)",
                    value_label="pixel intensity, shown clipped to [0, 1]",
                )
            )

    # Test MSE against latent size: the PCA curve and each autoencoder's point.
    series = {}
    if pca_done and (ks := _pca_ks(pca_done)):
        ys = [pca_done.metric(f"test_mse_pixels_k{k}") for k in ks]
        pts = [(k, y) for k, y in zip(ks, ys, strict=True) if y is not None]
        if pts:
            series["PCA"] = tuple(np.asarray(v, float) for v in zip(*pts, strict=True))
    for label, run in done:
        k, y = run.metric("latent_dim"), run.metric("test_mse_pixels")
        if k is not None and y is not None:
            series[label] = (np.asarray([k]), np.asarray([y]))
    if series:
        s.figures.append(
            figures.curves(
                w,
                "mse-vs-k",
                "Test reconstruction MSE against latent size",
                "latent size k (log scale)",
                [("test MSE (pixel units², log scale)", series)],
                logx=True,
                logy=[True],
                caption="Lower is better; an autoencoder below the PCA curve beats the best "
                "linear code of its size. Denoisers are scored from noisy inputs.",
            )
        )

    for job in AE_JOBS:
        curves = {}
        for cell, run in cells[job].items():
            hist = run.npz("loss_history") or {}
            if "val_loss" in hist and "epoch" in hist:
                curves[f"{cell} ({run.state})" if run.state != "done" else cell] = (
                    hist["epoch"],
                    hist["val_loss"],
                )
        if curves:
            s.figures.append(
                figures.curves(
                    w,
                    f"loss-{job}",
                    f"Autoencoder test loss per epoch: {job}",
                    "epoch",
                    [("test MSE (own units, log scale)", curves)],
                    logy=[True],
                )
            )
