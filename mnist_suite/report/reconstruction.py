"""PCA and autoencoders: reconstruction error tables and the image figures."""

from __future__ import annotations

import numpy as np

from mnist_suite.originals import RULE, SOURCE, judge, original, original_figure
from mnist_suite.report import figures
from mnist_suite.report.collect import RunRecord, number
from mnist_suite.report.common import Context, missing_note, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.replicates import Group, pick_cell_groups, pick_group
from mnist_suite.stats import summarize

UNITS = {"zscore": "z-score units", "unit": "pixel units [0, 1]"}


def pca_denominator(g: Group) -> str:
    """The PCA figure an autoencoder's ÷ PCA divides by: PCA fed the same input, so a
    denoiser's noisy test images (``pca_denoised_mse_pixels``), else the clean ones."""
    denoiser = g.summary("pca_denoised_mse_pixels").mean is not None
    return "pca_denoised_mse_pixels" if denoiser else "pca_test_mse_pixels"


def _ae_jobs() -> list[str]:
    """Reconstruction jobs made of cells (one model each): the autoencoders."""
    return [n for n, j in registry().items() if j.family == "reconstruction" and j.cells]


def _baseline_job() -> str | None:
    """The single-run reconstruction job that scores every k at once: PCA."""
    names = [n for n, j in registry().items() if j.family == "reconstruction" and not j.cells]
    return names[0] if names else None


def _pca_ks(run: RunRecord) -> list[int]:
    ks = run.metrics.get("ks")
    return sorted(int(k) for k in ks if number(k) is not None) if isinstance(ks, list) else []


def _first_done(g: Group | None) -> RunRecord | None:
    """The run whose images stand for the group: its lowest finished seed."""
    return g.done[0] if g is not None and g.done else None


def reconstruction(ctx: Context) -> Section:
    """PCA variance, reconstruction MSE vs PCA at the same k, denoising, image figures."""
    s = Section(
        "reconstruction",
        "Reconstruction: PCA and autoencoders",
        "Test-set reconstruction error in each run's own units (z-scored pixels for the original's "
        "models), in pixel units ([0, 1]) and as the fraction of variance unexplained (FVU = "
        "MSE ÷ total test variance), next to PCA at the same latent size k fed the same input "
        "(a denoiser's noisy test images). Means over seeds "
        "with the 95% interval of the mean; `ae` trains on the training set minus the dev split "
        "and watches dev, the faithful `ae-original` and `pca` keep the original's data.",
    )
    base = _baseline_job()
    pca = pick_group(ctx.runs, base) if base else None
    ae_jobs = _ae_jobs()
    cells = {job: pick_cell_groups(ctx.runs, job) for job in ae_jobs}
    absent = [j for j, g in ((base, pca), *((j, cells[j]) for j in ae_jobs)) if j and not g]
    if absent:
        s.notes.append(missing_note(absent, "their rows and figures are not shown"))
    if pca is not None:
        _pca_variance(s, pca)
    _mse_table(s, pca, cells)
    _denoising_table(s, cells)
    _reconstruction_figures(ctx, s, pca, cells)
    return s


