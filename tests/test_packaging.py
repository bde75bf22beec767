"""The package as a user installs it: `pip install .` without the tf extra runs the NumPy jobs,
the report and the CLI's habits, and refuses a TensorFlow job in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_metadata_license_and_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    # A license expression (license = "MIT") needs setuptools >= 77.
    assert any(r.replace(" ", "") == "setuptools>=77" for r in build)
    meta = project["project"]
    assert meta["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert not [d for d in meta["dependencies"] if d.startswith("tensorflow")]
    assert {d.split(">")[0] for d in meta["optional-dependencies"]["tf"]} == {
        "tensorflow-cpu",
        "tensorflow",
    }
    assert {"Homepage", "Documentation", "Source"} <= set(meta["urls"])


@pytest.mark.slow
@pytest.mark.network
def test_pip_install_without_tensorflow_runs_numpy_jobs_and_the_report(tmp_path, mnist):
    venv = tmp_path / "venv"
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(ROOT)]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)]
    subprocess.run(install, check=True, timeout=900)
    python, cli = str(venv / "bin" / "python"), str(venv / "bin" / "mnist-suite")
    probe = subprocess.run([python, "-c", "import tensorflow"], capture_output=True)
    assert probe.returncode != 0, "the base install must not bring TensorFlow"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([cli, *argv], capture_output=True, text=True, timeout=600)

    runs, out = tmp_path / "runs", tmp_path / "report"
    done = run("run", "mlp-fast", "--profile", "quick", "--runs", str(runs))
    assert done.returncode == 0, done.stderr
    report = run(
        "report", "--runs", str(runs), "--bench", str(tmp_path / "none"), "--out", str(out)
    )
    assert report.returncode == 0, report.stderr
    assert (out / "index.html").is_file() and (out / "results.json").is_file()
    refused = run("run", "sgd-original", "--profile", "quick", "--runs", str(runs))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "mnist-suite[tf]" in refused.stderr
    assert not (runs / "sgd-original").exists()
