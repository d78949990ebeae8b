"""minimize_pdb on CLN025 (5AWL): lower energy, group energies, RMSD, PDB export."""

import math

import mdtraj as md
import numpy as np
import pytest
import torch
from openmm.app import PDBFile

import openmm_actionmin as am
from openmm_actionmin import data_path
from openmm_actionmin.api import minimize_pdb
from openmm_actionmin.proteins import CARMSD
from openmm_actionmin.result import Result

CLN = str(data_path("systems", "pdb", "5awl_cln025.pdb"))
TRPCAGE = str(data_path("systems", "pdb", "1l2y_trpcage_model1.pdb"))


def _check_written_pdb(path, n_atoms, energy_positions):
    traj = md.load_pdb(str(path))
    assert traj.n_atoms == n_atoms
    pdb = PDBFile(str(path))
    assert pdb.topology.getNumAtoms() == n_atoms
    assert sum(1 for a in pdb.topology.atoms() if a.name == "OXT") == 1
    xyz = np.asarray(pdb.getPositions(asNumpy=True)._value)
    # PDB keeps 0.001 Angstrom: coordinates come back to 1e-4 nm
    assert np.abs(xyz - energy_positions).max() < 1e-4


def test_minimize_pdb_openmm_lowers_energy_and_writes_a_pdb(tmp_path):
    out = tmp_path / "cln025_min.pdb"
    res = minimize_pdb(CLN, method="openmm", budget_s=20, reference=CLN, threads=1, output=out)
    assert res.method == "openmm"
    assert math.isfinite(res.energy)
    assert res.energy < res.extra["start_energy"] - 100.0
    assert res.positions.shape == (166, 3)
    groups = res.extra["group_energies"]
    assert {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce", "GBSAOBCForce"} == set(
        groups
    )
    assert sum(groups.values()) == pytest.approx(res.energy, abs=0.05)
    # a local minimisation stays near the crystal structure
    assert 0.0 < res.extra["ca_rmsd_A"] < 1.0
    assert res.extra["ca_rmsd_A"] == pytest.approx(res.extra["ca_rmsd_to_input_A"], abs=0.05)
    assert res.extra["final_rms_force"] < 10.0 < res.extra["start_rms_force"]
    assert all("ca_rmsd_A" in row for row in res.history)
    assert res.force_calls > 10 and res.wall_s > 0
    _check_written_pdb(out, 166, res.positions)
    res.save(tmp_path / "again.pdb")
    _check_written_pdb(tmp_path / "again.pdb", 166, res.positions)


def test_minimize_pdb_action_returns_a_polished_lower_structure(tmp_path):
    res = minimize_pdb(CLN, method="action", budget_s=8, seed=0, reference=CLN, threads=1)
    assert res.method == "action"
    assert math.isfinite(res.energy) and res.energy < res.extra["start_energy"]
    assert res.energy <= res.extra["before_polish_energy"]
    assert math.isfinite(res.extra["ca_rmsd_A"])
    assert res.history[0]["round"] == 0 and res.history[-1]["phase"] == "polish"
    res.save(tmp_path / "action.pdb")
    assert md.load_pdb(str(tmp_path / "action.pdb")).n_atoms == 166


def test_bad_method_and_mismatched_reference():
    with pytest.raises(ValueError, match="unknown method 'lbfgs' for a peptide target; choose one of .*openmm"):
        minimize_pdb(CLN, method="lbfgs")
    from openmm_actionmin.systems import from_pdb

    system = from_pdb(CLN, threads_per_context=1)
    with pytest.raises(ValueError, match="has 20 CA atoms but the structure has 10"):
        CARMSD(system.topology, TRPCAGE)
    rmsd = CARMSD(system.topology, system.start_positions)
    assert rmsd(system.start_positions) == pytest.approx(0.0, abs=0.01)  # mdtraj works in float32
    moved = system.start_positions.clone()
    moved[:, 0] += 1.0  # a rigid shift does not change the superposed RMSD
    assert rmsd(moved) == pytest.approx(0.0, abs=0.01)
    assert rmsd(torch.zeros(166, 3) + torch.randn(166, 3, generator=torch.Generator().manual_seed(0))) > 1.0