def _pca_variance(s: Section, pca: Group) -> None:
    rows = []
    run = _first_done(pca) or pca.runs[0]
    for i in (1, 2):
        values = []
        for r in pca.done:
            ratios = r.metrics.get("explained_variance_ratio")
            values.append(
                number(ratios[i - 1]) if isinstance(ratios, list) and len(ratios) >= i else None
            )
        ours = summarize(values)
        seed, _ = original_figure(pca.job, f"explained_variance_ratio_{i}")
        rows.append(
            [
                f"PC {i}",
                run.metrics.get("normalisation", ""),
                pca.profile,
                pca.count_text(),
                ours.mean,
                seed,
                None if ours.mean is None or seed is None else ours.mean - seed,
            ]
        )
    s.tables.append(
        Table(
            "PCA explained variance ratio (the original's PCA(2))",
            [
                ("component", "text"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("seeds done", "text"),
                ("ours", "f4"),
                ("original's", "f4"),
                ("Δ", "f4"),
            ],
            rows,
            note="PCA is deterministic (exact solver, all 60,000 training images, as originally): "
            "every seed gives the same figure.",
        )
    )


def _mse_table(s: Section, pca: Group | None, cells: dict) -> None:
    rows = []
    if pca is not None and (run := _first_done(pca) or pca.runs[0]):
        for k in _pca_ks(run):
            pixels = pca.summary(f"test_mse_pixels_k{k}")
            rows.append(
                [
                    f"pca (k={k})",
                    "pca",
                    k,
                    run.metrics.get("normalisation", ""),
                    pca.profile,
                    pca.count_text(),
                    pca.summary(f"test_mse_k{k}").mean,
                    pixels.mean,
                    pixels.half_width,
                    pca.summary(f"fvu_k{k}").mean,
                    pixels.mean,
                    1.0 if pixels.mean else None,
                    None,
                    None,
                    "",
                ]
            )
    for job, groups in cells.items():
        for cell, g in groups.items():
            run = _first_done(g) or g.runs[0]
            own = g.summary("test_mse")
            found = original(job, "test_mse", cell)
            judged = judge(found, own) if found else None
            pixels = g.summary("test_mse_pixels")
            rows.append(
                [
                    f"{job}/{cell}",
                    run.metrics.get("variant", ""),
                    run.metrics.get("latent_dim"),
                    run.metrics.get("normalisation") or g.config.get("normalisation", "zscore"),
                    g.profile,
                    g.count_text(),
                    own.mean,
                    pixels.mean,
                    pixels.half_width,
                    g.summary("fvu").mean,
                    g.summary(pca_denominator(g)).mean,
                    g.summary("mse_vs_pca").mean,
                    found.value if found else None,
                    judged.p if judged else None,
                    judged.text if judged else "",
                ]
            )
    if not rows:
        return
    s.tables.append(
        Table(
            "Test reconstruction MSE over seeds",
            [
                ("model", "text"),
                ("variant", "text"),
                ("latent k", "int"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("seeds done", "text"),
                ("MSE (own units, mean)", "f4"),
                ("MSE (pixels, mean)", "f4"),
                ("95% CI (pixels)", "±f4"),
                ("FVU (mean)", "f4"),
                ("PCA MSE at k, same input (pixels)", "f4"),
                ("÷ PCA (mean)", "f2"),
                ("original's MSE", "f4"),
                ("p", "p"),
                ("original vs ours (one-run interval)", "text"),
            ],
            rows,
            note="Own units: z-scored pixels (the original's scalar mean/std) or [0, 1] pixels. "
            f"The original's figures are its final validation MSE in z-score units ({SOURCE}). "
            f"{RULE}",
        )
    )


def _denoising_table(s: Section, cells: dict) -> None:
    rows = []
    for job, groups in cells.items():
        for cell, g in groups.items():
            run = _first_done(g) or g.runs[0]
            if run.metrics.get("variant") != "denoising" and not cell.startswith("denoising"):
                continue
            denoised = g.summary("test_mse_pixels")
            rows.append(
                [
                    f"{job}/{cell}",
                    g.count_text(),
                    g.summary("noisy_mse_pixels").mean,
                    denoised.mean,
                    denoised.half_width,
                    g.summary("denoised_vs_noisy").mean,
                    g.summary("pca_denoised_mse_pixels").mean,
                    g.summary("clean_input_mse_pixels").mean,
                ]
            )
    if rows:
        s.tables.append(
            Table(
                "Denoising over seeds: MSE against the clean test images (pixels, means)",
                [
                    ("model", "text"),
                    ("seeds done", "text"),
                    ("noisy input", "f4"),
                    ("denoised", "f4"),
                    ("denoised 95% CI", "±f4"),
                    ("denoised ÷ noisy", "f2"),
                    ("PCA-denoised", "f4"),
                    ("clean input", "f4"),
                ],
                rows,
                note="The denoiser is fed the noisy test images (the original fed clean ones).",
            )
        )


def _done_cells(cells: dict) -> list[tuple[str, RunRecord, Group]]:
    """(label, the run shown, its group) per finished cell of every autoencoder job."""
    return [
        (f"{job}/{c}", run, g)
        for job, groups in cells.items()
        for c, g in groups.items()
        if (run := _first_done(g)) is not None
    ]


def _reconstruction_figures(ctx: Context, s: Section, pca, cells) -> None:
    w = ctx.writer
    pca_done = _first_done(pca)
    done = [(label, run) for label, run, _ in _done_cells(cells)]
    groups = {label: g for label, _, g in _done_cells(cells)}

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
                caption="Red positive, blue negative. PCA rows are the leading components; "
                "encoder rows are the lowest finished original's.",
                alt=f"{len(rows)} rows of signed 28×28 weight images: the leading PCA "
                "components and the weights of each single-layer encoder, positive and negative "
                "weights in opposite colours.",
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
                "codes are their bottleneck activations (lowest finished seed). Each digit's "
                "number marks its median point.",
                alt=f"2-D codes of the test images for {len(panels)} models, one colour and a "
                "numbered label per digit at its median point, showing which digits separate "
                "with a two-number code and which overlap.",
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
                caption="Denoisers reconstruct from their noisy inputs. One seed per model "
                "(the lowest finished).",
                alt=f"Rows of the same ten test digits: the original, then {len(grid) - 1} "
                "reconstructions, one row per model and latent size.",
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
                    alt=f"Ten noisy test digits, {label}'s reconstructions and the clean "
                    f"digits: denoised MSE is {run.metric('denoised_vs_noisy') or 0:.2f}× the "
                    "noisy input's.",
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
        k, y = run.metric("latent_dim"), groups[label].summary("test_mse_pixels").mean
        if k is not None and y is not None:
            series[label] = (np.asarray([k]), np.asarray([y]))
    below = [lb for lb, (k, y) in series.items() if lb != "PCA" and _below_pca(series, k, y)]
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
                "linear code of its size. Autoencoder points are means over seeds. Denoisers "
                "are scored from noisy inputs.",
                alt="Test MSE against latent size on log axes, PCA as a falling line and one "
                "marker per autoencoder; "
                + (f"below PCA: {', '.join(below)}." if below else "none beats PCA."),
            )
        )

    for job, groups_of_job in cells.items():
        curves = {}
        for cell, g in groups_of_job.items():
            histories = [r.npz("loss_history") or {} for r in g.done]
            histories = [h for h in histories if "val_loss" in h and "epoch" in h]
            if not histories:
                continue
            n = min(len(h["val_loss"]) for h in histories)
            stack = np.stack([np.asarray(h["val_loss"][:n], float) for h in histories])
            curves[f"{cell} ({len(histories)} seeds)"] = (
                histories[0]["epoch"][:n],
                stack.mean(axis=0),
                np.stack([stack.min(axis=0), stack.max(axis=0)]),
            )
        if curves:
            on = {r.metrics.get("validated_on") for g in groups_of_job.values() for r in g.done}
            on = "test" if "test" in on else "dev"
            s.figures.append(
                figures.curves(
                    w,
                    f"loss-{job}",
                    f"Autoencoder {on} loss per epoch: {job}",
                    "epoch",
                    [(f"{on} MSE (own units, log scale)", curves)],
                    logy=[True],
                    caption=f"Validation on the {on} set"
                    + (" (the original's choice, kept by the faithful job)" if on == "test" else "")
                    + "; lines are means over seeds, bands the min–max range.",
                    alt=f"Per-epoch {on} loss of each {job} model on a log scale, falling "
                    "over training; the shaded bands show the spread across seeds.",
                )
            )


def _below_pca(series: dict, k: np.ndarray, y: np.ndarray) -> bool:
    """Is the point (k, y) below PCA's curve at the same k?"""
    if "PCA" not in series:
        return False
    pk, py = series["PCA"][:2]
    at = np.interp(np.log(k[0]), np.log(pk), np.log(py))
    return bool(np.log(y[0]) < at)
