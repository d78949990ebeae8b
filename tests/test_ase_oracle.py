"""Tests of the ASE adapter with real ASE calculators."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron

from openmm_actionmin.oracles import (
    OPENMM_UNITS,
    REDUCED_UNITS,
    FiniteEnergy,
    OracleError,
    Units,
    lennard_jones,
    validate_oracle,
)
from openmm_actionmin.oracles.ase import ASEOracle, atoms_from_config


def jittered_cluster(n, batch, seed, spacing=1.1, jitter=0.05):
    """``[batch, n, 3]`` configurations on a jittered cubic lattice (no overlaps)."""
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * spacing
    rng = np.random.default_rng(seed)
    return torch.tensor(grid[None] + jitter * rng.standard_normal((batch, n, 3)))


class FailsWhenClose(Calculator):
    """A real ASE calculator (harmonic pairs) that raises when two atoms are closer than 0.1."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        diff = pos[:, None] - pos[None]
        r = np.linalg.norm(diff, axis=-1)
        if np.any(r[np.triu_indices(len(pos), 1)] < 0.1):
            raise ValueError("atoms too close")
        self.results["energy"] = 0.5 * float((pos**2).sum())
        self.results["forces"] = -pos.copy()


def test_not_imported_with_the_package():
    # the heavy adapters (ASE, TorchANI) load on first use only
    mods = ["openmm_actionmin.oracles.ase", "openmm_actionmin.oracles.ani", "torchani"]
    code = f"import sys, openmm_actionmin, openmm_actionmin.oracles; print([m in sys.modules for m in {mods!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[False, False, False]"


def test_default_lj_cutoff_shifts_energies_and_large_rc_matches_torch():
    x = jittered_cluster(13, 3, seed=0)
    torch_e = lennard_jones(13).energy(x, transform=None)
    # ASE defaults: rc = 3 sigma, pair energies shifted to zero at rc
    default = ASEOracle(["Ar"] * 13, LennardJones(), units=REDUCED_UNITS, length_scale=1.0, energy_scale=1.0)
    e_default = default.energy(x)
    assert float((e_default - torch_e).abs().min()) > 1e-3, "ASE's default LJ cutoff should change cluster energies"
    big = ASEOracle.reduced_lj(13, rc=1e3)
    e_big, f_big = big.energy_and_forces(x)
    torch.testing.assert_close(e_big, torch_e, rtol=1e-8, atol=0)
    torch.testing.assert_close(f_big, lennard_jones(13).forces(x), rtol=1e-7, atol=1e-9)


def test_atoms_template_icosahedron():
    # an ase.Atoms template (ASE's 13-atom Mackay icosahedron), nearest-neighbour distance 2^(1/6)
    atoms = Icosahedron("Ar", noshells=2, latticeconstant=2 ** (1 / 6) * np.sqrt(2))
    x = torch.tensor(atoms.positions)[None]
    oracle = ASEOracle(atoms, LennardJones(rc=1e3), units=REDUCED_UNITS, length_scale=1.0, energy_scale=1.0)
    e = float(oracle.energy(x))
    # unrelaxed (the 12 outer atoms are 5% further apart than from the centre): above the minimum -44.326801
    assert e == pytest.approx(float(lennard_jones(13).energy(x)), rel=1e-9)
    assert -44.326801 < e < -42.0


