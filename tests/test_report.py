"""The report from real runs: every section builds, odd run states show as such, atomic writes."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist_suite import runs
from mnist_suite.errors import ConfigError
from mnist_suite.jobs import Job
from mnist_suite.originals import original_figure
from mnist_suite.report import SCHEMA_FILE, SCHEMA_VERSION, build_report
from mnist_suite.report.collect import collect_runs
from mnist_suite.report.document import fmt


@dataclass(frozen=True)
class FakeConfig:
    lr: float = 0.1
    batch_size: int = 32
    widths: tuple[int, ...] = (32, 32)
    epochs: int = 3


def positional(results: dict) -> dict:
    """results.json's tables as the pages lay them out: headers, rows as lists in that order."""
    for section in results["sections"]:
        for table in section["tables"]:
            keys = [c["key"] for c in table["columns"]]
            table["columns"] = [c["header"] for c in table["columns"]]
            table["rows"] = [[row[k] for k in keys] for row in table["rows"]]
    return results


def _execute(out: Path, name: str, train, cell: str = "", config=FakeConfig()):
    job = Job(name, "crafted for the report tests", FakeConfig, train)
    return runs.execute(
        job, cell, config, seed=0, profile="quick", out=out, run_id=f"{cell or name}-quick"
    )


def _fails(cfg, run):
    run.log(1, "epoch", train_loss=0.9, test_accuracy=0.7)
    raise ValueError("crafted failure after one epoch")


def _diverges(cfg, run):
    for step in range(1, 4):
        run.log(step, "batch", loss=2.3 * step)
    run.save_arrays("batch_losses", loss=np.array([2.3, 4.6, np.inf]), steps_per_epoch=np.int64(3))
    run.check_finite(3, math.inf)


def _interrupted(cfg, run):
    run.log(1, "epoch", train_loss=0.5)
    raise KeyboardInterrupt("SIGTERM")


def craft_runs(out: Path) -> dict[str, Path]:
    """Failed, diverged and interrupted runs under real job names, through the runner itself."""
    failed = _execute(out, "mlp", _fails)
    diverged = _execute(
        out, "sgd-grid", _diverges, cell="net32-32-b32-lr3", config=FakeConfig(lr=3.0)
    )
    with pytest.raises(KeyboardInterrupt):
        _execute(out, "ae", _interrupted, cell="deep-k32")
    assert (failed.state, diverged.state) == ("failed", "diverged")
    return {
        "failed": failed.path,
        "diverged": diverged.path,
        "interrupted": out / "ae" / "deep-k32-quick",
    }


def report_while_running(out: Path, report: Path, bench: Path | None = None) -> dict:
    """Build the report from inside a job's ``train``: that run is then genuinely ``running``."""
    built = {}

    def train(cfg, run):
        run.log(1, "epoch", train_loss=1.0)
        built.update(build_report(out, bench, report))
        return {"test_mse": 0.5}

    assert _execute(out, "pca", train).state == "done"
    return built


def build_sample(run_cli, tmp_path: Path, bench: Path | None = None) -> tuple[Path, dict]:
    """Real quick softmax runs plus crafted odd ones; returns (report folder, results.json)."""
    out = tmp_path / "runs"
    for job in ("softmax", "softmax-original"):
        code, stdout, _ = run_cli("run", job, "--profile", "quick")
        assert code == 0, stdout
    craft_runs(out)
    report = tmp_path / "reports"
    return report, report_while_running(out, report, bench)


