"""The README's Python snippets run verbatim, and the README stays a short user guide."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_is_a_short_user_guide():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (README.parent / link).exists(), f"README links to a missing {link}"


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_readme_snippet_runs_verbatim(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink(README.parent / "systems", tmp_path / "systems")
    exec(compile(_snippets()[index], f"README snippet {index + 1}", "exec"), {"__name__": "__readme__"})
