"""The few-line Python API: one minimize() over every kind of target, one Result type."""

import json

import mdtraj as md
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.io import read

import openmm_actionmin as am
from openmm_actionmin import data_path

LJ13 = -44.326801


def test_minimize_cluster_name_and_result_exports(tmp_path):
    result = am.minimize("LJ13", budget_s=20, seed=0, progress=False)
    assert result.method == am.DEFAULT_METHOD["cluster"]
    assert result.energy == pytest.approx(LJ13, abs=1e-5)
    assert result.force_calls > 0 and result.history
    xyz, pdb, js, png = (tmp_path / f"lj13.{ext}" for ext in ("xyz", "pdb", "json", "png"))
    result.save(xyz)
    result.save(pdb)
    result.save(js)
    assert read(str(xyz)).get_positions() == pytest.approx(np.asarray(result.positions), abs=1e-6)
    traj = md.load(str(pdb))
    assert traj.n_atoms == 13
    summary = json.loads(js.read_text())
    assert summary["energy"] == pytest.approx(result.energy) and summary["units"]["energy"] == "epsilon"
    assert result.to_mdtraj().n_atoms == 13 and len(result.to_ase()) == 13
    result.plot(png)
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="extension"):
        result.save(tmp_path / "lj13.docx")


def test_same_seed_same_answer():
    a = am.minimize("LJ13", budget_s=None, seed=3, progress=False, max_steps=3, n_walkers=4, stop_at_target=False)
    b = am.minimize("LJ13", budget_s=None, seed=3, progress=False, max_steps=3, n_walkers=4, stop_at_target=False)
    assert a.energy == b.energy
    assert np.array_equal(a.positions, b.positions)


def test_minimize_ase_atoms():
    rng = np.random.default_rng(0)
    atoms = Atoms("Ar7", positions=rng.uniform(-1, 1, (7, 3)))
    atoms.calc = LennardJones(rc=1e3)
    result = am.minimize(atoms, budget_s=5, seed=0, progress=False, n_walkers=4)
    assert result.energy == pytest.approx(am.systems.lj_reference_energies()[7], abs=1e-4)
    assert result.symbols == ["Ar"] * 7


def test_minimize_function_by_name():
    result = am.minimize("alpine1:3", budget_s=5, seed=0, progress=False, method="adam")
    assert result.method == "adam"
    assert np.asarray(result.positions).shape == (3,)
    with pytest.raises(ValueError, match="cannot write"):
        result.save("function.pdb")


def test_minimize_passes_config_fields_to_the_function_baselines():
    adam = am.minimize("alpine1:3", method="adam", budget_s=5, seed=0, progress=False, n_starts=8, max_steps=50)
    assert adam.extra["config"]["n_starts"] == 8 and adam.extra["config"]["max_steps"] == 50
    cma = am.minimize("alpine1:3", method="cma", budget_s=1, seed=0, progress=False, popsize=6)
    assert cma.extra["config"]["popsize"] == 6
    with pytest.raises(ValueError, match="method 'adam' on a function has no option 'popsize'"):
        am.minimize("alpine1:3", method="adam", budget_s=1, progress=False, popsize=6)


def test_minimize_openmm_triple_with_the_openmm_minimiser():
    oracle = am.systems.from_pdb(data_path("systems", "pdb", "5awl_cln025.pdb")).oracle
    pdb_positions = oracle.positions.numpy()
    start = float(oracle.energy(torch.as_tensor(pdb_positions)[None])[0])
    result = am.minimize((oracle.topology, oracle.system, pdb_positions), method="openmm", budget_s=30, progress=False)
    assert result.energy < start
    assert result.units.energy == "kJ/mol"
    assert result.extra["final_rms_force"] < 10.0


def test_unknown_method_and_target_are_clear_errors():
    with pytest.raises(ValueError, match="unknown method 'magic' for a cluster target"):
        am.minimize("LJ13", method="magic", budget_s=1)
    with pytest.raises(ValueError, match="cannot minimise a list"):
        am.minimize([1, 2, 3])
    with pytest.raises(FileNotFoundError, match="missing.pdb"):
        am.minimize("missing.pdb")


