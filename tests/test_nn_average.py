"""WeightAverage: the written-out recurrence, swapping in and out, reset."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.nn import WeightAverage


def test_average_follows_the_recurrence_and_swaps_back():
    w, b = np.zeros((2, 3)), np.zeros(2)
    avg = WeightAverage([w, b], decay=0.9)
    expected = 0.0
    for step in range(1, 6):
        w += 1.0  # an optimiser step in place
        b -= 2.0
        avg.update()
        expected = 0.9 * expected + 0.1 * step
    with avg.swapped():
        np.testing.assert_allclose(w, expected, rtol=1e-12)
        np.testing.assert_allclose(b, -2 * expected, rtol=1e-12)
    np.testing.assert_array_equal(w, 5.0)  # the live weights are back
    np.testing.assert_array_equal(b, -10.0)


def test_decay_zero_is_the_last_iterate_and_reset_restarts():
    w = np.arange(4.0)
    avg = WeightAverage([w], decay=0.0)
    w *= 3
    avg.update()
    np.testing.assert_array_equal(avg.average[0], w)
    avg = WeightAverage([w], decay=0.99)
    w += 1
    avg.reset()
    np.testing.assert_array_equal(avg.average[0], w)


def test_swap_restores_even_on_error():
    w = np.ones(3)
    avg = WeightAverage([w], decay=0.5)
    avg.average[0][:] = 7
    with pytest.raises(RuntimeError), avg.swapped():
        raise RuntimeError
    np.testing.assert_array_equal(w, 1.0)


def test_bad_decay_is_rejected():
    with pytest.raises(ValueError, match="decay=1"):
        WeightAverage([np.zeros(2)], decay=1)
