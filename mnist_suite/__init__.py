"""mnist-suite: reproduce, compare and benchmark classic MNIST models on a CPU."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mnist-suite")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
