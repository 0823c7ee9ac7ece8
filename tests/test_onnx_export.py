"""ONNX export of an artefact's scorer: onnxruntime scores = the torch scorer's (issue 32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ciess_env.errors import InvalidArgumentError
from ciess_env.export import export, export_onnx, load
from ciess_env.recommenders import make_backbone

ort = pytest.importorskip(
    "onnxruntime",
    reason="onnxruntime is missing: pip install -e '.[onnx]' (the dev extra includes it)",
)
pytest.importorskip("onnx", reason="onnx is missing: pip install -e '.[onnx]'")


def _model(name: str, data, seed: int = 3):
    """An initialised model with three sizes per side (three buckets of each table)."""
    model = make_backbone(name, data, d_max=16, seed=seed)
    rng = np.random.default_rng(0)
    model.set_sizes(rng.choice([2, 5, 16], data.n_users), rng.choice([1, 3, 7], data.n_items))
    return model.eval()


@pytest.mark.parametrize(
    ("backbone", "dtype"), [("mf", "int8"), ("lightgcn", "float32"), ("ncf", "float32")]
)
def test_onnx_scores_equal_the_torch_scorer(tiny_data, tmp_path, backbone, dtype):
    served = load(export(_model(backbone, tiny_data), tmp_path / "art", dtype=dtype))
    path = export_onnx(served, tmp_path / "onnx" / "scorer.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["users"]
    for users in ([0], [5, 59, 7, 7, 0], list(range(tiny_data.n_users))):  # any batch size
        ids = np.asarray(users, dtype=np.int64)
        got = session.run(["scores"], {"users": ids})[0]
        expected = served.score(torch.from_numpy(ids)).numpy()
        assert got.shape == (len(users), tiny_data.n_items)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_onnx_keeps_int8_codes_and_reads_a_folder(tiny_data, tmp_path):
    """From an artefact folder; an int8 artefact's graph stores its codes as uint8."""
    import onnx

    model = _model("mf", tiny_data)
    path = export_onnx(export(model, tmp_path / "q", dtype="int8"), tmp_path / "q.onnx")
    graph = onnx.load(str(path)).graph
    types = {t.name: t.data_type for t in graph.initializer}
    tables = [n for n in types if n.endswith("_table")]
    assert tables
    assert all(types[n] == onnx.TensorProto.UINT8 for n in tables)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        export_onnx(tmp_path / "nowhere", tmp_path / "x.onnx")


def test_missing_onnx_package_is_named(tiny_data, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx":
            raise ImportError("No module named 'onnx'", name="onnx")
        return real_import(name, *args, **kwargs)

    served = load(export(_model("mf", tiny_data), tmp_path / "art"))
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'ciess-env\[onnx\]'"):
        export_onnx(served, tmp_path / "x.onnx")
