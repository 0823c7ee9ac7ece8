"""The one rule for a size range ``[d_min, d_max]``, shared by every layer.

It lives in a leaf module (numpy and the error classes only) so that backbones, which sit
below the MDP, can check their range with the same rule as the env, the agents and the
baselines; the public name is :func:`ciess_env.spaces.validate_size_range`.
"""

from __future__ import annotations

import numpy as np

from ciess_env.errors import InvalidArgumentError

__all__ = ["validate_size_range"]


def validate_size_range(d_min: object, d_max: object) -> tuple[int, int]:
    """Check a size range and return it as two Python ints.

    The rule: both are integers (``int`` or a numpy integer, not ``bool``) with
    ``1 ≤ d_min ≤ d_max``. ``d_min == d_max`` is allowed: every entity then has the one size,
    the action space still has its shape, the random walk stays where it is, and the env
    degenerates into an evaluation of a fixed table (useful as a control).

    Args:
        d_min: Smallest size.
        d_max: Largest size.

    Returns:
        ``(int(d_min), int(d_max))``.

    Raises:
        ValueError: naming both values when the rule does not hold.
    """
    ints = all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (d_min, d_max))
    if not ints or not 1 <= d_min <= d_max:  # type: ignore[operator]
        msg = (
            "`d_min` and `d_max` must be integers with 1 <= d_min <= d_max, "
            f"got d_min={d_min!r}, d_max={d_max!r}."
        )
        raise InvalidArgumentError(msg)
    return int(d_min), int(d_max)  # type: ignore[call-overload]
