import re

import numpy as np
import pytest

from agents.random_walk import random_walk, transition_matrix, walk_tables


def test_interior_size_links_to_sizes_within_threshold_except_itself():
    """Size 64 moves only to 59..63 and 65..69 (t = 5)."""
    row = transition_matrix(1, 128, 5)[64 - 1]
    assert set(np.flatnonzero(row) + 1) == {59, 60, 61, 62, 63, 65, 66, 67, 68, 69}


def test_transition_probability_is_inverse_distance_normalised():
    """P(3 → d') = (1/|3 − d'|) / Σ over the existing neighbours 1, 2, 4..8."""
    row = transition_matrix(1, 128, 5)[3 - 1]
    neighbours = np.array([1, 2, 4, 5, 6, 7, 8])
    weights = 1.0 / np.abs(neighbours - 3)
    np.testing.assert_allclose(row[neighbours - 1], weights / weights.sum())
    assert row.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("size", "neighbours"), [(1, [2, 3, 4, 5, 6]), (128, [127, 126, 125, 124, 123])]
)
def test_edge_sizes_normalise_over_existing_neighbours_only(size, neighbours):
    """Sizes 1 and 128 have five neighbours with probabilities ∝ 1, 1/2, …, 1/5 (no padding)."""
    row = transition_matrix(1, 128, 5)[size - 1]
    weights = 1.0 / np.arange(1, 6)
    np.testing.assert_allclose(row[np.array(neighbours) - 1], weights / weights.sum())
    assert np.count_nonzero(row) == 5


def test_transition_matrix_rows_sum_to_one_with_zero_diagonal():
    """Every size moves somewhere else with total probability 1, also for a shifted range."""
    for d_min, d_max, t in [(1, 128, 5), (3, 10, 2), (1, 2, 5)]:
        matrix = transition_matrix(d_min, d_max, t)
        assert matrix.shape == (d_max - d_min + 1,) * 2
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
        assert np.all(np.diag(matrix) == 0)


def test_walk_returns_start_plus_visited_sizes_in_range():
    """The walk is (n, n_steps + 1): column 0 the start, each step to a neighbour in range."""
    rng = np.random.default_rng(0)
    start = np.r_[1, 128, rng.integers(1, 129, 998)]
    path = random_walk(start, n_steps=5, rng=rng)
    assert path.shape == (1000, 6)
    assert path.dtype == np.int64
    np.testing.assert_array_equal(path[:, 0], start)
    assert path.min() >= 1
    assert path.max() <= 128
    jumps = np.abs(np.diff(path, axis=1))
    assert jumps.min() >= 1
    assert jumps.max() <= 5


@pytest.mark.parametrize("start", [1, 64, 128])
def test_walk_step_frequencies_match_transition_matrix(start):
    """One step from a fixed size lands on each neighbour with the tabulated probability."""
    n = 40_000
    path = random_walk(np.full(n, start), n_steps=1, rng=np.random.default_rng(1))
    freq = np.bincount(path[:, 1], minlength=129)[1:] / n
    # 4 standard errors of a binomial proportion at p ≤ 0.44
    np.testing.assert_allclose(freq, transition_matrix()[start - 1], atol=4 * 0.5 / np.sqrt(n))


def test_walk_is_reproducible_from_the_generator_seed():
    """The same seed gives the same walk; another seed gives another one."""
    start = np.arange(1, 129)
    a = random_walk(start, rng=np.random.default_rng(7))
    b = random_walk(start, rng=np.random.default_rng(7))
    c = random_walk(start, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_walk_tables_have_documented_shape_and_are_read_only():
    """The neighbour and CDF tables are (d_max + 1, 2t) and cannot be modified by callers."""
    tables = walk_tables(1, 128, 5)
    assert tables.neighbours.shape == tables.cumulative.shape == (129, 10)
    np.testing.assert_array_equal(tables.cumulative[1:, -1], 1.0)
    with pytest.raises(ValueError, match="read-only"):
        tables.cumulative[1, 0] = 0.5


def test_walk_rejects_start_outside_range():
    """A start size outside [d_min, d_max] is a ValueError that names the range."""
    msg = "`start_sizes` must be whole numbers in [1, 128], got values in [0, 5]."
    with pytest.raises(ValueError, match=re.escape(msg)):
        random_walk(np.array([0, 5]), rng=np.random.default_rng(0))
