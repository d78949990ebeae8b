"""The ASE optimizers behave like ASE's own: run, irun, log, attach, trajectory, restart."""

import io
import time

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms
from ase.io import read
from ase.optimize import LBFGS

from openmm_actionmin.ase import ActionMin, BasinHoppingMin, LatticeBasinHoppingMin, OracleCalculator
from openmm_actionmin.oracles import lennard_jones
from openmm_actionmin.systems import lj_reference_energies

LJ13 = lj_reference_energies()[13]


def random_cluster(symbol: str, n: int, side: float, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    return Atoms(f"{symbol}{n}", positions=rng.uniform(-side / 2, side / 2, (n, 3)))


def local_minimum_energy(atoms: Atoms, calc, fmax: float) -> float:
    copy = atoms.copy()
    copy.calc = calc
    LBFGS(copy, logfile=None).run(fmax=fmax, steps=3000)
    return copy.get_potential_energy()


def test_lj13_with_ase_lennard_jones_reaches_global_minimum(tmp_path):
    atoms = random_cluster("Ar", 13, 2.4, seed=1)
    atoms.calc = LennardJones(rc=1e3)
    log = io.StringIO()
    opt = BasinHoppingMin(
        atoms, global_steps=2, hops_per_step=4, n_walkers=4, seed=0, logfile=log, trajectory=str(tmp_path / "bh.traj")
    )
    seen = []
    opt.attach(lambda: seen.append(atoms.get_potential_energy()), interval=1)
    assert opt.run(fmax=1e-3, steps=50)
    assert atoms.get_potential_energy() == pytest.approx(LJ13, abs=1e-4)
    assert np.abs(atoms.get_forces()).max() < 1e-3
    # inherited ASE machinery: log lines, observers, trajectory frames
    lines = log.getvalue().strip().splitlines()
    assert lines[0].split()[:2] == ["Step", "Time"]
    assert len(lines) == opt.nsteps + 2
    assert len(seen) == opt.nsteps + 1
    frames = read(str(tmp_path / "bh.traj"), ":")
    assert len(frames) == opt.nsteps + 1
    assert frames[-1].get_potential_energy() == pytest.approx(LJ13, abs=1e-4)


def test_lj38_with_our_calculator_beats_a_local_minimisation():
    atoms = random_cluster("Ar", 38, 3.4, seed=3)
    calc = OracleCalculator(lennard_jones(38), length_scale=1.0, energy_scale=1.0)
    local = local_minimum_energy(atoms, calc, 1e-3)
    atoms.calc = calc
    opt = BasinHoppingMin(atoms, global_steps=2, hops_per_step=6, n_walkers=8, seed=0, logfile=None)
    assert opt.run(fmax=1e-3, steps=100)
    assert atoms.get_potential_energy() < local - 1.0
    assert atoms.get_potential_energy() >= lj_reference_energies()[38] - 1e-6


def test_lattice_basin_hopping_starts_walkers_from_packings_in_argon_units():
    """Ar38 in eV and Angstrom: the first round seeds lattice walkers scaled to argon; it finds the LJ38 minimum."""
    atoms = random_cluster("Ar", 38, 12.0, seed=3)
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=1e3)
    opt = LatticeBasinHoppingMin(atoms, global_steps=1, hops_per_step=2, n_walkers=8, seed=0, logfile=None)
    config = opt._search_config()
    assert config.lattice_starts > 0 and config.lattice_nn == pytest.approx(2 ** (1 / 6) * 3.4, rel=0.05)
    assert opt.todict()["method"] == "basin_hopping_lattice"
    assert opt.run(fmax=1e-3, steps=100)
    assert atoms.get_potential_energy() == pytest.approx(lj_reference_energies()[38] * 0.0104, abs=1e-4)


def test_action_min_trains_the_action_plnet_every_global_round():
    atoms = random_cluster("Ar", 13, 3.4, seed=1)
    calc = OracleCalculator(lennard_jones(13), length_scale=1.0, energy_scale=1.0)
    local = local_minimum_energy(atoms, calc, 1e-3)
    atoms.calc = calc
    opt = ActionMin(atoms, global_steps=2, hops_per_step=3, n_walkers=4, action_budget_s=2, seed=0, logfile=None)
    assert opt.run(fmax=1e-3, steps=100)
    assert len(opt.action_energies) == 2 and all(np.isfinite(opt.action_energies))
    assert atoms.get_potential_energy() <= local + 1e-9


