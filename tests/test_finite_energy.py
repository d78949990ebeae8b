"""The energy cap bounds every returned energy, and energy stays monotone as a pair closes in.

Real backends throughout: the torch LJ oracle, ASE's ``LennardJones`` through the
ASE oracle, and OpenMM (two LJ particles in a ``NonbondedForce``, and two atoms of
CLN025). Every test reads the cap from the oracle's ``nonfinite_energy``.
"""

import math

import openmm
import pytest
import torch
from ase.calculators.lj import LennardJones

from openmm_actionmin.data import data_path
from openmm_actionmin.oracles import REDUCED_UNITS, FiniteEnergy, InvalidConfigurationError, lennard_jones
from openmm_actionmin.oracles.ase import ASEOracle
from openmm_actionmin.oracles.openmm import OpenMMOracle
from openmm_actionmin.oracles.testing import closing_pair_path, validate_oracle

CLN025 = data_path("systems", "pdb", "5awl_cln025.pdb")

#: Separations of the closing pair, 1.0 down to 1e-6 oracle length units.
SEPARATIONS = torch.logspace(0.0, -6.0, 61, dtype=torch.float64)


def dimer_path(separations=SEPARATIONS):
    """Two atoms on the x axis at the given separations: ``[S, 2, 3]``."""
    x = torch.zeros(len(separations), 2, 3, dtype=torch.float64)
    x[:, 0, 0] = 0.3  # away from the origin, so the distance is a difference of coordinates
    x[:, 1, 0] = 0.3 + separations
    return x


def openmm_dimer(platform):
    """Two neutral LJ particles (sigma 1 nm, epsilon 1 kJ/mol), no cutoff."""
    system = openmm.System()
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for _ in range(2):
        system.addParticle(1.0)
        force.addParticle(0.0, 1.0, 1.0)
    system.addForce(force)
    return OpenMMOracle(None, system, platform=platform, threads_per_context=1)


def _oracles():
    return {
        "torch-lj": lambda: lennard_jones(2),
        "ase-lj": lambda: ASEOracle(
            ["Ar", "Ar"],
            LennardJones(sigma=1.0, epsilon=1.0, rc=10.0),
            units=REDUCED_UNITS,
            length_scale=1.0,
            energy_scale=1.0,
        ),
        "openmm-cpu": lambda: openmm_dimer("CPU"),
        "openmm-reference": lambda: openmm_dimer("Reference"),
    }


def assert_capped_and_monotone(oracle, x, tf=None):
    """Energies along ``x`` (a closing path) never decrease, never exceed the cap, are never NaN."""
    tf = FiniteEnergy() if tf is None else tf
    cap = oracle.nonfinite_energy
    e, f = oracle.energy_and_forces(x, transform=None)
    assert not bool(torch.isnan(e).any()) and bool(torch.isfinite(e).all()) and bool(torch.isfinite(f).all())
    assert float(e.max()) <= cap
    assert bool((torch.diff(e) >= 0).all()), e.tolist()
    assert bool((f[e == cap] == 0).all())  # the cap is flat
    te, tf_forces = oracle.energy_and_forces(x, transform=tf)
    assert bool(torch.isfinite(te).all()) and bool(torch.isfinite(tf_forces).all())
    assert bool((torch.diff(te) >= 0).all()), te.tolist()
    assert float(te.max()) <= float(tf(torch.tensor([cap], dtype=torch.float64))[0])
    torch.testing.assert_close(te, tf(e)[0], rtol=1e-12, atol=0)
    return e


@pytest.mark.parametrize("name", list(_oracles()))
def test_closing_pair_rises_to_the_cap_and_stays(name):
    with _oracles()[name]() as oracle:
        e = assert_capped_and_monotone(oracle, dimer_path())
        cap = oracle.nonfinite_energy
        # the closest separations are at the cap: raw 4 r^-12 passes 1e30 at r = 3.5e-3
        assert float(e[-1]) == cap and int((e == cap).sum()) >= 20
        assert oracle.counters.capped == int((e == cap).sum()) * 2  # raw and transformed calls
        assert oracle.counters.nonfinite <= oracle.counters.capped
        # below the cap the raw energy passes through untouched: 4 (r^-12 - r^-6) at r = 0.1
        i = int(torch.argmin((SEPARATIONS - 0.1).abs()))
        assert float(e[i]) == pytest.approx(4.0 * (0.1**-12 - 0.1**-6), rel=1e-5)


