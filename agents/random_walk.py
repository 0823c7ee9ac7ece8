"""Random walk over the embedding-size graph: CIESS's exploration move (paper §2.2, Eqs. 12–13).

The nodes are the integer sizes ``d_min..d_max``. Node ``d`` is linked to every ``d' ≠ d`` with
``|d − d'| ≤ t`` that lies inside ``[d_min, d_max]`` (reconstructed Eq. 12, ``t = 5``), and a step
moves to a neighbour with probability proportional to the inverse distance (reconstructed
Eq. 13, the reference code's choice):

    P(d → d') = (1/|d − d'|) / Σ_{d'' ∈ A_d} 1/|d − d''|.

Differences from the CIESS reference code (``yorkequ98/CIESS``):

1. Near the ends of the range the reference pads missing neighbours with a huge dummy id that
   gets an almost-zero probability. Here a missing neighbour simply does not exist: the
   probability is normalised over the neighbours that do, so sizes 1 and 128 have five
   neighbours each and no padding bias.
2. The reference walks entity by entity in Python. Here the neighbour table and the cumulative
   transition probabilities are built once per ``(d_min, d_max, t)``; one walk step for every
   entity is a single uniform draw per entity plus a comparison against at most ``2t``
   cumulative probabilities (an inverse-CDF lookup), vectorised over entities
   (``benchmarks/results/random_walk.md`` has the timings).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ciess_env.errors import InvalidArgumentError
from ciess_env.spaces import validate_size_range

__all__ = ["WalkTables", "random_walk", "transition_matrix", "walk_tables"]


class WalkTables(NamedTuple):
    """Precomputed lookup tables of the size graph, indexed by the current size.

    Attributes:
        neighbours: (d_max + 1, 2t) int64; row ``d`` lists ``d − t, …, d − 1, d + 1, …, d + t``.
            Entries outside ``[d_min, d_max]`` hold ``d`` itself and have probability 0.
        probs: (d_max + 1, 2t) float64 transition probabilities; each row ``d ∈ [d_min, d_max]``
            sums to 1, rows below ``d_min`` are all 0.
        cumulative: (d_max + 1, 2t) float64 cumulative probabilities along each row, set to
            exactly 1 from the last existing neighbour on, so that a uniform draw ``u ∈ [0, 1)``
            always lands on an existing neighbour.
    """

    neighbours: np.ndarray
    probs: np.ndarray
    cumulative: np.ndarray


def _check_graph_args(d_min: int, d_max: int, threshold: int) -> None:
    validate_size_range(d_min, d_max)
    if not isinstance(threshold, int | np.integer) or threshold < 1:
        msg = f"`threshold` must be a positive integer, got {threshold!r}."
        raise InvalidArgumentError(msg)


@functools.lru_cache(maxsize=16)
def walk_tables(d_min: int = 1, d_max: int = 128, threshold: int = 5) -> WalkTables:
    """Build (once, then cache) the neighbour and transition tables of the size graph.

    Args:
        d_min: Smallest size (paper: 1).
        d_max: Largest size (paper: 128).
        threshold: Largest step ``t`` between neighbours (paper: 5, Eq. 12).

    Returns:
        Read-only :class:`WalkTables`.

    Raises:
        ValueError: if the size range breaks :func:`ciess_env.spaces.validate_size_range`
            (``d_min == d_max`` is allowed: the walk then stays put) or ``threshold < 1``.
    """
    _check_graph_args(d_min, d_max, threshold)
    d_min, d_max, threshold = int(d_min), int(d_max), int(threshold)
    offsets = np.concatenate([np.arange(-threshold, 0), np.arange(1, threshold + 1)])
    sizes = np.arange(d_max + 1)[:, None]
    candidates = sizes + offsets[None, :]
    exists = (candidates >= d_min) & (candidates <= d_max) & (sizes >= d_min)
    neighbours = np.where(exists, candidates, sizes)
    weights = np.where(exists, 1.0 / np.abs(offsets)[None, :], 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    probs = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    cumulative = np.cumsum(probs, axis=1)
    # From the last existing neighbour on, the CDF is exactly 1 (no rounding gap below 1 that a
    # draw could fall into and select a non-existent neighbour).
    last = (exists.shape[1] - 1) - np.argmax(exists[:, ::-1], axis=1)
    cumulative[np.arange(exists.shape[1])[None, :] >= last[:, None]] = 1.0
    for table in (neighbours, probs, cumulative):
        table.setflags(write=False)
    return WalkTables(neighbours=neighbours, probs=probs, cumulative=cumulative)


def transition_matrix(d_min: int = 1, d_max: int = 128, threshold: int = 5) -> np.ndarray:
    """Dense transition matrix of the walk, for tests and notebooks.

    Args:
        d_min: Smallest size.
        d_max: Largest size.
        threshold: Largest step ``t`` between neighbours.

    Returns:
        (n, n) float64 with ``n = d_max − d_min + 1``; entry ``[i, j]`` is the probability of
        moving from size ``d_min + i`` to size ``d_min + j``. Rows sum to 1, the diagonal is 0.
    """
    tables = walk_tables(d_min, d_max, threshold)
    n = d_max - d_min + 1
    rows = np.repeat(np.arange(d_min, d_max + 1), tables.neighbours.shape[1])
    cols = tables.neighbours[d_min:].ravel()
    matrix = np.zeros((n, n))
    np.add.at(matrix, (rows - d_min, cols - d_min), tables.probs[d_min:].ravel())
    return matrix


def random_walk(
    start_sizes: np.ndarray,
    *,
    d_min: int = 1,
    d_max: int = 128,
    threshold: int = 5,
    n_steps: int = 5,
    rng: np.random.Generator,
) -> np.ndarray:
    """Walk ``n_steps`` steps from every start size at once; return the visited sizes.

    The candidate set of paper Eq. 14 is the start plus every visited node (revisits allowed),
    so with the paper's 5 steps each entity gets 6 candidates for the critic to score.

    Args:
        start_sizes: (n,) integer sizes in ``[d_min, d_max]`` (whole-valued floats are accepted).
        d_min: Smallest size.
        d_max: Largest size.
        threshold: Largest step ``t`` between neighbours (paper: 5).
        n_steps: Walk length (paper: 5).
        rng: Source of the uniform draws (one per entity per step).

    Returns:
        (n, n_steps + 1) int64; column 0 is the start, column ``k`` the size after ``k`` steps.

    Raises:
        ValueError: on a start size that is not a whole number in ``[d_min, d_max]``, a
            non-1-D ``start_sizes``, or a negative ``n_steps``.
    """
    tables = walk_tables(d_min, d_max, threshold)
    start = np.asarray(start_sizes)
    if start.ndim != 1:
        msg = f"`start_sizes` must be 1-D (one size per entity), got shape {start.shape}."
        raise InvalidArgumentError(msg)
    if start.size and (
        not np.all(start == np.round(start)) or start.min() < d_min or start.max() > d_max
    ):
        msg = (
            f"`start_sizes` must be whole numbers in [{d_min}, {d_max}], "
            f"got values in [{start.min()}, {start.max()}]."
        )
        raise InvalidArgumentError(msg)
    if not isinstance(n_steps, int | np.integer) or n_steps < 0:
        msg = f"`n_steps` must be a non-negative integer, got {n_steps!r}."
        raise InvalidArgumentError(msg)
    path = np.empty((start.size, n_steps + 1), dtype=np.int64)
    path[:, 0] = start
    draws = rng.random((n_steps, start.size))
    rows = np.arange(start.size)
    current = path[:, 0]
    for step in range(n_steps):
        # Inverse-CDF lookup: the chosen column is the number of cumulative probabilities ≤ u.
        column = (draws[step][:, None] >= tables.cumulative[current]).sum(axis=1)
        current = tables.neighbours[current, column]
        path[rows, step + 1] = current
    return path
