"""The README's "From research code" snippet runs as printed."""

from __future__ import annotations

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def snippet(heading: str) -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text[text.index(f"\n## {heading}\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_research_code_snippet_runs(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", data_dir)  # where load_data("digits") looks by default
    code = snippet("From research code")
    assert 'jaxdl.load_data("digits")' in code and "progress=True" in code
    exec(compile(code, README, "exec"), {})  # noqa: S102 (the README's own code)
    captured = capsys.readouterr()
    printed = eval(captured.out.strip().splitlines()[-1])  # noqa: S307 (the dict the snippet prints)
    assert printed["count"] == 359 and printed["accuracy"] > 0.9
    assert "epoch" in captured.err and "val_loss=" in captured.err  # the progress bar
