"""mnist-suite: reproduce, compare and benchmark classic MNIST models on a CPU.

The Python API (docs/api.md): :func:`load_runs`, :func:`runs_dataframe`, :func:`summaries`
and :func:`compare` read runs folders as the command line does. They are imported when first
used, so ``import mnist_suite`` loads neither NumPy, TensorFlow nor pandas.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mnist-suite")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "compare", "load_runs", "runs_dataframe", "summaries"]
_API = ("load_runs", "runs_dataframe", "summaries")


def __getattr__(name: str):
    import importlib

    if name in _API:
        return getattr(importlib.import_module("mnist_suite.api"), name)
    if name == "compare":
        # The module mnist_suite.compare is callable as the API's compare (the package's
        # attribute and the module share the name, and importing the module sets it).
        return importlib.import_module("mnist_suite.compare")
    raise AttributeError(f"module 'mnist_suite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
