"""Figures as PNG files: Matplotlib's object API with the Agg canvas (no pyplot, no display).

Each function takes plain arrays, draws one figure with a title, axis labels and units, and
returns a :class:`FigureRef` to the file it wrote.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from mnist_suite.report.document import FigureRef

DPI = 100
DIGIT_CMAP = "tab10"
# Series differ by marker and line style as well as colour: nothing is told by colour alone.
MARKERS = "osD^vP*Xh<>"
LINESTYLES = ("-", "--", ":", "-.")
MAX_POINTS = 2000  # per latent scatter panel


def legend_outside(ax, **kwargs) -> None:
    """The axes' legend to the right of it, never over the data (constrained layout makes
    room for it)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs)


class FigureWriter:
    """Saves figures under ``folder`` (the report's ``figures/``) with unique names."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(
        self, fig: Figure, name: str, title: str, caption: str = "", alt: str = ""
    ) -> FigureRef:
        FigureCanvasAgg(fig)
        path = self.folder / f"{name}.png"
        buffer = io.BytesIO()
        # A tight box around everything drawn: a long tick label (ae-original/original-2d) or a
        # legend outside the axes is never cut at the figure's edge.
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
        # A 256-colour palette (no dithering) keeps charts and digit images intact at a
        # fraction of the size: the reference report is committed. No metadata: the same
        # runs give byte-identical files.
        image = Image.open(buffer).convert("RGB")
        image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, optimize=True
        )
        return FigureRef(f"{self.folder.name}/{path.name}", title, caption, alt)


def curves(
    writer: FigureWriter,
    name: str,
    title: str,
    xlabel: str,
    panels: Sequence[tuple[str, dict[str, tuple]]],
    *,
    logx: bool = False,
    logy: Sequence[bool] = (),
    ylim: Sequence[tuple[float, float] | None] = (),
    caption: str = "",
    alt: str = "",
) -> FigureRef:
    """Line plots side by side; each panel is (y label with units, {series: (x, y[, band])}).

    ``band`` (2, n) is drawn as a shaded range around the line (min-max over seeds). Series
    differ by marker and line style too, not by colour alone.
    """
    # Each panel keeps room on its right for its legend.
    fig = Figure(figsize=(max(7.0, 6.4 * len(panels)), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for i, (ax, (ylabel, series)) in enumerate(zip(axes, panels, strict=True)):
        for k, (label, (x, y, *band)) in enumerate(series.items()):
            (line,) = ax.plot(
                x,
                y,
                label=label,
                lw=1.2,
                ls=LINESTYLES[k % len(LINESTYLES)],
                marker=MARKERS[k % len(MARKERS)],
                markevery=max(1, len(x) // 12),
                ms=3.5,
            )
            if band and band[0] is not None:
                lo, hi = band[0]
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps, k: whole numbers
        if logx:
            ax.set_xscale("log")
        if i < len(logy) and logy[i]:
            ax.set_yscale("log")
        if i < len(ylim) and ylim[i] is not None:
            ax.set_ylim(*ylim[i])
        ax.grid(alpha=0.3)
        if series:
            legend_outside(ax)
    fig.suptitle(title)
    return writer.save(fig, name, title, caption, alt)


def heatmap(
    writer: FigureWriter,
    name: str,
    title: str,
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    xlabel: str,
    ylabel: str,
    cbar_label: str,
    cell_format: str = "{:.3f}",
    mark: tuple[int, int] | None = None,
    caption: str = "",
    log_color: bool = False,
    texts: Sequence[Sequence[str]] | None = None,
    alt: str = "",
) -> FigureRef:
    """(rows, cols) values as coloured cells with their numbers; NaN cells read 'n/a'.

    ``mark`` outlines one cell (the best point) and prefixes its text with a star, so the mark
    does not rest on colour; ``texts`` (rows, cols) replaces the numbers.
    """
    matrix = np.asarray(matrix, dtype=float)
    rows, cols = matrix.shape
    fig = Figure(figsize=(max(6.0, 0.55 * cols + 2.5), max(3.5, 0.45 * rows + 1.8)))
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    finite = matrix[np.isfinite(matrix)]
    norm = None
    if log_color and finite.size and finite.max() > 0:
        norm = LogNorm(vmin=max(finite[finite > 0].min(initial=1.0), 1e-12), vmax=finite.max())
    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")  # NaN cells: no result
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm, aspect="auto")
    if finite.size:  # an all-missing grid has no colour scale to explain
        fig.colorbar(image, ax=ax, label=cbar_label)
    ax.set_xticks(range(cols), col_labels)
    ax.set_yticks(range(rows), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if rows * cols <= 400:
        mid = np.nanmean(finite) if finite.size else 0.0
        for i in range(rows):
            for j in range(cols):
                v = matrix[i, j]
                text = cell_format.format(v) if np.isfinite(v) else "n/a"
                if texts is not None:
                    text = texts[i][j]
                if mark == (i, j):
                    text = "★ " + text
                color = "white" if np.isfinite(v) and v < mid else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    if mark is not None:
        i, j = mark
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
    ax.set_title(title)
    return writer.save(fig, name, title, caption, alt)


def image_grid(
    writer: FigureWriter,
    name: str,
    title: str,
    rows: Sequence[tuple[str, np.ndarray]],
    *,
    col_label: str,
    value_label: str = "pixel intensity [0, 1]",
    caption: str = "",
    diverging: bool = False,
    alt: str = "",
) -> FigureRef:
    """Rows of 28×28 images: each row is (label, images of shape (n, 28, 28) or (n, 784)).

    The tiles are laid into one mosaic drawn by one ``imshow`` (one axes, not one per image:
    a 14×10 grid renders in a fraction of the time). ``diverging`` scales each image to its
    largest |value| and draws signs in red and blue.
    """
    pad, size = 2, 28
    n = max(len(images) for _, images in rows)
    mosaic = np.full((len(rows) * (size + pad) + pad, n * (size + pad) + pad), np.nan)
    for r, (_, images) in enumerate(rows):
        images = np.asarray(images, dtype=float).reshape(len(images), size, size)
        for c, image in enumerate(images[:n]):
            if diverging:
                image = image / (float(np.abs(image).max()) or 1.0)
            top, left = pad + r * (size + pad), pad + c * (size + pad)
            mosaic[top : top + size, left : left + size] = image
    fig = Figure(figsize=(0.62 * n + 1.8, 0.62 * len(rows) + 1.2), layout="constrained")
    ax = fig.subplots()
    # Grey gaps between tiles: white digits backgrounds stay distinguishable.
    cmap = colormaps["RdBu_r" if diverging else "gray_r"].with_extremes(bad="#c8c8c8")
    limits = (-1.0, 1.0) if diverging else (0.0, 1.0)
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=limits[0], vmax=limits[1],
              interpolation="nearest")  # fmt: skip
    centre = pad + size / 2 - 0.5
    ax.set_xticks([centre + c * (size + pad) for c in range(n)], [str(c + 1) for c in range(n)])
    ax.set_yticks([centre + r * (size + pad) for r in range(len(rows))], [lb for lb, _ in rows])
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(f"{col_label} (28×28 px; {value_label})", fontsize=9)
    ax.set_title(title)
    return writer.save(fig, name, title, caption, alt)


def scatter2d(
    writer: FigureWriter,
    name: str,
    title: str,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, str]],
    *,
    caption: str = "",
    alt: str = "",
) -> FigureRef:
    """2-D latents coloured by digit; each panel is (model, z (n, 2), labels (n,), unit).

    Each digit's label is also written at its median position: the classes read without colour.
    """
    ncols = min(len(panels), 2)
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.6 * ncols + 1.0, 4.0 * nrows + 0.4), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in grid[len(panels) :]:
        ax.set_axis_off()
    axes = grid[: len(panels)]
    points = None
    for ax, (label, z, y, unit) in zip(axes, panels, strict=True):
        # At most MAX_POINTS evenly spaced points: the picture is the same, the PNG smaller.
        keep = np.unique(np.linspace(0, len(z) - 1, min(len(z), MAX_POINTS)).astype(int))
        z, y = np.asarray(z, dtype=float)[keep], np.asarray(y)[keep]
        points = ax.scatter(
            z[:, 0],
            z[:, 1],
            c=np.asarray(y),
            cmap=DIGIT_CMAP,
            vmin=-0.5,
            vmax=9.5,
            s=2,
            linewidths=0,
        )
        for digit in np.unique(y):
            cx, cy = np.median(z[y == digit], axis=0)
            box = {"boxstyle": "circle,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0}
            ax.text(cx, cy, str(digit), fontsize=11, weight="bold", ha="center", va="center",
                    bbox=box)  # fmt: skip
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(f"latent 1 ({unit})")
        ax.set_ylabel(f"latent 2 ({unit})")
    if points is not None:
        fig.colorbar(points, ax=list(grid), ticks=range(10), label="digit")
    fig.suptitle(title)
    return writer.save(fig, name, title, caption, alt)


def bars(
    writer: FigureWriter,
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    annotations: Sequence[str] = (),
    logx: bool = True,
    caption: str = "",
    alt: str = "",
    errors: Sequence[tuple[float, float]] | None = None,
    subtitle: str = "",
) -> FigureRef:
    """Horizontal bars, one per label (first label on top); ``errors`` (lo, hi) draw whiskers;
    ``subtitle`` a smaller second line under the title."""
    fig = Figure(figsize=(8.5, 0.32 * len(labels) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    xerr = None
    if errors is not None:
        xerr = np.abs(np.asarray(errors, float).T - np.asarray(values, float))  # (2, n)
    ax.barh(y, values, color="#4477aa", xerr=xerr, capsize=3 if xerr is not None else 0)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("benchmark")
    if logx:
        ax.set_xscale("log")
        # Room on the right for the annotations (four decades past the longest bar).
        ax.set_xlim(min(values) / 3, max(values) * (1e4 if any(annotations) else 3))
    for yi, v, text in zip(y, values, annotations, strict=False):
        ax.text(v, yi, f" {text}", va="center", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    if subtitle:
        fig.suptitle(subtitle, fontsize=8, wrap=True)
    return writer.save(fig, name, title, caption, alt)


def hparam_scatter(
    writer: FigureWriter,
    name: str,
    title: str,
    points: Sequence[tuple[str, float, float]],
    *,
    xlabel: str,
    ylabel: str,
    caption: str = "",
    alt: str = "",
    logx: bool = True,
    ylim: tuple[float, float] | None = None,
) -> FigureRef:
    """One point per run: (group label, x, y); each group its own marker, colour and legend.

    Points of a group at the same x are jittered sideways a little so seeds do not hide
    each other; a line joins the group's means.
    """
    fig = Figure(figsize=(8.0, 4.6), layout="constrained")
    ax = fig.subplots()
    labels = list(dict.fromkeys(label for label, _, _ in points))
    for k, label in enumerate(labels):
        xs = np.asarray([x for lb, x, _ in points if lb == label], float)
        ys = np.asarray([y for lb, _, y in points if lb == label], float)
        offset = 1.0 + 0.04 * (k - (len(labels) - 1) / 2)  # a multiplicative nudge per group
        (line,) = ax.plot(
            xs * (offset if logx else 1.0),
            ys,
            ls="none",
            marker=MARKERS[k % len(MARKERS)],
            ms=5,
            alpha=0.8,
            label=label,
        )
        ux = np.unique(xs)
        means = [ys[xs == u].mean() for u in ux]
        ax.plot(ux * (offset if logx else 1.0), means, ls=LINESTYLES[k % len(LINESTYLES)],
                color=line.get_color(), lw=1)  # fmt: skip
    xs = np.unique([x for _, x, _ in points])
    if logx:
        ax.set_xscale("log")
        ax.set_xlim(xs.min() / 1.6, xs.max() * 1.6)
        ax.minorticks_off()
    ax.set_xticks(xs, [f"{x:g}" for x in xs])  # the grid's own values, not decades
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(title)
    return writer.save(fig, name, title, caption, alt)


def intervals(
    writer: FigureWriter,
    name: str,
    title: str,
    labels: Sequence[str],
    means: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    *,
    xlabel: str,
    ylabel: str,
    caption: str = "",
    alt: str = "",
) -> FigureRef:
    """One row per label: the mean as a dot and its (lo, hi) interval as whiskers.

    The axis is zoomed to the values (differences of tenths of a point stay visible) and each
    mean is written beside its dot.
    """
    fig = Figure(figsize=(8.5, 0.42 * len(labels) + 1.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    lo, hi = np.asarray(bounds, float).T
    means = np.asarray(means, float)
    ax.errorbar(means, y, xerr=[means - lo, hi - means], fmt="o", capsize=4, color="#4477aa")
    for yi, m, h in zip(y, means, hi, strict=True):
        ax.text(h, yi + 0.18, f" {m:.2f}", fontsize=8, va="bottom")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.7, len(labels) - 0.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return writer.save(fig, name, title, caption, alt)
