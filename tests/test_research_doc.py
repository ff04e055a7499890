"""docs/research.md runs as printed: its snippets, in order, in one namespace (as a reader's session would)."""

from __future__ import annotations

import os
import re

import pytest

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "research.md")
with open(DOC, encoding="utf-8") as f:
    SNIPPETS = re.findall(r"```python\n(.*?)```", f.read(), re.S)


@pytest.fixture(scope="module")
def session(data_dir, tmp_path_factory):
    """The reader's namespace, in a folder of its own (the snippets write runs/ there)."""
    folder = tmp_path_factory.mktemp("research")
    old, saved = os.getcwd(), os.environ.get("TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = data_dir  # where load_data("digits") looks by default
    os.chdir(folder)
    yield {"__name__": "__main__"}, folder
    os.chdir(old)
    if saved is None:
        del os.environ["TFDS_DATA_DIR"]
    else:
        os.environ["TFDS_DATA_DIR"] = saved


@pytest.mark.slow  # trains about ten small models, a sweep and two complete runs (about a minute on 2 cores)
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_each_snippet_runs_after_the_ones_before(session, index, capsys):
    namespace, folder = session
    exec(compile(SNIPPETS[index], f"{DOC} snippet {index}", "exec"), namespace)  # noqa: S102 (the doc's own code)
    printed = capsys.readouterr().out
    if "train_and_evaluate" in SNIPPETS[index]:
        assert namespace["summary"]["report"] and os.path.exists(namespace["summary"]["report"])
    if "best_member" in SNIPPETS[index]:
        assert "lr=0.001" in printed and "lr=0.01" in printed
    if "jaxdl.lr_find(" in SNIPPETS[index]:
        found = namespace["found"]
        assert found.rates[0] <= found.suggestion <= found.rates[-1] and found.rate > 0
    if 'metrics=("f1_macro", "roc_auc")' in SNIPPETS[index]:
        assert "val_f1_macro" in namespace["result"].history[-1]


def test_the_doc_shows_every_piece():
    text = "\n".join(SNIPPETS)
    for piece in ("def __call__(self, x, train: bool)", "def __call__(self, x)", 'return {"loss"', "optax.adamw(",
                  'metrics=("f1_macro"', "members=2", "sweep.learning_rate", "train_and_evaluate(",
                  "jaxdl.lr_find("):
        assert piece in text, piece
