"""A fixed, structured set of size assignments for the fidelity studies (issue 14).

Every mask spends a budget of 80 / 90 / 95 % sparsity exactly (the baselines' rule:
``kept_budget`` then largest-remainder rounding), so masks at one budget differ only in how
they spend it. Families, per budget:

* ``ES`` — equal sizes; ``MDE`` — ``d ∝ f^0.3`` over both sides with one scale (the baseline);
  ``MR`` — uniform random sizes scaled to the budget (seeded);
* ``split a`` — the items get a share ``a`` of the budget (0.2 … 0.8), equal sizes within a
  side: *where* the budget goes between users and items;
* ``pop β`` — each side keeps its ES share, and within a side ``d ∝ f^β``
  (β ∈ {−0.5, −0.25, 0.25, 0.5, 1}): *who* gets it within a side;
* ``RW-TD3 …`` — masks taken from real RandomWalkTD3 search logs (added with
  ``fidelity_ground_truth.py --add-search``).

The set is committed as JSON (sizes base64-encoded as uint8), so the study's ground truth is
for exactly these masks, whatever later code changes do to the generators.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.baselines import EqualSize, MixedRandom, PopularityProportional
from ciess_env.budget import fit_to_budget, kept_budget, sparsity

BUDGETS = (0.8, 0.9, 0.95)
SPLITS = (0.2, 0.35, 0.5, 0.65, 0.8)
BETAS = (-0.5, -0.25, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Mask:
    """One size assignment of the fixed set."""

    name: str
    family: str
    budget: float
    user_sizes: np.ndarray
    item_sizes: np.ndarray

    @property
    def sparsity(self) -> float:
        """Achieved sparsity at d_max = 128."""
        return sparsity(self.user_sizes, self.item_sizes, 128)

    @property
    def digest(self) -> str:
        """sha256 of the sizes (first 12 hex digits): a cached result belongs to this mask."""
        h = hashlib.sha256(self.user_sizes.astype(np.uint8).tobytes())
        h.update(self.item_sizes.astype(np.uint8).tobytes())
        return h.hexdigest()[:12]


def _equal(total: int, n: int) -> np.ndarray:
    k, r = divmod(total, n)
    sizes = np.full(n, k, dtype=np.int64)
    if r:
        sizes[(np.arange(r) * n) // r] += 1
    return sizes


def structured_masks(
    user_freq: np.ndarray, item_freq: np.ndarray, *, d_max: int = 128, seed: int = 0
) -> list[Mask]:
    """ES, MDE, MR, user/item splits and per-side popularity powers at each budget."""
    n_u, n_i = len(user_freq), len(item_freq)
    masks: list[Mask] = []
    for c in BUDGETS:
        tag = f"{round(c * 100)}%"
        cap = kept_budget(c, n_u + n_i, d_max)

        def add(name: str, family: str, users: np.ndarray, items: np.ndarray) -> None:
            masks.append(Mask(f"{name} @{tag}", family, c, users.astype(np.int64),  # noqa: B023
                              items.astype(np.int64)))  # fmt: skip

        add("ES", "ES", *EqualSize(c, n_users=n_u, n_items=n_i, d_max=d_max).sizes())
        add("MDE", "MDE", *PopularityProportional(
            c, user_freq=user_freq, item_freq=item_freq, d_max=d_max).sizes())  # fmt: skip
        mr = MixedRandom(c, n_users=n_u, n_items=n_i, d_max=d_max, seed=seed + round(c * 100))
        add("MR", "MR", *mr.sizes())
        for a in SPLITS:
            item_cap = round(a * cap)
            add(f"split {a:g}", "split", _equal(cap - item_cap, n_u), _equal(item_cap, n_i))
        user_cap = round(cap * n_u / (n_u + n_i))
        for beta in BETAS:

            def side(freq: np.ndarray, total: int) -> np.ndarray:
                w = np.maximum(np.asarray(freq, np.float64), 1.0) ** beta  # noqa: B023
                return fit_to_budget(w, total, 1, d_max)

            add(f"pop {beta:g}", "pop", side(user_freq, user_cap), side(item_freq, cap - user_cap))
    return masks


def _enc(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, np.uint8).tobytes()).decode()


def _dec(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), np.uint8).astype(np.int64)


def save_masks(masks: list[Mask], path: Path, *, dataset: str) -> None:
    rows = [
        {"name": m.name, "family": m.family, "budget": m.budget, "sparsity": round(m.sparsity, 6),
         "digest": m.digest, "users": _enc(m.user_sizes), "items": _enc(m.item_sizes)}
        for m in masks
    ]  # fmt: skip
    path.write_text(json.dumps({"dataset": dataset, "d_max": 128, "masks": rows}, indent=0) + "\n")


def load_masks(path: Path) -> list[Mask]:
    payload = json.loads(path.read_text())
    out = []
    for r in payload["masks"]:
        m = Mask(r["name"], r["family"], float(r["budget"]), _dec(r["users"]), _dec(r["items"]))
        if m.digest != r["digest"]:
            msg = f"{path}: mask {r['name']!r} does not match its digest; the file is corrupt."
            raise ValueError(msg)
        out.append(m)
    return out