def test_checkpointed_basin_hopping_resumes(tmp_path):
    ckpt = str(tmp_path / "bh.pt")
    first = am.minimize(
        "LJ13", budget_s=None, seed=0, progress=False, checkpoint=ckpt, max_steps=2, n_walkers=4, stop_at_target=False
    )
    assert (tmp_path / "bh.pt").exists()
    second = am.minimize(
        "LJ13", budget_s=None, seed=0, progress=False, checkpoint=ckpt, max_steps=4, n_walkers=4, stop_at_target=False
    )
    assert second.energy <= first.energy + 1e-9  # both may hold the GM, polished to round-off
    assert second.extra["hops"] > first.extra["hops"]


def test_peptide_progress_bar_and_off_switch(capsys):
    pdb = data_path("systems", "pdb", "5awl_cln025.pdb")
    am.minimize(pdb, method="openmm", budget_s=10, progress=True)
    assert "openmm_minimize" in capsys.readouterr().err
    am.minimize(pdb, method="openmm", budget_s=10, progress=False)
    assert "openmm_minimize" not in capsys.readouterr().err


def test_cluster_default_uses_lattice_starts_and_blind_search_stays_available():
    lattice = am.minimize("LJ38", budget_s=30, seed=0, progress=False, n_walkers=4)
    assert lattice.method == "basin_hopping_lattice" == am.DEFAULT_METHOD["cluster"]
    assert lattice.extra["config"]["lattice_starts"] == 3
    assert lattice.extra["config"]["lattice_nn"] == pytest.approx(2 ** (1 / 6))
    assert lattice.energy == pytest.approx(am.systems.lj_reference_energies()[38], abs=1e-4)
    blind = am.minimize("LJ38", "basin_hopping", budget_s=None, seed=0, progress=False, n_walkers=4, max_steps=1)
    assert blind.method == "basin_hopping" and blind.extra["config"]["lattice_starts"] == 0
    # an ASE target gets its scales from a loose quench: lattice starts at its own nearest-neighbour
    # distance, steps and container in its units (here Angstrom: argon, sigma 3.4)
    atoms = Atoms("Ar4", positions=np.eye(4, 3) * 4.0)
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)
    res = am.minimize(atoms, budget_s=None, seed=0, progress=False, n_walkers=4, max_steps=1)
    assert res.extra["config"]["lattice_starts"] == 3
    assert res.extra["config"]["lattice_nn"] == pytest.approx(3.4 * 2 ** (1 / 6), rel=0.05)
    assert res.extra["config"]["step_size"] == pytest.approx(0.4 * 3.4, rel=0.05)
    assert res.energy == pytest.approx(-6 * 0.0104, rel=1e-4)  # the LJ4 tetrahedron


def test_device_builds_named_targets_there_and_refuses_what_does_not_fit():
    lj = am.as_system("LJ13", device="cpu")
    fn = am.as_system("alpine1:10", device="cpu")
    assert lj.oracle.device.type == fn.oracle.device.type == fn.space.lower.device.type == "cpu"
    result = am.minimize("alpine1:10", "adam", budget_s=1.0, device="cpu", progress=False)
    assert np.isfinite(result.energy)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            am.minimize("LJ13", device="cuda", budget_s=1.0)
    with pytest.raises(ValueError, match="unknown device 'tpu9'"):
        am.as_system("LJ13", device="tpu9")
    # a PDB runs through OpenMM, which picks its own platform
    with pytest.raises(ValueError, match="5awl_cln025.pdb: device='meta' applies to torch oracles"):
        am.as_system(data_path("systems", "pdb", "5awl_cln025.pdb"), device="meta")
    # a target that brings its own oracle keeps its device
    with pytest.raises(ValueError, match=r"lives on cpu; build the oracle on meta"):
        am.as_system(am.oracles.SyntheticOracle("alpine1", 5), device="meta")
    assert am.as_system(am.oracles.SyntheticOracle("alpine1", 5), device="cpu").oracle.device.type == "cpu"
