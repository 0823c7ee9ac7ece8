"""Tiny hand-made data sets for the backbone tests (built directly, no loader needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ciess_env.data.interactions import InteractionData, Interactions


def make_clustered(
    n_users: int = 120, n_items: int = 100, n_groups: int = 4, seed: int = 0
) -> InteractionData:
    """Users and items in ``n_groups`` groups; users mostly like items of their own group.

    Items are equally popular by construction, so a popularity ranking is close to random
    while any collaborative model can learn the groups.
    """
    rng = np.random.default_rng(seed)
    ug = rng.integers(n_groups, size=n_users)
    ig = np.arange(n_items) % n_groups
    prob = np.where(ug[:, None] == ig[None, :], 0.35, 0.02)
    users, items = np.nonzero(rng.random((n_users, n_items)) < prob)
    part = rng.random(users.shape[0])
    pick = [part < 0.5, (part >= 0.5) & (part < 0.75), part >= 0.75]
    train, val, test = (Interactions.from_arrays(users[m], items[m]) for m in pick)
    return InteractionData(
        name=f"clustered-{seed}",
        n_users=n_users,
        n_items=n_items,
        train=train,
        validation=val,
        test=test,
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
    )


@pytest.fixture(scope="session")
def clustered_data() -> InteractionData:
    """120 users × 100 items in 4 taste groups, split 50/25/25 at random."""
    return make_clustered()


@pytest.fixture(scope="session")
def clustered_factory():
    """The builder itself, for tests that need other shapes or seeds."""
    return make_clustered
