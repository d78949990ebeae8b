"""Cluster systems: builders, names, reference energies, the dense pair oracle."""

import math

import pytest
import torch

from openmm_actionmin.oracles.pair import PairPotentialOracle
from openmm_actionmin.oracles.testing import validate_oracle
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.systems import (
    binary_lj,
    ionic_cluster,
    lj_cluster,
    lj_reference_energies,
    named_system,
    stridernet_binary_lj,
)
from openmm_actionmin.systems.clusters import DEFAULT_DENSITY


def _spread(n, spacing=50.0):
    """Atoms on a very wide grid: all pair energies negligible."""
    side = math.ceil(n ** (1 / 3))
    pts = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)][:n]
    return torch.tensor(pts, dtype=torch.float64) * spacing


def test_reference_energies_and_names():
    table = lj_reference_energies()
    assert min(table) == 3 and max(table) == 150
    assert lj_cluster(13).reference_energy == pytest.approx(-44.326801)
    assert named_system("LJ38").reference_energy == pytest.approx(-173.928427)
    assert named_system("lj75").reference_energy == pytest.approx(-397.492331)
    assert lj_cluster(200).reference_energy is None
    blj = named_system("BLJ100")
    assert blj.name == "BLJ100" and blj.reference_energy is None
    assert named_system("stridernet").name == "BLJ100"
    assert named_system("ION8").name == "ION8"
    assert named_system("BLJ10").types.count(0) == 8


def test_box_follows_density():
    s = lj_cluster(38)
    side = float(s.space.upper[0] - s.space.lower[0])
    assert side == pytest.approx((38 / DEFAULT_DENSITY) ** (1 / 3))
    assert float(s.space.lower[0]) == pytest.approx(-side / 2)
    dense = lj_cluster(38, density=1.0)
    assert float(dense.space.upper[0]) < float(s.space.upper[0])
    assert s.space.to_config(s.space.sample(2)).shape == (2, 38, 3)


def test_stridernet_parameters():
    s = stridernet_binary_lj()
    assert s.types.count(0) == 80 and s.types.count(1) == 20
    assert s.symbols[0] == "Ar" and s.symbols[99] == "Ne"
    rmin = 2 ** (1 / 6)
    for a, b, eps in [(0, 1, 1.0), (0, 80, 1.5), (80, 81, 0.62)]:
        x = _spread(100)
        x[b] = x[a] + torch.tensor([rmin, 0.0, 0.0], dtype=torch.float64)
        e = float(s.oracle.energy(x[None]))
        assert e == pytest.approx(-eps, abs=1e-6), (a, b)


def test_binary_defaults_are_kob_andersen():
    s = binary_lj(4, 2)
    x = _spread(6)
    x[4] = x[0] + torch.tensor([0.8 * 2 ** (1 / 6), 0, 0], dtype=torch.float64)  # A-B at its sigma_ab minimum
    assert float(s.oracle.energy(x[None])) == pytest.approx(-1.5, abs=1e-6)


def test_ionic_cluster_charges_alternate():
    s = ionic_cluster(4, charge=1.0)
    assert s.oracle.charges.tolist() == [1.0, -1.0, 1.0, -1.0]
    assert s.symbols == ["Na", "Cl", "Na", "Cl"]
    x = _spread(4, spacing=1e4)
    x[1] = x[0] + torch.tensor([1.0, 0, 0], dtype=torch.float64)  # LJ zero at r = sigma; Coulomb -1
    assert float(s.oracle.energy(x[None])) == pytest.approx(-1.0, abs=1e-3)


@pytest.mark.parametrize("name", ["LJ13", "BLJ20", "ION8"])
def test_dense_oracle_matches_pair_list_and_passes_conformance(name):
    s = named_system(name)
    assert isinstance(s.oracle, PairPotentialOracle)
    gen = torch.Generator().manual_seed(0)
    minima = minimize_batch(s.oracle, s.space.to_config(s.space.sample(3, gen)), fmax=1e-2).x
    x = minima + 0.05 * torch.randn(minima.shape, generator=gen, dtype=torch.float64)
    e_dense, f_dense = s.oracle.energy_and_forces(x)
    e_ref, f_ref = s.oracle.autograd_evaluate(x)
    assert torch.allclose(e_dense, e_ref, rtol=1e-11, atol=1e-11)
    assert torch.allclose(f_dense, f_ref, rtol=1e-9, atol=1e-9)
    validate_oracle(s.oracle, x, random_x=s.space.to_config(s.space.sample(4, gen)))


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="unknown cluster system 'XYZ12'.*LJ<n>"):
        named_system("XYZ12")
    with pytest.raises(ValueError, match="integer number of atoms >= 2, got 1"):
        lj_cluster(1)
    with pytest.raises(ValueError, match="density must be positive"):
        lj_cluster(13, density=0.0)
    with pytest.raises(ValueError, match="eps_bb must be positive"):
        binary_lj(3, 3, eps_bb=-1.0)