def test_validate_lj_and_emt():
    x = jittered_cluster(13, 3, seed=1)
    random_x = torch.rand(8, 13, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 4.7
    validate_oracle(ASEOracle.reduced_lj(13), x, random_x=random_x)
    # a metal calculator in ASE's own units (eV, Angstrom): a jittered Cu cluster
    cu = jittered_cluster(8, 2, seed=2, spacing=2.55)
    report = validate_oracle(ASEOracle(["Cu"] * 8, EMT()), cu, fd_step=1e-5, fd_rtol=1e-5)
    assert report.max_fd_rel_error < 1e-5


def test_unit_conversion_to_openmm_units():
    # same physical LJ (ASE eV/Angstrom) seen in kJ/mol and nm
    x_ang = jittered_cluster(5, 2, seed=3, spacing=3.8)
    calc_params = dict(sigma=3.4, epsilon=0.0104, rc=1e3)
    ev = ASEOracle(["Ar"] * 5, LennardJones(**calc_params))
    kj = ASEOracle(["Ar"] * 5, LennardJones(**calc_params), units=OPENMM_UNITS)
    assert kj.length_scale == 10.0 and kj.energy_scale == pytest.approx(1 / 96.48533, rel=1e-6)
    e_ev, f_ev = ev.energy_and_forces(x_ang)
    e_kj, f_kj = kj.energy_and_forces(x_ang / 10.0)
    torch.testing.assert_close(e_kj, e_ev * 96.485332, rtol=1e-6, atol=0)
    torch.testing.assert_close(f_kj, f_ev * 964.85332, rtol=1e-6, atol=1e-12)
    validate_oracle(kj, x_ang / 10.0)


def test_units_must_be_explicit():
    with pytest.raises(
        OracleError, match=r"pass length_scale \(Angstrom per sigma\) and energy_scale \(eV per epsilon\)"
    ):
        ASEOracle(["Ar"] * 2, LennardJones(), units=REDUCED_UNITS)
    with pytest.raises(OracleError, match="contradicts units.length='nm'"):
        ASEOracle(["Ar"] * 2, LennardJones(), units=OPENMM_UNITS, length_scale=1.0)
    with pytest.raises(OracleError, match="invalid element symbols"):
        ASEOracle(["Xx", "Ar"], LennardJones())
    with pytest.raises(OracleError, match="pbc"):
        ASEOracle(["Ar"] * 2, LennardJones(), pbc=True)


def test_periodic_cell_in_oracle_units():
    # a 2-atom periodic LJ crystal: the cell is given in oracle (reduced) units
    oracle = ASEOracle(
        ["Ar"] * 2,
        LennardJones(rc=2.5, smooth=True),
        units=Units("epsilon", "sigma"),
        length_scale=1.0,
        energy_scale=1.0,
        cell=np.eye(3) * 1.6,
        pbc=True,
    )
    assert np.allclose(oracle.atoms.cell.lengths(), 1.6)
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.8, 0.8, 0.8]]], dtype=torch.float64)
    shifted = x + 1.6  # a lattice translation of both atoms: same energy
    torch.testing.assert_close(oracle.energy(x), oracle.energy(shifted))
    validate_oracle(oracle, torch.cat([x, x + 0.03]), fd_rtol=1e-4)


def test_calculator_exception_becomes_cap():
    oracle = ASEOracle(["H"] * 3, FailsWhenClose())
    x = torch.tensor(
        [
            [[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]],
            [[0.0, 0, 0], [0.01, 0, 0], [0, 1.0, 0]],
            [[0.5, 0, 0], [1.0, 0, 0], [0, 2.0, 0]],
        ],
        dtype=torch.float64,
    )
    with pytest.warns(RuntimeWarning, match="raised ValueError: atoms too close"):
        e, f = oracle.energy_and_forces(x)
    assert float(e[1]) == oracle.nonfinite_energy and float(f[1].abs().max()) == 0.0
    assert float(e[0]) == pytest.approx(1.0) and float(e[2]) == pytest.approx(0.5 * (0.25 + 1 + 4))
    assert oracle.counters.nonfinite == 1 and oracle.failures == 1
    assert isinstance(oracle.last_exception, ValueError)
    # with the finite transform the cap becomes a bounded energy
    te, _ = oracle.energy_and_forces(x, transform=FiniteEnergy())
    assert float(te[1]) < 1e4 and oracle.counters.nonfinite == 2


def test_coincident_atoms_are_capped():
    oracle = ASEOracle.reduced_lj(3)
    x = torch.tensor([[[0.0, 0, 0], [0.0, 0, 0], [1.1, 0, 0]]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy divide-by-zero inside ASE
        e, f = oracle.energy_and_forces(x)
    assert float(e[0]) == oracle.nonfinite_energy and bool((f == 0).all())
    assert oracle.counters.nonfinite == 1


def test_atoms_from_config_and_to_atoms():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.096]], dtype=torch.float64)
    atoms = atoms_from_config(["O", "H"], x, length_scale=10.0)
    assert atoms.get_chemical_symbols() == ["O", "H"]
    np.testing.assert_allclose(atoms.positions[1], [0, 0, 0.96])
    with pytest.raises(OracleError, match=r"shape \[3, 3\] for 3 symbols"):
        atoms_from_config("H2O", x)
    oracle = ASEOracle(Atoms("OH"), EMT(), units=OPENMM_UNITS)
    back = oracle.to_atoms(x)
    assert back.calc is None
    np.testing.assert_allclose(back.positions, atoms.positions)