def test_finite_raw_energy_above_the_cap_is_capped():
    oracle = lennard_jones(2)
    x = dimer_path(torch.tensor([1e-3, 1e-6], dtype=torch.float64))
    raw_e, _ = oracle._evaluate(x)
    assert bool(torch.isfinite(raw_e).all()) and float(raw_e.min()) > oracle.nonfinite_energy  # 4e36, 4e72
    e, f = oracle.energy_and_forces(x, transform=None)
    assert e.tolist() == [oracle.nonfinite_energy] * 2 and bool((f == 0).all())
    assert (oracle.counters.capped, oracle.counters.nonfinite) == (2, 0)


def test_lower_cap_bounds_every_energy():
    oracle = lennard_jones(2, nonfinite_energy=1e6)
    e = assert_capped_and_monotone(oracle, dimer_path())
    assert float(e.max()) == 1e6
    # rises continuously to the cap: the last value below it is within a step's growth of it
    below = e[e < 1e6]
    assert float(below.max()) > 1e6 / 10.0 ** (12 * 0.1) and float(below.max()) < 1e6


def test_nan_from_the_backend_is_capped_and_counted():
    class NaNAt(type(lennard_jones(2))):
        def _evaluate(self, x):
            e, f = super()._evaluate(x)
            e[1] = float("nan")
            return e, f

    oracle = NaNAt(2)
    e, f = oracle.energy_and_forces(dimer_path(torch.tensor([1.0, 0.9, 0.8], dtype=torch.float64)), transform=None)
    assert float(e[1]) == oracle.nonfinite_energy and bool((f[1] == 0).all())
    assert bool(torch.isfinite(e).all()) and float(e[0]) < float(e[2])
    assert (oracle.counters.nonfinite, oracle.counters.capped) == (1, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input_still_names_the_atom(bad):
    oracle = lennard_jones(2)
    x = dimer_path(torch.tensor([1.0, 0.5], dtype=torch.float64))
    x[1, 1, 2] = bad
    with pytest.raises(InvalidConfigurationError, match=r"configuration 1, atom 1 \(coordinate z\)"):
        oracle.energy(x)
    assert oracle.counters.force_calls == 0


def test_cap_must_be_finite():
    with pytest.raises(ValueError, match="must be finite"):
        lennard_jones(2, nonfinite_energy=math.inf)


def test_finite_energy_monotone_and_bounded_up_to_the_cap():
    cap = lennard_jones(2).nonfinite_energy
    for tf in (FiniteEnergy(), FiniteEnergy(threshold=0.0, scale=1e-3), FiniteEnergy(threshold=-5.0, scale=1e4)):
        e = torch.cat(
            [
                torch.linspace(-10.0, 10.0, 101, dtype=torch.float64),
                torch.logspace(1.0, math.log10(cap), 400, dtype=torch.float64),
            ]
        )
        e = torch.sort(e).values
        t, slope = tf(e)
        assert bool(torch.isfinite(t).all()) and bool((slope > 0).all())
        assert bool((torch.diff(t) >= 0).all())
        top = tf.threshold + tf.scale * math.log1p((cap - tf.threshold) / tf.scale)
        assert float(t.max()) == pytest.approx(top, rel=1e-12)


def test_openmm_cln025_pair_closing_in():
    """Two CA atoms of CLN025 (vacuum), one moved alone towards the other.

    Further out the moved atom's stretched bonds dominate the energy; from 0.01 nm
    on the pair's repulsion does.
    """
    with OpenMMOracle.from_pdb(CLN025, solvent="none", platform="CPU", threads_per_context=1) as oracle:
        names = [(a.residue.index, a.name) for a in oracle.topology.atoms()]
        i = names.index((1, "CA"))
        j = names.index((8, "CA"))
        path = closing_pair_path(oracle.positions, i, j, start=1e-2, stop=1e-6, steps=41)
        e = assert_capped_and_monotone(oracle, path)
        assert float(e[-1]) == oracle.nonfinite_energy
        # 1e-3 nm apart the raw energy (about 3e30 kJ/mol) is above the cap: returned at the cap
        at_1e3 = closing_pair_path(oracle.positions, i, j, start=1e-3, stop=1e-4, steps=2)[:1]
        assert float(oracle.energy(at_1e3, transform=None)) == oracle.nonfinite_energy


@pytest.mark.parametrize("name", ["torch-lj", "ase-lj", "openmm-reference"])
def test_conformance_kit_checks_the_closing_pair(name):
    with _oracles()[name]() as oracle:
        x = dimer_path(torch.tensor([1.12, 1.3], dtype=torch.float64))
        report = validate_oracle(oracle, x, closing_pair=(0, 1), closing_start=1.0)
        assert report.n_closing_checked > 0
