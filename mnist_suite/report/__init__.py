"""The report: reads run directories and benchmark results, writes tables and figures.

``build_report(runs_dir, bench_dir, out)`` writes ``out/index.md``, ``out/index.html`` (one
static page that opens from disk), ``out/results.json`` (machine-readable) and
``out/figures/*.png``. Everything is written into a temporary folder beside ``out`` and swapped
in at the end, so a reader never sees a half-written report. The report never trains; trainers
never plot. The first section is the answer (every job against the original projects, the
benchmark verdicts, where the figures came from); the run inventory is last.

``results.json`` (``schema_version`` 3, described by ``results.schema.json`` beside this file):
``generated_at``, ``runs_dir``, ``bench_dir``, ``generator``, ``environment``, ``summaries``
(:func:`mnist_suite.summary.summaries`, one record per job, cell, profile, config and metric:
``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``, ``min``, ``max``, ``seeds`` with their
``values``, ``diverged``, ``fingerprints``, ``configs``, ``machine``), ``runs`` (every run
found; a ``corrupt`` or ``unreadable`` one with its ``problem``), ``benchmark_files`` and
``sections`` (``key``, ``title``, ``notes``, ``figures`` and ``tables`` whose ``rows`` are
records keyed by the ``columns``' ``key``).

Runs whose records cannot be read or do not fit their schemas (:mod:`mnist_suite.records`) are
listed in the inventory with the reason and left out of every other section, which is built
from the rest. A section that still cannot be built ends the report with
:class:`SectionFailed`, naming the run; a report is never replaced by one built from fewer
finished runs unless asked (:class:`FewerRuns`). Either way the previous report stays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnist_suite.envinfo import commit_info, machine_info, now_iso, package_versions
from mnist_suite.errors import ConfigError, MachineError
from mnist_suite.files import atomic_write_bytes, atomic_write_json, read_json_object
from mnist_suite.report import (
    benchmarks,
    changes,
    classification,
    commits,
    generic,
    headline,
    overview,
    reconstruction,
    sgd,
    variants,
)
from mnist_suite.report.collect import collect_benchmarks, collect_runs
from mnist_suite.report.common import Context, registry
from mnist_suite.report.document import Section, render_html, render_markdown
from mnist_suite.report.figures import FigureWriter
from mnist_suite.runs import RunRecord, newest_code
from mnist_suite.text import printable

SCHEMA_VERSION = 3
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
TITLE = "mnist-suite report"
log = logging.getLogger(__name__)


def _expected_jobs() -> list[str]:
    """The jobs a complete suite produces: every registered job."""
    return sorted(registry())


def _generator() -> dict:
    m, c, v = machine_info(), commit_info(), package_versions()
    return {
        "cpu": m["cpu"],
        "cores": m["cores"],
        "python": m["python_version"],
        "numpy": v.get("numpy", ""),
        "commit": c["id"][:10] + (" (dirty)" if c["dirty"] else ""),
        "image": m["image"] or ("container" if m["in_container"] else "host"),
    }


def _one_line(exc: Exception) -> str:
    """An exception as one line of a log (its traceback only at debug level)."""
    return printable(f"{type(exc).__name__}: {exc}".splitlines()[0])


class SectionFailed(Exception):
    """A section that cannot be built from runs whose records all read and fit.

    Such runs are already left out (and listed), so this is a failure the records did not
    foresee: no report is written rather than one missing a section, the previous report stays,
    and the command line exits 1 with this one line, naming the run that alone fails the section.
    """


class FewerRuns(ConfigError):
    """``out`` holds a report built from more finished runs than the new one: replacing it
    would lose figures no run here can make again (``report --force`` replaces it)."""


def _built(title: str, build: Callable[[Context], Any], ctx: Context) -> Any:
    """``build(ctx)``, or :class:`SectionFailed` naming the run behind a failure.

    An OSError (a full disk, a read-only folder) is the machine's fault, not the runs': it
    passes as it is and ends the report with one line.
    """
    try:
        return build(ctx)
    except OSError:
        raise
    except Exception as exc:
        log.debug("section %s", title, exc_info=True)
        run = _culprit(build, ctx)
        which = f"run {run.label} at {run.path} fails it alone" if run else "no single run fails it"
        raise SectionFailed(
            printable(f"section {title!r} cannot be built ({_one_line(exc)}): {which}")
        ) from None


def _culprit(build: Callable[[Context], Any], ctx: Context) -> RunRecord | None:
    """The first run with which alone ``build`` fails (its figures drawn into a scratch folder
    of the report's temporary folder), or None."""
    newest = {id(r) for r in ctx.runs}
    with tempfile.TemporaryDirectory(dir=ctx.writer.folder.parent) as scratch:
        writer = FigureWriter(Path(scratch) / "figures")
        for run in ctx.every_code or ctx.runs:
            alone = [run] if id(run) in newest else []
            try:
                build(dataclasses.replace(ctx, runs=alone, every_code=[run], writer=writer))
            except OSError:
                raise
            except Exception:
                return run
    return None


def build_sections(ctx: Context) -> list[Section]:
    """The answer first, then each family's detail, benchmarks, environment, the inventory; a
    section with nothing to show (its builder returns None) is left out."""

    def answer(c: Context) -> Section:
        environment = overview.environment_line(c, _generator())
        return headline.headline(c, environment, benchmarks.headline_rows(c))

    builders = [
        ("Results at a glance", answer),
        *([("Changes", changes.changes)] if ctx.baseline else []),
        ("Classification", classification.classification),
        ("TensorFlow SGD", sgd.sgd),
        ("Reconstruction", reconstruction.reconstruction),
        # Jobs no family section reads (family other, or unknown here): a section of their own.
        *([("Other jobs", generic.generic)] if generic.generic_jobs(ctx) else []),
        ("Variants", variants.variants),
        # Each job's figure commit by commit, when runs of two commits are at hand (else none).
        ("Across commits", commits.across_commits),
        ("Benchmarks", benchmarks.benchmarks),
        ("Environment", lambda c: overview.environment(c, _generator())),
        ("Runs", lambda c: overview.runs_overview(c, _expected_jobs())),
    ]
    built = [_built(title, build, ctx) for title, build in builders]
    return [s for s in built if s is not None]


MARKER = ".mnist-suite-report"  # written into every report: the folder may be replaced
# Written first into every temp folder a report makes beside ``out``: who made it, so a later
# report can tell a folder left by a killed report from one a running report still fills.
OWNER = ".mnist-suite-report-owner"
FOREIGN_STALE_SECONDS = 86_400.0  # a temp folder of another machine's report, left this long


def _temp_folder(out: Path, kind: str) -> Path:
    """A new temp folder ``.<out>.<kind>-XXXX`` beside ``out``, its owner recorded inside."""
    from mnist_suite import claims

    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{kind}-"))
    owner = {**claims.machine(), "pid": os.getpid(), "start": claims._start_ticks(os.getpid())}
    try:
        atomic_write_json(tmp / OWNER, owner)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _abandoned(folder: Path, now: float) -> bool:
    """Was ``folder`` made by a report (its owner file) whose process is gone?"""
    from mnist_suite import claims

    owner_file = folder / OWNER
    if folder.is_symlink() or not folder.is_dir() or owner_file.is_symlink():
        return False
    owner = read_json_object(owner_file, follow=False)
    if owner is None:
        return False  # not made by a report, or its maker is still writing the owner file
    if all(owner.get(k) == v for k, v in claims.machine().items()):
        return not claims.process_alive(owner.get("pid"), owner.get("start"))
    try:
        return now - owner_file.stat().st_mtime > FOREIGN_STALE_SECONDS
    except OSError:
        return False


def remove_abandoned(out: Path) -> list[Path]:
    """Remove the temp folders beside ``out`` that killed reports left; the ones removed.

    Only folders named like a report's temp folders and holding its owner file are candidates,
    and only those whose owner is provably gone (on this machine: its process no longer
    exists; elsewhere: a day old) go: a running report's folder, or anything else, stays.
    """
    removed = []
    now = time.time()
    try:
        found = list(out.parent.glob(f".{glob.escape(out.name)}.*-*"))
    except OSError:
        return removed
    for folder in found:
        kind = folder.name[len(out.name) + 2 :].split("-", 1)[0]
        if kind in ("tmp", "old") and _abandoned(folder, now):
            kept = folder / out.name
            if kind == "old" and not out.exists() and (kept / MARKER).is_file():
                # Killed between its two renames: the previous report goes back in place.
                with contextlib.suppress(OSError):
                    os.replace(kept, out)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is not new, empty, or a report this suite wrote (its marker)."""
    try:
        if out.is_symlink():
            raise ConfigError(f"out {out}: is a symbolic link; give the folder it points to")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"out {out}: is a file; expected a report folder")
        marked = (out / MARKER).is_file() and not (out / MARKER).is_symlink()
        if out.is_dir() and not marked and any(out.iterdir()):
            raise ConfigError(
                f"out {out}: not a report folder (no {MARKER} marker) and not empty; "
                "choose a new or empty folder"
            )
    except OSError as exc:
        raise MachineError(f"out {out}: cannot inspect it ({exc.strerror or exc})") from None


def finished_runs(out: Path) -> int | None:
    """How many finished (``done``) runs the report in ``out`` was built from; None when there
    is no report there or its ``results.json`` cannot be read."""
    results = read_json_object(out / "results.json", follow=False)
    runs = results.get("runs") if results else None
    if not isinstance(runs, list):
        return None
    return sum(isinstance(r, dict) and r.get("state") == "done" for r in runs)


def _check_fewer(out: Path, finished: int, force: bool) -> None:
    """Refuse (:class:`FewerRuns`) to replace a report built from more finished runs than
    ``finished`` unless ``force``; with ``force`` say what is replaced, in one line."""
    before = finished_runs(out)
    if before is None or before <= finished:
        return
    said = f"out {out}: a report of {before} finished runs; this one has {finished}"
    if not force:
        raise FewerRuns(f"{said}: left as it is (--force replaces it)")
    log.warning("%s: replaced (--force)", said)


def build_report(
    runs_dir: Path | Sequence[Path],
    bench_dir: Path | None,
    out: Path,
    baseline: Path | None = None,
    all_code: bool = False,
    force: bool = False,
) -> dict:
    """Write the report for the runs under ``runs_dir`` into ``out``; return results.json's data.

    ``runs_dir`` may be several folders (the same run found twice is reported once). Each job
    is reported at its newest code (the runs its latest run's code made) unless ``all_code``,
    which pools every version and marks the figures that do. With a
    ``baseline`` (what ``mnist-suite compare`` reads) a "Changes against a baseline" section
    compares these runs with it. A report in ``out`` built from more finished runs than this
    one is replaced only with ``force``.

    Raises
    ------
    ConfigError
        A runs folder is not a folder or cannot be listed, or ``out`` exists and is neither
        empty nor a report folder (one holding :data:`MARKER`).
    FewerRuns
        ``out`` holds a report built from more finished runs, and not ``force``.
    SectionFailed
        A section cannot be built from the runs whose records fit (the run is named).
    """
    dirs = [Path(runs_dir)] if isinstance(runs_dir, str | Path) else [Path(d) for d in runs_dir]
    out = Path(out)
    for folder in dirs:
        if not folder.is_dir():
            raise ConfigError(f"runs {folder}: no such folder (expected a runs folder)")
    runs_dir = dirs[0] if len(dirs) == 1 else ", ".join(map(str, dirs))
    if bench_dir is not None and Path(bench_dir).exists() and not Path(bench_dir).is_dir():
        raise ConfigError(f"bench {bench_dir}: is a file; expected a folder of JSON files")
    _check_out(out)
    if baseline is not None:
        from mnist_suite.compare import load_side

        load_side(baseline)  # a baseline that cannot be read is a usage error, before any work
    found = collect_runs(dirs)
    every_code = [r for r in found if r.readable]
    left_out = 0
    runs = every_code
    if not all_code:
        runs, left_out = newest_code(every_code)
    if left_out:
        log.warning("%d runs of older code left out of the report", left_out)
    unread = [r for r in found if not r.readable]
    if unread:
        log.warning(
            "%d runs left out of every section (corrupt or unreadable; listed under Runs)",
            len(unread),
        )
    _check_fewer(out, sum(r.state == "done" for r in runs), force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(out)
    tmp = _temp_folder(out, "tmp")
    try:
        ctx = Context(
            runs=runs,
            benches=collect_benchmarks(bench_dir),
            writer=FigureWriter(tmp / "figures"),
            runs_dir=runs_dir,
            bench_dir=bench_dir,
            baseline=baseline,
            every_code=every_code,
            unread=unread,
        )
        built = build_sections(ctx)
        results = {
            "schema_version": SCHEMA_VERSION,
            "generated_at": now_iso(),
            "runs_dir": str(runs_dir),
            "bench_dir": str(bench_dir) if bench_dir is not None else None,
            "generator": _generator(),
            "environment": overview.environment_line(ctx, _generator()),
            "summaries": _built("summaries", headline.summaries, ctx),
            "runs": [
                {
                    "job": r.job,
                    "cell": r.cell,
                    "profile": r.profile,
                    "seed": r.seed,
                    "state": r.state,
                    "run_id": r.run_id,
                    "config": r.config,
                    "metrics": r.metrics,
                    **({"problem": r.problem} if not r.readable else {}),
                }
                for r in sorted([*ctx.runs, *ctx.unread], key=lambda r: (r.job, r.run_id))
            ],
            "benchmark_files": [b.path.name for b in ctx.benches],
            "sections": [s.to_json() for s in built],
        }
        atomic_write_bytes(tmp / MARKER, b"written by mnist-suite report; replaced by the next\n")
        atomic_write_json(tmp / "results.json", results)
        subtitle = (
            f"Generated {results['generated_at'][:19]} UTC by `mnist-suite report` from "
            f"{len(ctx.runs)} runs in {runs_dir}{_unread_note(ctx.unread)} and "
            f"{len(ctx.benches)} benchmark files"
            f"{f' in {bench_dir}' if bench_dir else ''}. It reads results; it never trains. "
            + changes.fingerprint_note(ctx.runs)
        ).strip()
        atomic_write_bytes(tmp / "index.md", render_markdown(TITLE, built, subtitle).encode())
        atomic_write_bytes(tmp / "index.html", render_html(TITLE, built, subtitle).encode())
        _swap(tmp, out)
    except OSError as exc:  # a full disk, an I/O error: the previous report stays as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise MachineError(f"out {out}: cannot write the report ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return results


def outline(out: Path, results: dict) -> dict:
    """What ``report --json`` prints: the report's files and what it holds, in brief (every
    figure and table is in its ``results.json``)."""
    states: dict[str, int] = {}
    for run in results["runs"]:
        states[run["state"]] = states.get(run["state"], 0) + 1
    return {
        "index_html": str(out / "index.html"),
        "index_md": str(out / "index.md"),
        "results_json": str(out / "results.json"),
        "schema_version": results["schema_version"],
        "generated_at": results["generated_at"],
        "runs": states,
        "benchmark_files": results["benchmark_files"],
        "sections": [
            {"key": s["key"], "title": s["title"], "notes": s["notes"]} for s in results["sections"]
        ],
    }


def _unread_note(unread: list[RunRecord]) -> str:
    if not unread:
        return ""
    return f" ({len(unread)} more left out: corrupt or unreadable, listed under Runs)"


def _swap(new: Path, out: Path) -> None:
    """Replace ``out`` by ``new`` with renames: the old report stays whole until the swap.

    ``out`` is checked again here, just before it goes: only a report (or an empty folder) is
    ever replaced, even if something was put into it while the report was being built.
    """
    _check_out(out)
    # mkdtemp makes a 0700 folder; a report is meant to be read by anyone.
    for path in [new, *new.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    (new / OWNER).unlink()  # the report itself has no owner file: it is nobody's temp folder
    if not out.exists():
        os.replace(new, out)
        return
    old = _temp_folder(out, "old")
    os.replace(out, old / out.name)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
