"""Export → load round trips of served embeddings, and the loader's refusals (issue 32)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ciess_env.errors import CIESSError, InvalidArgumentError, InvalidTypeError
from ciess_env.export import (
    MANIFEST_FILE,
    TENSORS_FILE,
    ArtefactDamagedError,
    ArtefactNotFoundError,
    export,
    load,
)
from ciess_env.metrics import evaluate, evaluate_scores
from ciess_env.recommenders import TrainConfig, make_backbone, train_bpr

D_MAX = 16


@pytest.fixture(scope="module", params=["mf", "lightgcn", "ncf"])
def trained(request, tiny_data):
    """A briefly trained model with heterogeneous sizes (1 .. D_MAX, different per side)."""
    model = make_backbone(request.param, tiny_data, d_max=D_MAX, seed=3)
    rng = np.random.default_rng(0)
    model.set_sizes(
        rng.integers(1, D_MAX + 1, tiny_data.n_users),
        rng.integers(1, D_MAX // 2, tiny_data.n_items),
    )
    config = TrainConfig(n_batches=30, batch_size=256)
    train_bpr(model, tiny_data, config, seed=1)
    return model.eval()


@pytest.mark.parametrize("fmt", ["buckets", "ragged"])
def test_round_trip_reproduces_test_metrics(trained, tiny_data, tmp_path, fmt):
    reference = evaluate(trained, tiny_data, "test")
    folder = export(trained, tmp_path / "art", format=fmt, metadata={"dataset": "tiny"})
    served = load(folder)
    result = evaluate_scores(served.score, tiny_data, "test")
    assert result.recall(20) == pytest.approx(reference.recall(20), abs=1e-9)
    assert result.ndcg(20) == pytest.approx(reference.ndcg(20), abs=1e-9)
    # The scores themselves, not only the ranking metrics.
    trained.prepare_scoring()
    users = torch.arange(tiny_data.n_users)
    torch.testing.assert_close(served.score(users), trained.score(users), rtol=1e-5, atol=1e-6)
    trained.invalidate_scoring()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["format"] == fmt
    assert manifest["served"] == ("propagated" if trained.name == "lightgcn" else "input")
    assert manifest["scorer"] == ("neumf" if trained.name == "ncf" else "dot")
    assert manifest["metadata"] == {"dataset": "tiny"}
    assert sum(manifest["sizes"]["user"].values()) == tiny_data.n_users
    sizes = trained.user_sizes.numpy()
    assert manifest["sizes"]["user"] == {str(s): int((sizes == s).sum()) for s in np.unique(sizes)}


def test_mf_artefact_stores_only_the_kept_values(trained, tmp_path):
    """MF's and NCF's rows are stored at their mask size: Σ sizes floats, not n × d_max."""
    if trained.name == "lightgcn":
        pytest.skip("graph backbones serve dense propagated rows")
    folder = export(trained, tmp_path / "art", format="ragged")
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TENSORS_FILE))
    table = "mlp" if trained.name == "ncf" else "emb"
    assert tensors[f"user.{table}.values"].numel() == int(trained.user_sizes.sum())
    assert tensors[f"item.{table}.values"].numel() == int(trained.item_sizes.sum())
    buckets = load_file(str(export(trained, tmp_path / "b").joinpath(TENSORS_FILE)))
    prefix = f"user.{table}.w"
    widths = {int(k[len(prefix) :].split(".")[0]) for k in buckets if k.startswith(prefix)}
    assert widths == set(trained.user_sizes.unique().tolist())


def test_top_k_matches_the_model(trained, tiny_data, tmp_path):
    served = load(export(trained, tmp_path / "art"))
    users = torch.tensor([0, 5, 7])
    top = served.top_k(users, 5)
    assert top.shape == (3, 5)
    trained.prepare_scoring()
    expected = torch.topk(trained.score(users), 5).indices
    trained.invalidate_scoring()
    torch.testing.assert_close(
        served.score(users).gather(1, top), served.score(users).gather(1, expected)
    )
    with pytest.raises(InvalidArgumentError, match="`k` must be an integer in"):
        served.top_k(users, 0)
    with pytest.raises(InvalidArgumentError, match="`users` must lie in"):
        served.score([tiny_data.n_users])


@pytest.fixture
def artefact(tiny_data, tmp_path):
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    model.set_sizes(np.full(tiny_data.n_users, 3), np.full(tiny_data.n_items, 5))
    return export(model, tmp_path / "art")


def test_truncated_tensors_file_is_refused(artefact):
    path = artefact / TENSORS_FILE
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ArtefactDamagedError, match="truncated or altered"):
        load(artefact)


def test_wrong_checksum_is_refused(artefact):
    manifest = json.loads((artefact / MANIFEST_FILE).read_text())
    manifest["sha256"] = "0" * 64
    (artefact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtefactDamagedError, match="does not match its manifest"):
        load(artefact)


def test_missing_files_are_named(artefact, tmp_path):
    (artefact / TENSORS_FILE).unlink()
    with pytest.raises(ArtefactNotFoundError, match=r"embeddings\.safetensors is missing"):
        load(artefact)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load(tmp_path / "nowhere")
    (artefact / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(CIESSError, match=r"manifest\.json is damaged"):
        load(artefact)


def test_bad_format_unsupported_backbone_and_existing_folder(tiny_data, artefact, tmp_path):
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    with pytest.raises(InvalidArgumentError, match="`format` must be one of 'buckets', 'ragged'"):
        export(model, tmp_path / "x", format="csr")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        export(model, artefact)
    with pytest.raises(InvalidTypeError, match="`model` must be a ciess_env Backbone"):
        export(torch.nn.Linear(2, 2), tmp_path / "y")
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()


def test_a_manifest_naming_an_unknown_scorer_is_refused(artefact):
    manifest = json.loads((artefact / MANIFEST_FILE).read_text())
    manifest["scorer"] = "two-tower"
    (artefact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtefactDamagedError, match="unknown scorer 'two-tower'"):
        load(artefact)


def test_an_ncf_artefact_without_its_tower_is_refused(artefact):
    """An MF artefact relabelled as NCF lacks the tower tensors and its NCF tables."""
    manifest = json.loads((artefact / MANIFEST_FILE).read_text())
    manifest["scorer"] = "neumf"
    (artefact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtefactDamagedError, match="does not match its manifest"):
        load(artefact)


@pytest.mark.parametrize("fmt", ["buckets", "ragged"])
def test_int8_rows_are_within_half_a_quantisation_step(trained, tmp_path, fmt):
    """Row-wise int8 (FBGEMM-style codes, fp32 scale and bias per row) is within half a step.

    The codes are uint8, one per stored value, and every row comes back to within
    (row max − row min) / 510.
    """
    exact = load(export(trained, tmp_path / "f", format=fmt))
    folder = export(trained, tmp_path / "q", format=fmt, dtype="int8")
    quant = load(folder)
    assert json.loads((folder / MANIFEST_FILE).read_text())["dtype"] == "int8"
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TENSORS_FILE))
    codes = [v for k, v in tensors.items() if k.endswith((".table", ".values"))]
    assert codes
    assert all(c.dtype == torch.uint8 for c in codes)
    floats = load_file(str(export(trained, tmp_path / "f2", format=fmt).joinpath(TENSORS_FILE)))
    assert sum(c.numel() for c in codes) == sum(
        v.numel() for k, v in floats.items() if k.endswith((".table", ".values"))
    )
    for name in exact.widths:
        n = exact.n_users if name.startswith("user.") else exact.n_items
        a, b = exact.rows(name, torch.arange(n)), quant.rows(name, torch.arange(n))
        step = (a.amax(1) - a.amin(1)) / 255
        assert torch.all((a - b).abs() <= step[:, None] / 2 + 1e-6)
        assert not torch.equal(a, b)  # it is quantised, not a copy
    users = torch.arange(4)
    scores = quant.score(users)
    assert scores.shape == (4, quant.n_items)
    assert torch.isfinite(scores).all()


def test_int8_constant_rows_are_exact(tiny_data, tmp_path):
    """A row whose stored values are all equal has range 0: the bias holds it exactly."""
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    with torch.no_grad():
        model.user_emb.fill_(0.25)
    model.set_sizes(np.full(tiny_data.n_users, 3), np.full(tiny_data.n_items, 5))
    served = load(export(model, tmp_path / "q", dtype="int8"))
    rows = served.rows("user.emb", torch.arange(tiny_data.n_users))
    assert torch.equal(rows[:, :3], torch.full((tiny_data.n_users, 3), 0.25))


def test_dtype_is_checked_on_export_and_load(artefact, tiny_data, tmp_path):
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    with pytest.raises(InvalidArgumentError, match="`dtype` must be one of 'float32', 'int8'"):
        export(model, tmp_path / "x", dtype="float16")
    manifest = json.loads((artefact / MANIFEST_FILE).read_text())
    del manifest["dtype"]  # a manifest without it is float32
    (artefact / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert load(artefact).score([0]).dtype == torch.float32
    manifest["dtype"] = "int8"  # float tables claimed as int8
    (artefact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtefactDamagedError, match="the manifest say int8"):
        load(artefact)


def test_nearly_equal_item_widths_score_from_one_padded_table(tiny_data, tmp_path):
    """A few narrower item rows are scored from one padded, item-ordered table.

    Padding them costs ≤ 5 % more floats; the scores are exactly the model's.
    """
    model = make_backbone("mf", tiny_data, d_max=8, seed=0)
    items = np.full(tiny_data.n_items, 8)
    items[[3, 17]] = 5
    model.set_sizes(np.full(tiny_data.n_users, 8), items)
    served = load(export(model.eval(), tmp_path / "art"))
    assert served.widths["item.emb"] == [5, 8]
    assert served.item_emb_merged.shape == (tiny_data.n_items, 8)
    users = torch.arange(tiny_data.n_users)
    model.prepare_scoring()
    torch.testing.assert_close(served.score(users), model.score(users), rtol=1e-5, atol=1e-6)
    model.invalidate_scoring()
    spread = make_backbone("mf", tiny_data, d_max=8, seed=0)  # widths 1 .. 8: kept as buckets
    spread.set_sizes(np.full(tiny_data.n_users, 8), np.arange(tiny_data.n_items) % 8 + 1)
    assert not hasattr(load(export(spread, tmp_path / "b")), "item_emb_merged")
