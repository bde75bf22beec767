"""Exceptions the command line turns into one-line messages and exit codes."""


class SuiteError(Exception):
    """Something the user can fix: bad data, a bad override, a bad path.

    The CLI prints ``error: <message>`` on one line and exits non-zero, without a traceback.
    """


class DataError(SuiteError):
    """MNIST could not be found, read or verified."""


class ConfigError(SuiteError):
    """A job name, profile, override or hyperparameter is invalid."""


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
