"""Weights files: bit-identical round trip, the original's keys, clear errors for broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnist_suite.errors import DataError
from mnist_suite.nn import load_model, mlp, model_arrays, save_model


@pytest.fixture
def net():
    return mlp((784, 32, 16, 10), rng=np.random.default_rng(3), dropout=0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_identical(tmp_path, dtype):
    net = mlp((784, 32, 10), init="uniform", rng=np.random.default_rng(1), dtype=dtype)
    path = save_model(tmp_path / "w.npz", net)
    loaded = load_model(path)
    assert repr(loaded) == repr(net) and not loaded.training
    for a, b in zip(net.params, loaded.params, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    x = np.random.default_rng(2).random((50, 784)).astype(dtype)
    assert net.train(False).forward(x).tobytes() == loaded.forward(x).tobytes()


def test_keys_are_the_seeds_plus_the_architecture(tmp_path, net):
    save_model(tmp_path / "w.npz", net)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["W1", "W2", "W3", "architecture", "b1", "b2", "b3"]
        assert f["W1"].shape == (32, 784) and f["architecture"].dtype.kind == "U"
    assert "Dropout(p=0.1)" in repr(load_model(tmp_path / "w.npz"))


def write(path, arrays):
    np.savez(path, **arrays)
    return path


def test_missing_key(tmp_path, net):
    arrays = model_arrays(net)
    del arrays["b2"]
    with pytest.raises(DataError, match=r"missing b2 .*needs 3 Linear layers"):
        load_model(write(tmp_path / "w.npz", arrays))


def test_misshaped_key(tmp_path, net):
    arrays = model_arrays(net)
    arrays["W2"] = np.zeros((16, 31), np.float32)
    with pytest.raises(
        DataError, match=r"W2 has shape \(16, 31\) float32, expected \(16, 32\) float32"
    ):
        load_model(write(tmp_path / "w.npz", arrays))


def test_wrong_dtype(tmp_path, net):
    arrays = model_arrays(net)
    arrays["b1"] = arrays["b1"].astype(np.float64)
    with pytest.raises(DataError, match=r"b1 has shape \(32,\) float64, expected \(32,\) float32"):
        load_model(write(tmp_path / "w.npz", arrays))


def test_unexpected_key(tmp_path, net):
    arrays = model_arrays(net) | {"W4": np.zeros((10, 10), np.float32)}
    with pytest.raises(DataError, match="unexpected keys W4"):
        load_model(write(tmp_path / "w.npz", arrays))


def test_seed_style_file_without_architecture(tmp_path):
    arrays = {"W1": np.zeros((10, 784)), "b1": np.zeros(10), "W2": np.zeros((10, 10))}
    with pytest.raises(DataError, match="no 'architecture' key \\(keys: W1, b1, W2\\)"):
        load_model(write(tmp_path / "w.npz", arrays))


def test_not_an_npz_and_pickles_refused(tmp_path, net):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz weights file"):
        load_model(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="not a readable"):
        load_model(tmp_path / "absent.npz")
    arrays = model_arrays(net) | {"W1": np.array([{"evil": 1}], dtype=object)}
    with pytest.raises(DataError, match=r"not a readable .*allow_pickle"):
        load_model(write(tmp_path / "pickled.npz", arrays))


def test_broken_architecture(tmp_path, net):
    arrays = model_arrays(net)
    arch = json.loads(str(arrays["architecture"]))
    del arch["layers"][0]["in"]
    arrays["architecture"] = np.array(json.dumps(arch))
    with pytest.raises(DataError, match="unreadable layer in the architecture"):
        load_model(write(tmp_path / "w.npz", arrays))
    arch["layers"][0] = {"type": "Conv2d"}
    arrays["architecture"] = np.array(json.dumps(arch))
    with pytest.raises(DataError, match="unknown layer"):
        load_model(write(tmp_path / "w.npz", arrays))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, net, bad):
    """A diverged model would answer every image, "with probability nan": refused at load."""
    arrays = model_arrays(net)
    arrays["W2"] = arrays["W2"].copy()
    arrays["W2"][3, 5] = bad
    with pytest.raises(DataError, match=r"W2 holds 1 NaN or infinite values; not a usable model"):
        load_model(write(tmp_path / "w.npz", arrays))
    arrays = model_arrays(net)
    arrays["b3"] = np.full_like(arrays["b3"], bad)
    with pytest.raises(DataError, match=r"b3 holds 10 NaN or infinite values"):
        load_model(write(tmp_path / "w.npz", arrays))