def test_protein_benchmark_rows_resume_and_compare_png(tmp_path):
    from openmm_actionmin.benchmarks.proteins import (
        BENCH_METHODS,
        ProteinBenchConfig,
        build_parser,
        compare,
        format_table,
        run_benchmark,
    )
    from openmm_actionmin.registry import METHODS_FOR

    out = tmp_path / "rows.json"
    cfg = ProteinBenchConfig(systems=("cln025",), methods=("openmm",), seeds=1, budget_s=30, json_path=str(out))
    rows = run_benchmark(cfg, log=lambda s: None)
    assert [(r["system"], r["method"], r["seed"]) for r in rows] == [
        ("cln025", "native_minimized", None),
        ("cln025", "openmm", 0),
    ]
    native, extended = rows
    for r in rows:
        assert {"energy_kj_mol", "ca_rmsd_A", "wall_s", "force_calls"} <= set(r)
    # the native fold is far below the local minimum of an extended chain, and far from it in RMSD
    assert native["energy_kj_mol"] < extended["energy_kj_mol"] - 50.0
    assert native["ca_rmsd_A"] < 1.0 < 4.0 < extended["ca_rmsd_A"]
    assert extended["energy_kj_mol"] < extended["start_energy"]
    # rerun: everything is resumed from the JSON, nothing runs again
    logged = []
    again = run_benchmark(cfg, log=logged.append)
    assert again == rows and logged == []
    table = format_table(rows)
    assert "native_minimized" in table and "openmm " in table
    with pytest.raises(ValueError, match="unknown benchmark protein 'ubq'"):
        ProteinBenchConfig(systems=("ubq",))
    with pytest.raises(ValueError, match="unknown method 'openmm_minimize' for a peptide target"):
        ProteinBenchConfig(methods=("openmm_minimize",))
    with pytest.raises(ValueError, match="method 'cma' does not run on a peptide"):
        ProteinBenchConfig(methods=("cma",))
    args = build_parser().parse_args(["--systems", "cln025", "--seeds", "3", "--budget-s", "5", "--json", "x.json"])
    assert args.seeds == 3 and args.budget_s == 5.0 and args.json == "x.json"
    assert args.methods.split(",") == list(BENCH_METHODS) == ["openmm", "anneal", "action", "basin_hopping", "hybrid"]
    assert set(BENCH_METHODS) <= set(METHODS_FOR["peptide"])

    png = tmp_path / "compare.png"
    printed = []
    results = compare(CLN, methods=["openmm"], budget_s=10, png_path=png, threads=1, log=printed.append)
    assert png.exists() and png.stat().st_size > 5000
    assert "openmm " in printed[0] and len(results) == 1


def test_protein_benchmark_runs_methods_through_the_registry(monkeypatch):
    """The benchmark calls registry.METHODS[name].run with the run's seed, budget and peptide options."""
    import dataclasses

    from openmm_actionmin import registry
    from openmm_actionmin.benchmarks.proteins import ProteinBenchConfig, run_benchmark

    seen = []

    def fake(system, config):
        seen.append((config.seed, config.budget_s, sorted(config.options)))
        return Result(positions=system.start_positions.numpy(), energy=0.0, units=system.oracle.units, method="anneal")

    monkeypatch.setitem(registry.METHODS, "anneal", dataclasses.replace(registry.METHODS["anneal"], run=fake))
    rows = run_benchmark(
        ProteinBenchConfig(systems=("cln025",), methods=("anneal",), seeds=1, budget_s=7.0, native=False),
        log=lambda line: None,
    )
    assert [(r["method"], r["seed"]) for r in rows] == [("anneal", 0)]
    assert seen == [(0, 7.0, ["platform", "rmsd", "threads"])]


@pytest.mark.parametrize("method", ["action", "random_only"])
def test_action_methods_never_end_above_the_openmm_minimiser(method):
    reference = am.minimize(CLN, "openmm", budget_s=10, progress=False, threads=1)
    result = am.minimize(CLN, method, budget_s=10, progress=False, threads=1)
    assert result.energy <= reference.energy + 1e-3
    assert result.extra["polish_candidates"] == 3  # candidate, lowest seen, and the prepared input