@pytest.mark.slow
def test_report_from_real_and_odd_runs(run_cli, tmp_path):
    report, _ = build_sample(run_cli, tmp_path)
    assert {p.name for p in report.iterdir()} == {
        "index.md",
        "index.html",
        "results.json",
        "figures",
        ".mnist-suite-report",  # the marker that lets the next report replace this folder
    }
    on_disk = positional(json.loads((report / "results.json").read_text()))
    assert on_disk["schema_version"] == SCHEMA_VERSION
    states = {(r["job"], r["cell"]): r["state"] for r in on_disk["runs"]}
    assert states == {
        ("softmax", ""): "done",
        ("softmax-original", ""): "done",
        ("mlp", ""): "failed",
        ("sgd-grid", "net32-32-b32-lr3"): "diverged",
        ("ae", "deep-k32"): "interrupted",
        ("pca", ""): "running",
    }
    sections = {s["key"]: s for s in on_disk["sections"]}
    assert not [n for s in sections.values() for n in s["notes"] if "could not be built" in n]

    # The classification table: real accuracies, the original's figure and the difference.
    table = sections["classification"]["tables"][0]
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["rows"]}
    softmax = rows["softmax"]
    metrics = json.loads(next((tmp_path / "runs" / "softmax").glob("*/metrics.json")).read_text())
    assert softmax["test acc (mean)"] == metrics["test_accuracy"]  # one seed: its own figure
    assert softmax["95% CI"] is None  # one seed has no interval
    assert softmax["seeds done"] == "1"
    assert softmax["original's figure"] == 0.801
    assert softmax["Δ mean vs original"] == pytest.approx(metrics["test_accuracy"] - 0.801)
    assert rows["softmax-original"]["original vs ours (one-run interval)"] == "n=1: no interval"
    assert rows["mlp"]["seeds done"] == "0 of 1 (1 failed)"
    assert rows["mlp"]["test acc (mean)"] is None  # a failed run's partial numbers are not results
    assert rows["mlp-original"]["seeds done"] == "missing"
    assert 0.85 < softmax["test acc (mean)"] < 0.95  # quick profile: 2 epochs on 10k images
    overview = {tuple(r[:2]): r for r in sections["runs"]["tables"][0]["rows"]}
    assert overview[("mlp", "")][4].startswith("failed: ValueError: crafted failure")

    # Time to target: softmax's quick run never reaches 97% dev; softmax-original has no dev split.
    ttt = sections["classification"]["tables"][1]
    ttt_rows = {row[0]: dict(zip(ttt["columns"], row, strict=True)) for row in ttt["rows"]}
    assert ttt_rows["softmax"]["to 97%: reached"] == "not reached"
    assert ttt_rows["softmax"]["to 97% dev (s, median)"] is None  # never 0
    assert ttt_rows["softmax-original"]["to 97%: reached"] == "no dev split"

    # The grid shows its only point as diverged, with the step.
    grid = sections["sgd"]["tables"][0]
    assert grid["rows"][0][3] == "diverged @ step 3"

    md = (report / "index.md").read_text()
    html = (report / "index.html").read_text()
    for text in ("running", "interrupted", "diverged @ step 3", "Jobs with no runs"):
        assert text in md and text in html
    # Every figure the pages reference exists, is a PNG, and every PNG is referenced.
    pngs = {f"figures/{p.name}" for p in (report / "figures").glob("*.png")}
    referenced = {f for s in on_disk["sections"] for f in s["figures"]}
    assert pngs == referenced and "figures/confusion-best.png" in pngs
    for name in pngs:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md and f'src="{name}"' in html


def test_report_swap_replaces_whole_folder_and_refuses_foreign_folders(tmp_path):
    out = tmp_path / "runs"
    _execute(out, "mlp", _fails)
    report = tmp_path / "reports"
    build_report(out, None, report)
    stale = report / "figures" / "stale.png"
    stale.write_bytes(b"old")
    build_report(out, None, report)
    assert not stale.exists()  # the new report replaced the folder, not merged into it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert oct(os.stat(report / "index.html").st_mode & 0o777) == "0o644"

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a report folder"):
        build_report(out, None, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="no such folder"):
        build_report(tmp_path / "nope", None, report)


