"""Property-based tests (hypothesis): readers, the action-to-size map and the per-user split.

Readers get random well-formed files (they must give back exactly the pairs written) and the
same files with one random defect on a random line (they must raise a DataFormatError naming
that line). Each property runs a bounded number of examples so the module stays well under a
minute on two cores.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciess_env.data import read_lightgcn, read_ml1m_ratings, read_ml100k, read_table
from ciess_env.data.split import per_user_quotas, split_per_user
from ciess_env.errors import DataFormatError
from ciess_env.spaces import action_to_sizes, sizes_to_action

INT64_MAX = 2**63 - 1
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

ids = st.one_of(st.integers(0, 50), st.integers(0, INT64_MAX))
pairs = st.lists(st.tuples(ids, ids), min_size=1, max_size=25)


@pytest.fixture(scope="module")
def folder() -> Path:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _dedup(rows: list[tuple[int, int]]) -> list[list[int]]:
    seen, out = set(), []
    for row in rows:
        if row not in seen:
            seen.add(row)
            out.append(list(row))
    return out


# ---------------------------------------------------------------- CSV / TSV tables
extra_fields = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.text(alphabet="ab ,;\t", max_size=6).map(lambda t: '"' + t + '"'),
    st.just(""),
)
SEPARATORS = {",": "x.csv", "\t": "x.tsv", ";": "x.txt"}


@st.composite
def tables(draw):
    """(separator, file name, header, rows as token lists, the (user, item) pairs)."""
    sep = draw(st.sampled_from(sorted(SEPARATORS)))
    rows = draw(pairs)
    n_extra = draw(st.integers(0, 2))
    header = ["uid", "iid"] + [f"extra{k}" for k in range(n_extra)]
    order = draw(st.permutations(range(len(header))))
    lines = []
    for u, i in rows:
        tokens = [str(u), str(i)] + [draw(extra_fields) for _ in range(n_extra)]
        lines.append([tokens[k] for k in order])
    return sep, SEPARATORS[sep], [header[k] for k in order], lines, rows


def _text(sep: str, header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(sep.join(tokens) for tokens in [header, *lines]) + "\n"


@FAST
@given(table=tables())
def test_well_formed_tables_give_back_exactly_the_pairs(folder, table):
    """Any separator, column order, quoted extras, ids up to 2**63 - 1: pairs round-trip."""
    sep, name, header, lines, rows = table
    path = folder / name
    path.write_text(_text(sep, header, lines))
    df = read_table(path, user_col="uid", item_col="iid")
    assert df.values.tolist() == _dedup(rows)
    assert df.dtypes.tolist() == [np.int64, np.int64]


BAD_IDS = ["1e3", "2.5", "-1", "x", "", str(INT64_MAX + 1), str(10**30), "1.0"]


@st.composite
def defects(draw, n_lines: int, n_fields: int, id_positions: list[int]):
    """(line index, kind, detail): one defect to plant in a file of ``n_lines`` data lines."""
    row = draw(st.integers(0, n_lines - 1))
    kind = draw(st.sampled_from(["more", "fewer", "bad_id"] if n_fields > 1 else ["more"]))
    if kind == "bad_id":
        return row, kind, (draw(st.sampled_from(id_positions)), draw(st.sampled_from(BAD_IDS)))
    return row, kind, None


def _plant(tokens: list[str], kind: str, detail) -> list[str]:
    if kind == "more":
        return [*tokens, "7"]
    if kind == "fewer":
        return tokens[:-1]
    pos, bad = detail
    return [*tokens[:pos], bad, *tokens[pos + 1 :]]


@FAST
@given(table=tables(), data=st.data())
def test_one_defect_on_any_line_is_named(folder, table, data):
    """A long/short row or a bad id (float notation, > int64, negative, text) names its line."""
    sep, name, header, lines, _ = table
    id_positions = [header.index("uid"), header.index("iid")]
    row, kind, detail = data.draw(defects(len(lines), len(header), id_positions))
    lines[row] = _plant(lines[row], kind, detail)
    path = folder / name
    path.write_text(_text(sep, header, lines))
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line {row + 2}: ")):
        read_table(path, user_col="uid", item_col="iid")


# ------------------------------------------------------------ ratings.dat / u.data
rating_rows = st.lists(
    st.tuples(ids, ids, st.integers(1, 5), st.integers(0, 2**40)), min_size=1, max_size=20
)


@FAST
@given(rows=rating_rows, ml1m=st.booleans(), data=st.data())
def test_rating_files_round_trip_and_name_a_planted_defect(folder, rows, ml1m, data):
    """ratings.dat ('::') and u.data (tab) read back exactly; one defect names its line."""
    sep, reader = ("::", read_ml1m_ratings) if ml1m else ("\t", read_ml100k)
    lines = [[str(v) for v in row] for row in rows]
    path = folder / ("ratings.dat" if ml1m else "u.data")
    path.write_text("\n".join(sep.join(t) for t in lines) + "\n")
    df = reader(path)
    assert df[["user", "item"]].values.tolist() == _dedup([(u, i) for u, i, _, _ in rows])
    row, kind, detail = data.draw(defects(len(lines), 4, [0, 1]))  # ids: negatives refused too
    lines[row] = _plant(lines[row], kind, detail)
    path.write_text("\n".join(sep.join(t) for t in lines) + "\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line {row + 1}: ")):
        reader(path)


# --------------------------------------------------------------------- LightGCN
lightgcn_lines = st.lists(
    st.tuples(ids, st.lists(ids, max_size=6)), min_size=1, max_size=15
).filter(lambda lines: any(items for _, items in lines))


@FAST
@given(lines=lightgcn_lines, data=st.data())
def test_lightgcn_round_trips_and_names_a_bad_token(folder, lines, data):
    """Ragged 'user item ...' lines read back exactly; a bad token names its line."""
    text_lines = [" ".join(map(str, [u, *items])) for u, items in lines]
    path = folder / "train.txt"
    path.write_text("\n".join(text_lines) + "\n")
    expected = _dedup([(u, i) for u, items in lines for i in items])
    assert read_lightgcn(path).values.tolist() == expected
    row = data.draw(st.integers(0, len(lines) - 1))
    bad = data.draw(st.sampled_from(["1e3", "2.5", "-1", "x", str(INT64_MAX + 1), "9" * 25]))
    text_lines[row] = f"{text_lines[row]} {bad}"
    path.write_text("\n".join(text_lines) + "\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, line {row + 1}: ")):
        read_lightgcn(path)


# ------------------------------------------------------------ action -> size map
size_ranges = st.tuples(st.integers(1, 300), st.integers(0, 300)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    bounds=size_ranges,
    actions=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=40),
)
def test_action_to_sizes_is_monotone_in_range_and_inverted_by_sizes_to_action(bounds, actions):
    """Sizes stay in [d_min, d_max], never decrease with the action, and round-trip exactly."""
    d_min, d_max = bounds
    a = np.sort(np.asarray(actions))
    sizes = action_to_sizes(a, n=a.size, d_min=d_min, d_max=d_max)
    assert sizes.dtype == np.int64
    assert sizes.min() >= d_min
    assert sizes.max() <= d_max
    assert np.all(np.diff(sizes) >= 0)
    back = sizes_to_action(sizes, d_min=d_min, d_max=d_max)
    assert np.all(np.abs(back) <= 1)
    np.testing.assert_array_equal(action_to_sizes(back, n=a.size, d_min=d_min, d_max=d_max), sizes)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    bounds=size_ranges,
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    n=st.integers(1, 10),
    data=st.data(),
)
def test_action_to_sizes_refuses_non_finite_entries(bounds, bad, n, data):
    """A NaN/inf anywhere is an error, never a size."""
    action = np.zeros(n)
    action[data.draw(st.integers(0, n - 1))] = bad
    with pytest.raises(ValueError, match="must be finite"):
        action_to_sizes(action, n=n, d_min=bounds[0], d_max=bounds[1])


# --------------------------------------------------------------------- the split
ratio_triples = st.tuples(st.integers(1, 10), st.integers(0, 10), st.integers(0, 10)).map(
    lambda t: tuple(v / sum(t) for v in t)
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    interactions=st.lists(st.tuples(st.integers(0, 15), st.integers(0, 30)), max_size=200),
    ratios=ratio_triples,
    seed=st.integers(0, 2**32 - 1),
)
def test_split_is_a_seeded_partition_with_per_user_quotas(interactions, ratios, seed):
    """Disjoint, complete, each user within 1 of n·r per split, ≥ 1 train; same seed ⇒ same."""
    users = np.array([u for u, _ in interactions], dtype=np.int64)
    items = np.array([i for _, i in interactions], dtype=np.int64)
    parts = split_per_user(users, items, ratios=ratios, seed=seed)
    keys = [set(zip(p.users.tolist(), p.items.tolist(), strict=True)) for p in parts]
    assert sum(map(len, keys)) == len(keys[0] | keys[1] | keys[2])  # disjoint
    assert keys[0] | keys[1] | keys[2] == set(interactions)
    distinct = np.bincount(
        np.array([u for u, _ in set(interactions)], dtype=np.int64), minlength=16
    )
    got = np.stack([np.bincount(p.users, minlength=16) for p in parts], axis=1)
    np.testing.assert_array_equal(got, per_user_quotas(distinct, ratios))
    assert np.all(np.abs(got - distinct[:, None] * np.asarray(ratios)) < 1 + 1e-9)
    assert np.all(got[distinct > 0, 0] >= 1)
    again = split_per_user(users, items, ratios=ratios, seed=seed)
    for a, b in zip(parts, again, strict=True):
        np.testing.assert_array_equal(a.users, b.users)
        np.testing.assert_array_equal(a.items, b.items)
