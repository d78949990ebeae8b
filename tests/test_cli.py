"""The actionmin command line: help, real runs, one-line user errors with exit code 2."""

import subprocess
import sys

import pytest
from openmm.app import PDBFile

from openmm_actionmin import data_path
from openmm_actionmin.cli import main

CLN025 = str(data_path("systems", "pdb", "5awl_cln025.pdb"))


def actionmin(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "openmm_actionmin.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def help_text(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main([*args, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_help_of_every_subcommand(capsys):
    top = actionmin("--help")
    assert top.returncode == 0
    for sub in ("demo", "minimize", "cluster", "compare", "bench"):
        assert sub in top.stdout
        assert "usage: actionmin " + sub in help_text(capsys, sub)
    assert "--budget-s" in help_text(capsys, "minimize")
    assert "--png" in help_text(capsys, "compare")


@pytest.mark.parametrize("which", ["oracles", "synthetic", "clusters", "proteins"])
def test_bench_help(capsys, which):
    text = help_text(capsys, "bench", which)
    assert "--json" in text and f"usage: actionmin bench {which}" in text
    assert f"example:\n  actionmin bench {which} " in text


@pytest.mark.parametrize("which", ["oracles", "synthetic", "clusters", "proteins"])
def test_bench_example_of_every_benchmark_exits_0(capsys, which, tmp_path, monkeypatch):
    """The example at the end of each benchmark's --help runs as written."""
    text = help_text(capsys, "bench", which)
    example = text.split("example:\n", 1)[1].strip().splitlines()[0].split()
    assert example[:3] == ["actionmin", "bench", which]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(example[1:]) == 0


def test_bench_methods_are_registry_names(capsys):
    from openmm_actionmin.registry import METHODS_FOR

    for which, kind in (("synthetic", "function"), ("clusters", "cluster"), ("proteins", "peptide")):
        text = " ".join(help_text(capsys, "bench", which).split())
        assert all(name in text for name in METHODS_FOR[kind]), which


def test_minimize_cln025_writes_a_pdb_openmm_reads(tmp_path):
    out = tmp_path / "out.pdb"
    run = actionmin("minimize", CLN025, "--budget-s", "30", "--out", str(out), "--quiet", timeout=400)
    assert run.returncode == 0, run.stderr
    assert "kJ/mol" in run.stdout
    pdb = PDBFile(str(out))
    assert pdb.topology.getNumAtoms() == 166
    assert pdb.topology.getNumResidues() == 10


def test_cluster_subcommand(tmp_path):
    out = tmp_path / "lj13.xyz"
    run = actionmin("cluster", "13", "--budget-s", "20", "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    assert "-44.326801" in run.stdout and "reached" in run.stdout
    assert out.read_text().splitlines()[0].strip() == "13"


def one_line_error(run):
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def test_missing_file_is_one_line_exit_2():
    line = one_line_error(actionmin("minimize", "no_such_file.pdb"))
    assert "no_such_file.pdb" in line


def test_unknown_residue_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.pdb"
    lines = [
        ln.replace("TRP", "XYZ") if ln.startswith(("ATOM", "HETATM")) and " TRP " in ln else ln for ln in open(CLN025)
    ]
    bad.write_text("".join(lines))
    line = one_line_error(actionmin("minimize", str(bad), "--budget-s", "5"))
    assert "XYZ" in line


def test_bad_option_and_unknown_target():
    assert actionmin("minimize", "LJ13", "--budget-s", "soon").returncode == 2
    line = one_line_error(actionmin("minimize", "not_a_system", "--budget-s", "1"))
    assert "not_a_system" in line
    line = one_line_error(actionmin("cluster", "13", "--method", "magic", "--budget-s", "1"))
    assert "magic" in line