def test_report_survives_corrupt_artifacts_and_torn_history(tmp_path):
    out = tmp_path / "runs"

    def train(cfg, run):
        run.log(1, "epoch", train_loss=0.4, test_accuracy=0.9)
        run.save_arrays("confusion", matrix=np.eye(10, dtype=np.int64) * 1000)
        return {"test_accuracy": 0.9, "train_accuracy": 0.91}

    path = _execute(out, "mlp", train).path
    (path / "artifacts" / "confusion.npz").write_bytes(b"not a zip file")
    with open(path / "history.jsonl", "a") as f:
        f.write('{"kind": "epoch", "step": 2, "train_lo')  # killed mid-write
    (path / "metrics.json").write_text("[1, 2")  # torn JSON
    torn = out / "ae" / "torn-run"
    torn.mkdir(parents=True)
    (torn / "config.json").write_text('{"job": "ae", "cel')  # a run dir killed at birth
    results = build_report(out, None, tmp_path / "reports")
    states = {r["run_id"]: (r["job"], r["state"]) for r in results["runs"]}
    assert states["torn-run"] == ("ae", "corrupt")
    run = next(r for r in results["runs"] if r["job"] == "mlp")
    assert run["state"] == "corrupt" and run["metrics"] == {}  # torn metrics are not "done"
    sections = {s["key"]: s for s in results["sections"]}
    assert any("confusion" in n for n in sections["classification"]["notes"])


def test_report_of_an_empty_runs_folder_says_so(tmp_path):
    (tmp_path / "runs").mkdir()
    results = build_report(tmp_path / "runs", tmp_path / "no-bench", tmp_path / "reports")
    notes = [n for s in results["sections"] for n in s["notes"]]
    assert any("No runs found" in n for n in notes)
    assert any("No benchmark results" in n for n in notes)


def test_cli_report_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli(
        "report", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "r")
    )
    assert code == 2 and err.startswith("error: runs ") and err.count("\n") == 1


def test_cli_report_json_names_its_files_and_what_it_holds(run_cli, tmp_path):
    out = tmp_path / "runs"
    _execute(out, "mlp", _fails)
    report = tmp_path / "reports"
    code, stdout, _ = run_cli(
        "report",
        "--runs",
        str(out),
        "--out",
        str(report),
        "--bench",
        str(tmp_path / "nb"),
        "--json",
    )
    outline = json.loads(stdout)
    assert code == 0 and outline["runs"] == {"failed": 1}
    assert Path(outline["index_html"]) == report / "index.html"
    written = json.loads(Path(outline["results_json"]).read_text())
    assert outline["generated_at"] == written["generated_at"]
    assert [s["key"] for s in outline["sections"]] == [s["key"] for s in written["sections"]]


def test_pick_prefers_full_then_done_then_newest(tmp_path):
    out = tmp_path / "runs"

    def ok(cfg, run):
        return {"test_accuracy": 0.5}

    job = Job("mlp", "x", FakeConfig, ok)
    for profile, run_id in (("quick", "a"), ("full", "b"), ("quick", "c")):
        runs.execute(job, "", FakeConfig(), seed=0, profile=profile, out=out, run_id=run_id)
    _execute(out, "mlp", _fails)  # quick, failed, newest
    from mnist_suite.report.replicates import pick_cell_groups, pick_group

    assert [r.path.name for r in pick_group(collect_runs(out), "mlp").runs] == ["b"]
    groups = pick_cell_groups(collect_runs(out), "mlp")
    assert [g.profile for g in groups.values()] == ["full"]


def test_fmt_and_seed_figures():
    assert fmt(None) == "—" and fmt(float("nan"), "pct") == "—" and fmt("n/a") == "n/a"
    assert fmt(0.98765, "pct") == "98.77%" and fmt(-0.0123, "pp") == "-1.23 pp"
    assert fmt(12345.6, "int") == "12,346" and fmt(3.14159, "f2") == "3.14"
    assert original_figure("mlp", "test_accuracy") == (0.925, "mlp-original")
    assert original_figure("sgd-lr-sweep", "final_train_loss", "lr0.01") == (0.1689, "sgd-lr-sweep")
    assert original_figure("softmax", "dev_accuracy") == (None, "")