# ------------------------------------------------------------- the benchmark
def test_cluster_benchmark_methods_are_the_registrys_plus_named_peers():
    from openmm_actionmin.benchmarks import clusters as bench
    from openmm_actionmin.registry import METHODS_FOR

    assert bench.REGISTRY_METHODS == METHODS_FOR["cluster"]
    assert bench.PEERS == ("scipy_basinhopping_unbounded", "ase_basinhopping")
    assert tuple(bench.METHODS) == bench.METHOD_NAMES == METHODS_FOR["cluster"] + bench.PEERS
    default = bench.build_parser().parse_args([]).methods.split(",")
    assert "basin_hopping_lattice" in default and set(default) <= set(bench.METHOD_NAMES)
    with pytest.raises(ValueError, match="unknown method"):
        bench.main(["--methods", "basinhopping"])


def test_cluster_benchmark_passes_its_options_to_the_registry(monkeypatch):
    """Registry names run registry.METHODS[name].run; walker options become settings fields."""
    import dataclasses

    import numpy as np

    from openmm_actionmin import registry
    from openmm_actionmin.benchmarks import clusters as bench
    from openmm_actionmin.oracles.base import REDUCED_UNITS
    from openmm_actionmin.result import Result

    seen = {}
    for name in registry.METHODS_FOR["cluster"]:

        def fake(system, config, name=name):
            seen[name] = (config.seed, config.budget_s, dict(config.options), system.start_positions)
            return Result(positions=np.zeros((7, 3)), energy=0.0, units=REDUCED_UNITS, method=name, seed=config.seed)

        monkeypatch.setitem(registry.METHODS, name, dataclasses.replace(registry.METHODS[name], run=fake))
    rows = [
        bench.METHODS[name](
            named_system("LJ7"),
            3,
            5.0,
            1e-3,
            walkers=4,
            angular_prob=0.2,
            reseed_interval=7,
            temperature=0.5,
            quench_fmax=1e-2,
            action_fraction=0.4,
        )
        for name in registry.METHODS_FOR["cluster"]
    ]
    assert [r["method"] for r in rows] == list(registry.METHODS_FOR["cluster"])
    walker_options = dict(
        n_walkers=4, angular_prob=0.2, reseed_interval=7, temperature=0.5, quench_fmax=1e-2, target_tolerance=1e-3
    )
    for name in ("basin_hopping", "basin_hopping_lattice"):
        assert seen[name][:3] == (3, 5.0, walker_options)
    hybrid = seen["hybrid"][2]
    assert hybrid["action_fraction"] == 0.4
    assert {k: getattr(hybrid["basin_hopping"], k) for k in walker_options} == walker_options
    assert seen["action"][2] == {} and seen["scipy_basinhopping"][2] == {}
    # every method starts from the run's random start, the same for every method of a seed
    starts = [s[3] for s in seen.values()]
    assert all(torch.equal(s, starts[0]) for s in starts) and starts[0].shape == (7, 3)


def test_cluster_benchmark_times_the_target_on_the_oracle(monkeypatch):
    """A method that does not time the target itself gets the time of its first evaluation at the GM."""
    import dataclasses

    from openmm_actionmin import registry
    from openmm_actionmin.benchmarks import clusters as bench
    from openmm_actionmin.result import Result
    from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping

    row = bench.run_basin_hopping_lattice(named_system("LJ7"), 0, 20.0, 1e-4, walkers=4)  # times the target itself
    assert row["success"] is True and row["method"] == "basin_hopping_lattice" and row["lattice_starts"] == 3
    best = basin_hopping(
        named_system("LJ7"), BasinHoppingConfig(n_walkers=4, seed=0, budget_s=20.0, lattice_starts=3)
    ).positions

    def fake(system, config):
        oracle = system.oracle
        oracle.energy_and_forces(system.start_positions[None])
        oracle.energy_and_forces(torch.as_tensor(best)[None].repeat(3, 1, 1))
        oracle.energy_and_forces(system.start_positions[None])
        e = float(oracle.energy(torch.as_tensor(best)[None], transform=None)[0])
        return Result(positions=best, energy=e, units=oracle.units, method="action", force_calls=6, wall_s=1.0)

    monkeypatch.setitem(registry.METHODS, "action", dataclasses.replace(registry.METHODS["action"], run=fake))
    row = bench.METHODS["action"](named_system("LJ7"), 0, 5.0, 1e-4)
    assert row["success"] is True and row["force_calls_to_gm"] == 4
    assert 0.0 < row["time_to_gm_s"] < 1.0
