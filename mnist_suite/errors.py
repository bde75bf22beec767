"""Errors by kind, and the exit code each kind ends a command with.

The library raises :class:`ParameterError` for a value out of its range (a ``ValueError``, as
scikit-learn's ``InvalidParameterError``), :class:`DataError` for data it cannot read or trust,
:class:`MachineError` when a read or write fails for a reason of the machine,
:class:`RunIOError` when a run folder cannot be written; the command line adds the flag that
carried the value and maps each kind to one line on stderr and an exit code of the table below.
"""

import errno

# One table of exit codes for the command line and every launcher.
EXIT_OK = 0
EXIT_FAILED = 1  # a run failed, a regression, a fault of the machine (full disk, I/O error)
EXIT_USAGE = 2  # bad usage, configuration, path or data: nothing ran
EXIT_DIVERGED = 3  # a single run diverged (in a batch divergence is a result)
EXIT_INCONCLUSIVE = 4  # bisect: a step compare could not judge (too few seeds, …)
EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGHUP = 130, 143, 129  # 128 + the signal that stopped it
EXIT_SIGNALS = (EXIT_SIGINT, EXIT_SIGTERM, EXIT_SIGHUP)
EXIT_RESULTS = (EXIT_OK, EXIT_DIVERGED)  # an item that ran to a result, done or diverged


class SuiteError(Exception):
    """Something the user can fix: bad data, a bad override, a bad path.

    The CLI prints ``error: <message>`` on one line and exits with the kind's :attr:`exit_code`
    (2 here: nothing ran), without a traceback.
    """

    exit_code = EXIT_USAGE


class DataError(SuiteError):
    """MNIST could not be found, read or verified."""


class ConfigError(SuiteError):
    """A job name, profile, override, plan or path given to a command is invalid."""


class MachineError(SuiteError):
    """A read or write failed for a reason of the machine, not of the usage: a full disk, an I/O
    error, a read-only mount, too many open files, the suite's own folder refused to it.
    """

    exit_code = EXIT_FAILED


class RevisionError(SuiteError):
    """A revision whose runs could not be made (exit 1: a failure, not a usage error)."""

    exit_code = EXIT_FAILED


# The OS's reasons that say a path a user gave is not what it should be: missing, a folder or a
# file where the other belongs, a link loop, a name too long, not this user's to open, a FIFO
# nobody writes. Any other reason (ENOSPC, EIO, EROFS, EMFILE, ENOMEM, ...) is the machine's.
PATH_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EACCES,
        errno.EPERM,
        errno.ENXIO,
        errno.EINVAL,  # mnist_suite.files.read_bounded: not a regular file
        errno.EEXIST,  # mnist_suite.files: exists and is not a regular file
    }
)


def path_error(exc: BaseException, message: str, kind: type[SuiteError]) -> SuiteError:
    """``kind(message)`` when ``exc``, met reading or writing a path a user gave, says the path
    is wrong (:data:`PATH_ERRNOS`) or is no OS error at all (a bad zip or gzip header, a
    format's complaint, ``errno`` None); else a :class:`MachineError` with the same message:
    bad input exits 2, a machine fault 1."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno not in PATH_ERRNOS:
        return MachineError(message)
    return kind(message)


class ParameterError(ValueError):
    """A library parameter out of its range or of the wrong kind (``lr=-1``, an unknown name).

    A ``ValueError``: library callers catch it as one; the command line reports it as bad usage.
    """


class RunIOError(OSError):
    """A run folder could not be claimed, cleared or written (full disk, read-only mount).

    A fault of the machine, not of the usage: the command line exits 1.
    """


class Diverged(Exception):
    """Training produced a non-finite loss; the run stops and is recorded as ``diverged``.

    Parameters
    ----------
    step : int
        The global step whose loss was not finite.
    loss : float
        The offending value (nan or inf).
    """

    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss
