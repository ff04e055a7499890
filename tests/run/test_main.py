"""The `jaxdl` command's dispatch: subcommands, the experiments list, one `error:` line for a wrong name."""

from __future__ import annotations

import pytest

from jaxdl.run import main as jaxdl_command
from jaxdl.run.config import packaged_configs


def test_experiments_lists_every_experiment_and_its_variants(capsys):
    assert jaxdl_command.main(["experiments"]) == 0
    out = capsys.readouterr().out
    assert jaxdl_command.experiment_names() == ["cnn", "hybrid", "mlp", "playground", "rnn", "transfer"]
    for line in ("mlp:default", "mlp:softmax", "mlp:tiny", "mlp:mnist", "cnn:cifar10", "rnn:adding_per_step",
                 "transfer:folder", "hybrid:tiny", "playground:sweep"):
        assert f"  {line} " in out, line
    variants = dict(jaxdl_command.variants(packaged_configs()["rnn"]))
    assert variants["imdb"].startswith("the catalog imdb_reviews set read as bytes (must be prepared; see README), "
                                       "padded and masked")  # a description over two lines


@pytest.mark.parametrize("argv, line", [
    (["trian", "mlp"], "error: jaxdl: unknown command (got 'trian', expected one of train, experiments, predict, "
                       "export, serve, drift, compare, explain, playground); did you mean 'train'?"),
    (["train", "mpl"], "error: jaxdl train: unknown experiment (got 'mpl', expected one of cnn, hybrid, mlp, "
                       "playground, rnn, transfer); did you mean 'mlp'?"),
    ([], "error: jaxdl: missing the command (expected one of train, experiments, predict, export, serve, drift, "
         "compare, explain, playground); jaxdl --help tells more"),
    (["train"], "error: jaxdl train: missing the experiment (expected one of cnn, hybrid, mlp, playground, rnn, "
                "transfer); e.g. jaxdl train mlp --config mlp:tiny"),
])
def test_a_wrong_name_is_one_error_line_and_exit_code_2(argv, line, capsys):
    assert jaxdl_command.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == line and captured.out == ""


def test_help_and_the_subcommands_help(capsys):
    assert jaxdl_command.main(["--help"]) == 0
    assert "jaxdl train EXPERIMENT" in capsys.readouterr().out
    assert jaxdl_command.main(["predict", "--help"]) == 0
    assert "usage: python -m jaxdl.predict" in capsys.readouterr().out
    assert jaxdl_command.main(["train", "rnn", "--config", "rnn:adding", "--help"]) == 0
    assert "  data.name = 'adding'" in capsys.readouterr().out