def test_a_calculator_that_is_not_lj():
    atoms = random_cluster("Cu", 8, 4.5, seed=0)
    local = local_minimum_energy(atoms, EMT(), 0.01)
    atoms.calc = EMT()
    opt = BasinHoppingMin(atoms, global_steps=2, hops_per_step=3, n_walkers=4, seed=0, logfile=None)
    converged = opt.run(fmax=0.01, steps=100)
    assert converged
    assert atoms.get_potential_energy() <= local + 1e-6
    assert np.abs(atoms.get_forces()).max() < 0.01


def test_irun_and_step_limit():
    atoms = random_cluster("Ar", 13, 2.4, seed=2)
    atoms.calc = OracleCalculator(lennard_jones(13), length_scale=1.0, energy_scale=1.0)
    opt = BasinHoppingMin(atoms, global_steps=3, hops_per_step=2, n_walkers=4, seed=0, logfile=None)
    states = list(opt.irun(fmax=1e-3, steps=2))
    # global rounds never count as converged, so two steps cannot finish three rounds
    assert states == [False, False, False]
    assert opt.nsteps == 2


def test_restart_file_continues(tmp_path):
    restart = str(tmp_path / "restart.json")
    atoms = random_cluster("Ar", 13, 2.4, seed=4)
    atoms.calc = OracleCalculator(lennard_jones(13), length_scale=1.0, energy_scale=1.0)
    first = BasinHoppingMin(atoms, global_steps=2, hops_per_step=3, n_walkers=4, seed=0, restart=restart, logfile=None)
    first.run(fmax=1e-3, steps=1)
    assert first.rounds_done == 1
    best = first.best_energy

    moved = random_cluster("Ar", 13, 2.4, seed=5)
    moved.calc = OracleCalculator(lennard_jones(13), length_scale=1.0, energy_scale=1.0)
    second = BasinHoppingMin(moved, global_steps=2, hops_per_step=3, n_walkers=4, seed=0, restart=restart, logfile=None)
    # the second optimizer picked up the first one's state and structure
    assert second.rounds_done == 1
    assert second.best_energy == pytest.approx(best)
    assert moved.get_potential_energy() == pytest.approx(best)
    assert second.run(fmax=1e-3, steps=50)
    assert second.rounds_done == 2
    assert moved.get_potential_energy() <= best + 1e-9


def test_missing_calculator_is_a_clear_error():
    with pytest.raises(ValueError, match="no calculator"):
        BasinHoppingMin(Atoms("Ar2", positions=[[0, 0, 0], [1.1, 0, 0]]))


def test_oracle_calculator_units_must_be_stated():
    with pytest.raises(ValueError, match="length_scale"):
        OracleCalculator(lennard_jones(3))


def test_ase_lennard_jones_runs_through_its_batched_twin_with_default_settings():
    from openmm_actionmin.oracles.ase import ASELennardJones

    atoms = random_cluster("Ar", 13, 2.4, seed=6)
    atoms.calc = LennardJones(rc=1e3)
    start = time.perf_counter()
    opt = BasinHoppingMin(atoms, seed=0, logfile=None)
    assert isinstance(opt.oracle, ASELennardJones) and opt.batched
    assert opt.run(fmax=1e-3, steps=200)
    assert time.perf_counter() - start < opt.budget_s + 10
    assert atoms.get_potential_energy() == pytest.approx(LJ13, abs=1e-4)


def test_budget_stops_the_global_rounds():
    atoms = random_cluster("Cu", 8, 4.5, seed=1)
    atoms.calc = EMT()
    opt = BasinHoppingMin(atoms, global_steps=1000, budget_s=1.0, seed=0, logfile=None)
    # a calculator evaluated one configuration at a time: fewer walkers and hops, quenches as loose as fmax
    assert not opt.batched and (opt.n_walkers, opt.hops_per_step) == (4, 4)
    start = time.perf_counter()
    assert opt.run(fmax=0.05, steps=500)
    assert time.perf_counter() - start < 8.0
    assert 1 <= opt.rounds_done < 1000
    assert opt._search_config().quench_fmax >= 0.05


