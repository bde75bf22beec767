"""IDX parsing on generated files, including corrupted ones."""

import gzip

import numpy as np
import pytest

from mnist_suite.data.idx import parse_idx, read_idx, to_idx
from mnist_suite.errors import DataError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_every_type(dtype):
    a = (np.random.default_rng(0).standard_normal((3, 4, 5)) * 100).astype(dtype)
    back = parse_idx(to_idx(a))
    assert back.dtype == np.dtype(dtype) and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_header_is_big_endian():
    raw = to_idx(np.zeros((2, 70000), np.uint8)[:, :3])
    assert raw[:4] == bytes([0, 0, 0x08, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert parse_idx(to_idx(np.array([1, 256, -2], np.int32))).tolist() == [1, 256, -2]


def test_gzip_detected_by_content_not_name(tmp_path):
    a = np.arange(60, dtype=np.uint8).reshape(3, 20)
    plain, packed = tmp_path / "plain.gz", tmp_path / "packed"
    plain.write_bytes(to_idx(a))
    packed.write_bytes(gzip.compress(to_idx(a)))
    np.testing.assert_array_equal(read_idx(plain), a)
    np.testing.assert_array_equal(read_idx(packed), a)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw[:3], "too short"),
        (lambda raw: b"\x00\x01" + raw[2:], "bad IDX magic"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "bad IDX magic"),
        (lambda raw: raw[:3] + b"\x00" + raw[4:], "0 dimensions"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing bytes"),
        (lambda raw: gzip.compress(raw)[:-10], "gzip"),
    ],
)
def test_corrupted_files_give_one_line_errors(tmp_path, mutate, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mutate(to_idx(np.ones((4, 28, 28), np.uint8))))
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")
