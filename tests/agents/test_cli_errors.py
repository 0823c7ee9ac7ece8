"""The `ciess` CLI turns every CIESSError into one line on stderr and exit code 2."""

from __future__ import annotations

import pytest

from agents.experiments.cli import main


@pytest.mark.parametrize(
    ("override", "text"),
    [
        ("lam=-1", "`lam` must be a finite number >= 0, got -1."),
        ("device=bogus", "`device` must be a torch device such as 'cpu'"),
        ("batches_per_step=0", "`batches_per_step` must be an integer >= 1, got 0"),
        ("lamda=0.2", "Unknown env argument 'lamda'."),
        ("backbone_kwargs={'n_layer': 2}", "`backbone_kwargs` has unknown key 'n_layer'"),
    ],
)
def test_bad_env_kw_is_one_line_and_exit_code_2(tmp_path, capsys, override, text):
    """`ciess search ... --env-kw lam=-1` used to end in a traceback."""
    argv = ["search", "CIESS-MF-Synthetic-v0", "--episodes", "1", "--output", str(tmp_path)]
    assert main([*argv, "--env-kw", "preset=tiny", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ciess search: error: ")
    assert text in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_unknown_env_argument_suggests_the_close_name(tmp_path, capsys):
    """A misspelt env argument lists the valid ones and the closest match."""
    argv = ["compare", "CIESS-MF-Synthetic-v0", "--output", str(tmp_path), "--env-kw", "lamda=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'lam'?" in err
    assert "batches_per_step" in err
