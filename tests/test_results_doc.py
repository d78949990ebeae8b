"""docs/results.md is generated from bench/results/ and stays in step with it."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MAX_BYTES = 5 * 1024 * 1024


def _make_results():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "bench" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_files_follow_the_schema():
    make_results = _make_results()
    paths = sorted(RESULTS.glob("*/*.json"))
    assert paths, "no results files"
    for path in paths:
        data = json.loads(path.read_text())
        for key in make_results.REQUIRED_KEYS:
            assert key in data, f"{path} lacks {key!r}"
        make_results.validate(data, path)
        assert data["rows"], f"{path} has no rows"


def test_results_folder_is_small_and_topic_named():
    files = [p for p in RESULTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    for path in files:
        assert path.suffix == ".json" and path.parent.parent == RESULTS, path


def test_results_doc_is_up_to_date():
    make_results = _make_results()
    expected = make_results.render(RESULTS)
    current = (ROOT / "docs" / "results.md").read_text()
    assert current == expected, "docs/results.md is out of date: run python bench/make_results.py"


def test_check_flags_a_stale_doc(tmp_path, capsys):
    make_results = _make_results()
    stale = tmp_path / "results.md"
    stale.write_text("old\n")
    assert make_results.main(["--check", "--output", str(stale)]) == 1
    assert "+# Benchmark results" in capsys.readouterr().out
    assert make_results.main(["--output", str(stale)]) == 0
    # the document is current, but the figures of the tables with curves are not there yet
    assert make_results.main(["--check", "--output", str(stale)]) == 1
    assert "is missing: run python bench/make_results.py --figures" in capsys.readouterr().out
    assert make_results.main(["--output", str(stale), "--figures"]) == 0
    assert make_results.main(["--check", "--output", str(stale)]) == 0


def test_every_table_with_curves_has_its_figure():
    make_results = _make_results()
    with_curves = [path for path, data in make_results.load_results(RESULTS) if data.get("curves")]
    assert with_curves
    doc = (ROOT / "docs" / "results.md").read_text()
    for path in with_curves:
        name = make_results.figure_name(path)
        assert (ROOT / "docs" / "figures" / name).stat().st_size > 10_000
        assert f"(figures/{name})" in doc
