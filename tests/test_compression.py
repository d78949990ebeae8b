"""Two-phase compressed quenches: the compressed oracle and basin hopping with them."""

import pytest
import torch

from openmm_actionmin.oracles import lennard_jones, validate_oracle
from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping
from openmm_actionmin.search.compression import CompressedOracle
from openmm_actionmin.systems.clusters import lj_cluster


def _lattice(n, batch, seed, spacing=1.1, jitter=0.05):
    gen = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(3, dtype=torch.float64)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return grid[:n] * spacing + jitter * torch.randn(batch, n, 3, generator=gen, dtype=torch.float64)


def _configs(n, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, n, 3, generator=gen, dtype=torch.float64) * 2.5


def test_compressed_oracle_passes_the_conformance_kit_and_adds_the_harmonic_term():
    base = lennard_jones(13)
    oracle = CompressedOracle(base, 0.5)
    x = _lattice(13, 3, 0) + torch.arange(3, dtype=torch.float64).reshape(3, 1, 1)  # rows at other places
    validate_oracle(oracle, x, random_x=_configs(13, 8, 1))
    e_base = base.energy(x, transform=None)
    e = oracle.energy(x, transform=None)
    offset = x - x.mean(dim=1, keepdim=True)
    torch.testing.assert_close(e - e_base, 0.5 * (offset**2).sum(dim=(1, 2)))
    # a translated configuration has the same compressed energy: the pull is towards the centre of mass
    torch.testing.assert_close(oracle.energy(x + 3.0, transform=None), e)


def test_compressed_oracle_counts_evaluations_once_in_the_base():
    base = lennard_jones(13)
    oracle = CompressedOracle(base, 1.0)
    before = base.counters.force_calls
    oracle.energy_and_forces(_configs(13, 5, 2))
    assert base.counters.force_calls - before == 5


def test_compression_needs_atoms_and_a_positive_constant():
    from openmm_actionmin.oracles.synthetic import SyntheticOracle

    with pytest.raises(ValueError, match="positive"):
        CompressedOracle(lennard_jones(5), 0.0)
    with pytest.raises(ValueError, match="atomic"):
        CompressedOracle(SyntheticOracle("alpine1", 4), 1.0)
    with pytest.raises(ValueError, match="compression"):
        BasinHoppingConfig(compression=-1.0)


def test_basin_hopping_with_compressed_quenches_reports_true_energies():
    system = lj_cluster(13)
    result = basin_hopping(
        system, BasinHoppingConfig(seed=0, budget_s=None, max_steps=30, compression=0.5, stop_at_target=True)
    )
    assert result.extra["success"]
    assert result.energy == pytest.approx(-44.326801, abs=1e-5)
    # the reported energy is that of the true potential at the returned positions
    true = float(system.oracle.energy(torch.as_tensor(result.positions)[None], transform=None))
    assert true == pytest.approx(result.energy, abs=1e-8)
    assert all(e >= -44.3269 for e in result.extra["minima_energies"])  # no compressed energy leaks in