def test_log_has_one_line_per_global_round_with_the_best_energy():
    atoms = random_cluster("Ar", 13, 2.4, seed=7)
    atoms.calc = LennardJones(rc=1e3)
    log = io.StringIO()
    opt = BasinHoppingMin(atoms, global_steps=3, hops_per_step=2, n_walkers=4, seed=0, logfile=log)
    list(opt.irun(fmax=1e-3, steps=3))
    lines = log.getvalue().strip().splitlines()[1:]
    assert len(lines) == 4  # the start, then one line per global round
    assert float(lines[-1].split()[-2]) == pytest.approx(opt.best_energy, abs=1e-6)


def test_constraints_and_periodic_cells_are_refused():
    atoms = random_cluster("Ar", 5, 2.0, seed=0)
    atoms.calc = LennardJones(rc=1e3)
    atoms.set_constraint(FixAtoms(indices=[0]))
    with pytest.raises(ValueError, match="FixAtoms"):
        BasinHoppingMin(atoms)
    del atoms.constraints
    atoms.cell = [10, 10, 10]
    atoms.pbc = True
    with pytest.raises(ValueError, match="atoms.pbc"):
        ActionMin(atoms)


def test_scaled_settings_carry_each_quantity_in_its_own_units():
    from openmm_actionmin.ase import scaled_basin_hopping_options
    from openmm_actionmin.search.basin_hopping import BasinHoppingConfig

    nn = 2 ** (1 / 6)
    reduced = scaled_basin_hopping_options(38, nn, -4.0, fmax=1.0)
    # an LJ cluster in reduced units gets the cluster defaults
    defaults = BasinHoppingConfig()
    assert reduced["quench_fmax"] == pytest.approx(defaults.quench_fmax)
    assert reduced["temperature"] == pytest.approx(defaults.temperature)
    assert reduced["step_size"] == pytest.approx(defaults.step_size)
    # argon: lengths x 3.4 (Angstrom), energies x 0.0104 (eV); forces scale as energy / length
    argon = scaled_basin_hopping_options(38, 3.4 * nn, -4.0 * 0.0104, fmax=1.0)
    assert argon["step_size"] == pytest.approx(3.4 * reduced["step_size"])
    assert argon["temperature"] == pytest.approx(0.0104 * reduced["temperature"])
    assert argon["quench_fmax"] == pytest.approx(0.0104 / 3.4 * reduced["quench_fmax"])
    assert argon["compression"] == pytest.approx(0.0104 / 3.4**2 * reduced["compression"])
    # never looser than a tenth of the user's fmax
    assert scaled_basin_hopping_options(38, nn, -4.0, fmax=0.01)["quench_fmax"] == pytest.approx(1e-3)


def test_a_structure_of_two_elements_searches_with_exchange_moves():
    from openmm_actionmin import minimize
    from openmm_actionmin.ase import species_types
    from openmm_actionmin.search.basin_hopping import MULTICOMPONENT_DEFAULTS

    assert species_types(["Cu", "Au", "Cu"]) == [0, 1, 0] and species_types(["Ar"] * 3) is None
    atoms = random_cluster("Cu", 8, 4.5, seed=2)
    atoms.set_chemical_symbols(["Cu"] * 5 + ["Au"] * 3)
    atoms.calc = EMT()
    run = minimize(atoms, method="basin_hopping", budget_s=None, max_steps=3, seed=0)
    assert run.extra["n_walkers"] == MULTICOMPONENT_DEFAULTS["n_walkers"]
    assert run.extra["config"]["compression"] == 0.0 and run.energy <= atoms.get_potential_energy() + 1e-9
    other = atoms.copy()
    other.calc = EMT()
    opt = BasinHoppingMin(other, global_steps=1, budget_s=2.0, seed=0, logfile=None)
    opt.run(fmax=0.05, steps=5)
    assert opt.types == [0] * 5 + [1] * 3 and opt._system().types == opt.types
    assert opt._search_config().compression == 0.0 and opt.n_walkers == MULTICOMPONENT_DEFAULTS["n_walkers"]