def test_counters_and_float32_batch():
    oracle = ASEOracle.reduced_lj(13, dtype=torch.float32)
    x = jittered_cluster(13, 5, seed=4).float()
    e, f = oracle.energy_and_forces(x)
    assert e.dtype == torch.float32 and f.shape == (5, 13, 3)
    assert oracle.counters.force_calls == 5 and oracle.counters.batches == 1


# ----------------------------------------------------------------- batched twins
TWIN_CASES = [
    {"rc": 1e3},
    {},  # ASE's defaults: rc = 3 sigma, shifted pair energies
    {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0},
    {"sigma": 3.4, "epsilon": 0.0104, "rc": 9.0, "smooth": True},
    {"rc": 2.5, "ro": 1.8, "smooth": True},
]


@pytest.mark.parametrize("params", TWIN_CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "defaults")
def test_lennard_jones_twin_matches_ase(params):
    from openmm_actionmin.oracles.ase import ASELennardJones, batched_twin

    sigma = params.get("sigma", 1.0)
    rng = np.random.default_rng(0)
    # far from the origin, and spread enough that some pairs lie beyond a finite rc (and between ro and rc)
    configs = 50.0 + rng.uniform(0.0, 2.8 * sigma, (4, 13, 3))
    atoms = Atoms("Ar13", positions=configs[0])
    atoms.calc = LennardJones(**params)
    twin = batched_twin(atoms)
    assert isinstance(twin, ASELennardJones)
    energy, forces = twin.energy_and_forces(torch.tensor(configs), transform=None)
    for k, pos in enumerate(configs):
        atoms.positions = pos
        assert float(energy[k]) == pytest.approx(atoms.get_potential_energy(), rel=1e-9)
        np.testing.assert_allclose(
            forces[k].numpy(), atoms.get_forces(), rtol=1e-9, atol=1e-9 * np.abs(atoms.get_forces()).max()
        )
    # the pair-list expression with autograd forces agrees with the closed form
    ref_e, ref_f = twin.autograd_evaluate(torch.tensor(configs))
    torch.testing.assert_close(ref_e, energy, rtol=1e-9, atol=0)
    torch.testing.assert_close(ref_f, forces, rtol=1e-9, atol=1e-9 * float(forces.abs().max()))


def test_only_plain_non_periodic_lennard_jones_has_a_twin():
    from openmm_actionmin.oracles.ase import batched_twin, calculator_oracle

    class MyLJ(LennardJones):
        pass

    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0]])
    assert batched_twin(atoms, MyLJ(rc=1e3)) is None
    assert batched_twin(atoms, EMT()) is None
    periodic = atoms.copy()
    periodic.cell = [5, 5, 5]
    periodic.pbc = True
    assert batched_twin(periodic, LennardJones(rc=2.0)) is None
    assert isinstance(calculator_oracle(atoms, EMT()), ASEOracle)
    assert not isinstance(ASEOracle.for_calculator(atoms, LennardJones(rc=1e3)), ASEOracle)


def test_worker_threads_give_the_serial_results():
    x = jittered_cluster(8, 6, seed=2, spacing=2.5) * 1.0
    atoms = Atoms("Cu8", positions=x[0].numpy())
    serial = ASEOracle(atoms, EMT())
    pooled = ASEOracle(atoms, EMT(), workers=3)
    e1, f1 = serial.energy_and_forces(x, transform=None)
    e2, f2 = pooled.energy_and_forces(x, transform=None)
    torch.testing.assert_close(e2, e1, rtol=0, atol=0)
    torch.testing.assert_close(f2, f1, rtol=0, atol=0)
    with pytest.raises(OracleError, match="workers"):
        ASEOracle(atoms, EMT(), workers=0)