# --- read as a reader would: the page in headless Chromium -------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class DevTools:
    """A minimal Chrome DevTools Protocol client: commands in order, events kept for later."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))
        return next(e for e in self.events if e.get("method") == method)

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@contextlib.contextmanager
def chromium(tmp_path: Path):
    """Headless Chromium with remote debugging; yields a DevTools client on its first page."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        # CI installs it (apt package `chromium`); elsewhere say clearly why this did not run.
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        # No proxy for a loopback address, whatever the environment says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        yield client
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PAGE_FACTS = """JSON.stringify({
  title: document.title,
  images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                          width: i.naturalWidth, height: i.naturalHeight,
                                          alt: i.alt})),
  unscopedHeaders: document.querySelectorAll('th:not([scope])').length,
  tables: [...document.querySelectorAll('table')].map(t => ({
    caption: t.caption ? t.caption.textContent : '', rows: t.tBodies[0].rows.length})),
  sections: [...document.querySelectorAll('section h2')].map(h => h.textContent),
  height: document.documentElement.scrollHeight,
  firstTableTop: document.querySelector('table') ?
    document.querySelector('table').getBoundingClientRect().top : -1,
})"""


def open_page(page: DevTools, url: str) -> tuple[dict, list[dict]]:
    """Load ``url``; return the page's facts and the errors it raised (console, log, JS)."""
    page.events.clear()
    page.call("Page.navigate", url=url)
    page.wait_for("Page.loadEventFired")
    facts = json.loads(page.call("Runtime.evaluate", expression=PAGE_FACTS)["result"]["value"])
    errors = [
        e
        for e in page.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    return facts, errors


@pytest.mark.slow
def test_report_in_headless_chromium(run_cli, tmp_path):
    pytest.importorskip("websocket", reason="websocket-client is in the dev extra")
    report, results = build_sample(run_cli, tmp_path)
    with serve(report) as base, chromium(tmp_path) as page:
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        viewport = {"width": 1200, "deviceScaleFactor": 1, "mobile": False}
        page.call("Emulation.setDeviceMetricsOverride", height=900, **viewport)
        facts, errors = open_page(page, f"{base}/index.html")
        # The answer is on the first screen: the headline table starts inside 1200 × 900.
        assert facts["tables"][0]["caption"] == "Every job against the original projects"
        assert 0 <= facts["firstTableTop"] < 900, facts["firstTableTop"]
        # A full-page screenshot for a human to look at (test-artifacts/ is git-ignored).
        height = min(int(facts["height"]), 16000)
        page.call("Emulation.setDeviceMetricsOverride", height=height, **viewport)
        shot = page.call("Page.captureScreenshot", format="png")
        # The same page straight from disk: relative links only, nothing needs a server.
        from_disk, disk_errors = open_page(page, (report / "index.html").as_uri())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-chromium.png").write_bytes(base64.b64decode(shot["data"]))

    assert errors == [] and disk_errors == []
    assert facts["title"] == "mnist-suite report"
    figures = {f for s in results["sections"] for f in s["figures"]}
    assert {i["src"] for i in facts["images"]} == figures and len(figures) >= 4
    for image in facts["images"] + from_disk["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    captions = {t["caption"]: t["rows"] for t in facts["tables"]}
    expected = {t["title"]: len(t["rows"]) for s in results["sections"] for t in s["tables"]}
    assert captions == expected
    assert (
        captions["All runs"] == 6
        and captions["Test accuracy over seeds, ours vs the original"] >= 5
    )
    assert facts["sections"] == [s["title"] for s in results["sections"]]
    assert from_disk["tables"] == facts["tables"]
    # Accessible: captioned tables, scoped header cells, figures whose alt text says something.
    assert all(t["caption"] for t in facts["tables"]) and facts["unscopedHeaders"] == 0
    assert all(len(i["alt"]) > 40 for i in facts["images"]), [i["alt"] for i in facts["images"]]


BENCH_MODULE = """
import numpy as np

A = np.random.default_rng(0).standard_normal((128, 128), dtype=np.float32)
X = np.random.default_rng(1).standard_normal(2000)


def test_gemm(benchmark):
    benchmark.group = "gemm"
    benchmark.extra_info.update(flops=2 * 128**3, role="ceiling")
    benchmark(A.__matmul__, A)


def test_sum_loop(benchmark):
    benchmark.group = "sum"
    benchmark(lambda: sum(float(v) for v in X))


def test_sum_vectorised(benchmark):
    benchmark.group = "sum"
    benchmark.extra_info.update(
        flops=2000,
        baseline="test_tiny_bench.py::test_sum_loop",
        target={"speedup_over_baseline": 5.0, "fraction_of_ceiling": 1e6},
    )
    benchmark(X.sum)
"""


@pytest.mark.slow
def test_benchmark_section_from_real_pytest_benchmark_json(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (tmp_path / "test_tiny_bench.py").write_text(BENCH_MODULE)
    (bench / "not-a-benchmark.json").write_text('{"hello": 1}')
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path / "test_tiny_bench.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--benchmark-max-time=0.02",
            f"--benchmark-json={bench / 'tiny.json'}",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (tmp_path / "runs").mkdir()
    results = positional(build_report(tmp_path / "runs", bench, tmp_path / "reports"))
    raw = json.loads((bench / "tiny.json").read_text())
    median = {b["name"]: b["stats"]["median"] for b in raw["benchmarks"]}
    section = next(s for s in results["sections"] if s["key"] == "benchmarks")
    table, targets = section["tables"]  # the file without a benchmarks list is skipped
    rows = {r[1]: dict(zip(table["columns"], r, strict=True)) for r in table["rows"]}
    gemm = 2 * 128**3 / median["test_gemm"] / 1e9
    assert rows["test_gemm"]["GFLOP/s"] == pytest.approx(gemm)
    assert rows["test_gemm"]["of GEMM ceiling"] == pytest.approx(1.0)
    vec = rows["test_sum_vectorised"]
    assert vec["baseline"] == "test_sum_loop"
    assert vec["speed-up"] == pytest.approx(median["test_sum_loop"] / median["test_sum_vectorised"])
    assert vec["speed-up"] > 5  # a Python loop against NumPy: the ratio, not a time
    assert vec["of GEMM ceiling"] == pytest.approx(
        2000 / median["test_sum_vectorised"] / 1e9 / gemm
    )
    assert section["figures"] == ["figures/bench-tiny.png"]
    verdicts = {row[1]: row for row in targets["rows"]}  # metric -> row
    # [benchmark, metric, median, q1, q3, target, verdict]: no quartiles in this plain file.
    assert verdicts["speedup_over_baseline"][2:] == [vec["speed-up"], None, None, 5.0, "met"]
    assert verdicts["fraction_of_ceiling"][6] == "missed"  # a million times the ceiling
    assert targets["marked"] == [targets["rows"].index(verdicts["fraction_of_ceiling"])]


def test_report_command_never_imports_tensorflow(tmp_path):
    # The report reads results: it must run where TensorFlow is absent (the numpy image).
    (tmp_path / "runs").mkdir()
    code = (
        "import sys; from mnist_suite.cli import main; "
        f"rc = main(['report', '--runs', {str(tmp_path / 'runs')!r}, "
        f"'--out', {str(tmp_path / 'reports')!r}]); "
        "assert rc == 0 and 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "reports" / "index.html").is_file()


@pytest.mark.slow
def test_report_reads_the_real_sgd_pca_and_ae_artifacts(run_cli, tmp_path):
    # A contract test: the quick profiles of the real jobs, read back by the report sections.
    for argv in (
        ("sgd-lr-sweep",),
        ("pca",),
        ("ae", "--set", "models=linear-2"),
    ):
        code, _, stderr = run_cli("run", *argv, "--profile", "quick")
        assert code == 0, stderr
    results = positional(build_report(tmp_path / "runs", None, tmp_path / "reports"))
    sections = {s["key"]: s for s in results["sections"]}
    sweep = sections["sgd"]["tables"][0]
    assert [row[0] for row in sweep["rows"]] == ["lr0.1", "lr0.01", "lr0.001"]
    losses = [
        row[sweep["columns"].index("train loss after epoch (nats, mean)")] for row in sweep["rows"]
    ]
    assert all(loss is not None and loss > 0 for loss in losses[1:])  # lr 0.1 may diverge
    recon = sections["reconstruction"]
    variance = recon["tables"][0]
    ours = [row[variance["columns"].index("ours")] for row in variance["rows"]]
    assert ours[0] > ours[1] > 0  # PCA's ratios come sorted
    mse = {row[0]: dict(zip(recon["tables"][1]["columns"], row, strict=True))
           for row in recon["tables"][1]["rows"]}  # fmt: skip
    linear = mse["ae/linear-2"]
    assert linear["latent k"] == 2 and linear["MSE (pixels, mean)"] > 0
    assert linear["PCA MSE at k, same input (pixels)"] == pytest.approx(
        mse["pca (k=2)"]["MSE (pixels, mean)"], rel=0.1
    )
    figures = set(sections["sgd"]["figures"]) | set(recon["figures"])
    assert {
        "figures/sgd-lr-sweep.png",
        "figures/pca-components.png",
        "figures/latents-2d.png",
        "figures/reconstructions.png",
        "figures/mse-vs-k.png",
        "figures/loss-ae.png",
    } <= figures
    assert not [n for s in sections.values() for n in s["notes"] if "could not be built" in n]


@pytest.mark.slow
def test_results_json_is_named_records_and_the_answer_comes_first(run_cli, tmp_path):
    import jsonschema

    report, _ = build_sample(run_cli, tmp_path)
    results = json.loads((report / "results.json").read_text())
    jsonschema.validate(results, json.loads(SCHEMA_FILE.read_text()))
    keys = [s["key"] for s in results["sections"]]
    assert keys[0] == "answer" and keys[-1] == "runs", keys
    metrics = json.loads(next((tmp_path / "runs" / "softmax").glob("*/metrics.json")).read_text())
    answer = {r["job"]: r for r in results["sections"][0]["tables"][0]["rows"]}
    assert (
        answer["softmax"]["ours_mean"] == metrics["test_accuracy"] and answer["softmax"]["n"] == 1
    )
    assert answer["softmax"]["original"] == 0.801
    gain = answer["softmax"]["original_vs_ours_or_gain"]
    assert "pp over softmax-original's (ours: quick; theirs: its full run)" in gain
    assert answer["softmax-original"]["original_vs_ours_or_gain"] == "n=1: no interval"
    assert answer["mlp"]["n"] == 0 and answer["mlp"]["ours_mean"] is None  # failed: no result
    summaries = {(s["job"], s["cell"], s["metric"]): s for s in results["summaries"]}
    acc = summaries[("softmax", "", "test_accuracy")]
    assert acc["n"] == 1 and acc["mean"] == metrics["test_accuracy"] and acc["seeds"] == [0]
    assert acc["sd"] is None and acc["ci_low"] is None  # one seed: no interval
    # A failed run gives no figure, but its job keeps a row (n 0): it never vanishes.
    failed = [s for k, s in summaries.items() if k[0] == "mlp"]
    assert failed and all(s["n"] == 0 and s["mean"] is None for s in failed)
    assert "figures from" in results["environment"].lower()
    md = (report / "index.md").read_text()
    assert md.index("Results at a glance") < md.index("Classification") < md.index("All runs")


def test_the_reference_report_validates_against_the_schema(shipped):
    import jsonschema

    reference = shipped("reports/results.json")
    jsonschema.validate(json.loads(reference.read_text()), json.loads(SCHEMA_FILE.read_text()))


def test_the_glance_table_says_what_it_compares(shipped):
    """Profile and non-default config named; ÷ PCA and ÷ noisy input apart; no ratio over a
    near-zero MSE; originals judged by their predictive p-value."""
    from mnist_suite.jobs import all_jobs
    from mnist_suite.report.headline import markdown_table, non_default

    quick_lr = all_jobs()["mlp-fast"].resolve("quick").lr
    assert non_default("mlp-fast", "", "quick", {"lr": quick_lr}) == []
    assert non_default("mlp-fast", "", "quick", {"lr": 0.05}) == ["lr=0.05"]
    results = json.loads(shipped("reports/results.json").read_text())
    table = markdown_table(results)
    rows = {line.split("|")[1].strip(" `"): line for line in table.splitlines()[2:] if "|" in line}
    assert "÷ PCA | ÷ noisy input" in table and "1380" not in table
    # The committed rows carry no p-value: judged again from their n, mean and interval.
    assert "| borderline (p=0.092) |" in rows["mlp-original"]
    assert "| consistent (p=0.20) |" in rows["sgd-original"]
    assert "| not consistent (p=0.0015) |" in rows["ae-original/denoising"]
    assert "All rows: full profile, default config." in table


def test_variants_section_is_the_lever_table(run_cli, tmp_path):
    """A job run over seeds with its default and with one lever changed: one row each, in the
    order tried, the lever named against the default, dev and test means of the runs; the
    glance table stands on the default, not on the variant run later over as many seeds."""
    for extra in ([], ["--set", "lr=0.05"]):
        code, out, _ = run_cli("run", "softmax", "--profile", "quick", "--seeds", "0-1", *extra)
        assert code == 0, out
    results = positional(build_report(tmp_path / "runs", None, tmp_path / "reports"))
    sections = {s["key"]: s for s in results["sections"]}
    table = sections["variants"]["tables"][0]
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    assert [r["config (vs the profile's default)"] for r in rows] == ["default", "lr=0.05"]
    for row, lr in zip(rows, (None, 0.05), strict=True):
        found = [
            r for r in collect_runs(tmp_path / "runs")
            if (r.config["lr"] == 0.05) == (lr is not None)
        ]  # fmt: skip
        assert row["seeds done"] == "2" and row["chosen on"] == "dev_accuracy"
        assert row["dev (mean)"] == pytest.approx(
            np.mean([r.metric("dev_accuracy") for r in found])
        )
        assert row["test (mean)"] == pytest.approx(
            np.mean([r.metric("test_accuracy") for r in found])
        )
    answer = sections["answer"]["tables"][0]
    softmax = next(r for r in answer["rows"] if r[0] == "softmax")
    assert softmax[1] == "quick"  # the default config, not "quick; lr=0.05"


FITS = """JSON.stringify({
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: innerWidth,
  wider: [...document.querySelectorAll('table, img, figure, pre, p, section, details')]
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
    .map(e => e.tagName + ' ' + (e.dataset.table || e.getAttribute('src') || e.id || '')),
  verdict: (() => {
    const th = [...document.querySelectorAll('table')[0].tHead.rows[0].cells]
      .find(c => c.textContent.startsWith('original vs ours'));
    const box = th.getBoundingClientRect();
    return {left: box.left, right: box.right, top: box.top};
  })(),
  folds: [...document.querySelectorAll('section > details[open] > summary > h2')].length,
  sections: document.querySelectorAll('section').length,
  rawMarkdown: [...document.querySelectorAll('p, figcaption, caption')]
    .filter(e => /\\*\\*|`/.test(e.textContent)).map(e => e.textContent.slice(0, 80)),
})"""


@pytest.mark.slow
def test_report_fits_800_and_1400_px_windows(run_cli, tmp_path):
    """Nothing is wider than the window at 800 or 1400 px (no sideways scrolling, no table,
    image or figure cut at the right edge), the verdict column's header is on the first screen
    at 800 px, every section folds under its heading, and no markdown shows raw."""
    pytest.importorskip("websocket", reason="websocket-client is in the dev extra")
    bench = Path(__file__).resolve().parents[1] / "bench" / "results"  # wide tables, history
    report, _ = build_sample(run_cli, tmp_path, bench)
    seen = {}
    with serve(report) as base, chromium(tmp_path) as page:
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        for width in (800, 1400):
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            _, errors = open_page(page, f"{base}/index.html")
            assert errors == []
            result = page.call("Runtime.evaluate", expression=FITS)["result"]["value"]
            seen[width] = json.loads(result)
    for width, facts in seen.items():
        assert facts["scrollWidth"] <= facts["innerWidth"] == width, (width, facts)
        assert facts["wider"] == [], (width, facts["wider"])
        assert facts["folds"] == facts["sections"] >= 8
        assert facts["rawMarkdown"] == []
    verdict = seen[800]["verdict"]
    assert verdict["left"] >= 0 and verdict["right"] <= 800 and 0 <= verdict["top"] < 900, verdict


def _bench_file(path: Path, cpu: str, cores: int, when: str, ratios: dict[str, float]) -> None:
    """A pytest-benchmark file of ``cpu``: one benchmark per ratio (name -> median), each with
    its target, as bench/conftest.py writes them."""
    benches = [
        {
            "name": name,
            "fullname": f"bench/test_x.py::{name}",
            "group": "g",
            "stats": {"median": 0.001},
            "extra_info": {
                "ratios": {"speedup_over_loop": {"median": m, "q1": m - 0.1, "q3": m + 0.1}},
                "target": {"speedup_over_loop": 2.0},
            },
        }
        for name, m in ratios.items()
    ]
    info = {"node": "bench-host", "cpu": {"brand_raw": cpu, "count": cores}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine_info": info, "datetime": when, "benchmarks": benches}))


def test_benchmarks_of_another_machine_say_so_and_one_point_histories_are_text(tmp_path):
    from mnist_suite.envinfo import machine_info

    here = machine_info()
    bench = tmp_path / "bench"
    _bench_file(bench / "latest.json", "Imaginary CPU 9000", 64, "2026-01-03T00:00:00", {"a": 3})
    for day, ratios in ((1, {"a": 2.5}), (2, {"a": 2.8}), (3, {"a": 3.0, "b": 4.0})):
        when = f"2026-01-0{day}T00:00:00"
        _bench_file(bench / "history" / f"run{day}.json", "Imaginary CPU 9000", 64, when, ratios)
    (tmp_path / "runs").mkdir()
    results = build_report(tmp_path / "runs", bench, tmp_path / "reports")
    sections = {s["key"]: s for s in results["sections"]}
    another = "another machine: Imaginary CPU 9000, 64 cores, node bench-host (this one: "
    another += f"{here['cpu']}, {here['cores']} cores)"
    titles = [t["title"] for t in sections["answer"]["tables"] + sections["benchmarks"]["tables"]]
    assert f"Benchmark targets (newest file, measured on {another})" in titles
    assert f"Targets met in latest.json, measured on {another}" in titles
    html = (tmp_path / "reports" / "index.html").read_text()
    assert another in html and another in (tmp_path / "reports" / "index.md").read_text()
    # "a" has three stored runs: a panel; "b" one: a line of text, no panel with one dot.
    assert "figures/bench-history.png" in sections["benchmarks"]["figures"]
    (single,) = [n for n in sections["benchmarks"]["notes"] if n.startswith("Only one stored")]
    assert "b speedup_over_loop 4.000 (target 2.000)" in single and " a speedup" not in single

    _bench_file(bench / "latest.json", here["cpu"], here["cores"], "2026-01-04T00:00:00", {"a": 3})
    for day in (1, 2):
        (bench / "history" / f"run{day}.json").unlink()
    results = build_report(tmp_path / "runs", bench, tmp_path / "reports")
    sections = {s["key"]: s for s in results["sections"]}
    assert sections["answer"]["tables"][1]["title"] == (
        f"Benchmark targets (newest file, measured on this machine's CPU ({here['cpu']}, "
        f"{here['cores']} cores))"
    )
    assert "figures/bench-history.png" not in sections["benchmarks"]["figures"]  # 1 point each
    (single,) = [n for n in sections["benchmarks"]["notes"] if n.startswith("Only one stored")]
    assert "a speedup_over_loop 3.000" in single and "b speedup_over_loop 4.000" in single
