"""Neural reparametrisation: slow modes, the linear and graph-network forms, runs on every kind of atomic target."""

import numpy as np
import pytest
import torch

from openmm_actionmin import data_path
from openmm_actionmin.oracles.loops import LoopChainOracle, ideal_loop_chain, loop_formed
from openmm_actionmin.oracles.testing import validate_oracle
from openmm_actionmin.search.local import minimize_batch
from openmm_actionmin.search.reparam import (
    GNNReparam,
    HessianProducts,
    LinearReparam,
    ReparamConfig,
    reparam_search,
    rigid_basis,
    slow_modes,
)
from openmm_actionmin.systems.clusters import lj_cluster
from openmm_actionmin.systems.loops import loop_chain

CLN025 = str(data_path("systems", "pdb", "5awl_cln025.pdb"))


@pytest.fixture(scope="module")
def lj_minimum():
    """A local minimum of LJ20 (a spectrum without zero modes beyond the rigid ones)."""
    system = lj_cluster(20)
    x = system.space.to_config(system.space.sample(1, torch.Generator().manual_seed(0)))
    return system, minimize_batch(system.oracle, x, fmax=1e-6).x[0]


@pytest.mark.parametrize("solver", ["lobpcg", "eigsh"])
def test_modes_are_orthonormal_rigid_free_and_match_the_dense_eigensolver(lj_minimum, solver):
    system, x0 = lj_minimum
    products = HessianProducts(system.oracle, x0, "autograd")
    ref_w, ref = slow_modes(products, x0, 4, solver="dense")
    w, psi = slow_modes(products, x0, 4, solver=solver, tol=1e-8, maxiter=500)
    assert np.allclose(psi @ psi.T, np.eye(4), atol=1e-10)
    assert np.abs(psi @ rigid_basis(x0).numpy()).max() < 1e-8  # no rigid-body motion among them
    assert np.allclose(w, ref_w, rtol=1e-6)
    assert np.allclose(psi.T @ psi, ref.T @ ref, atol=1e-6)  # the same subspace
    assert ref_w[0] > 1e-3  # at a minimum the six zero modes were the rigid ones, and they are gone


def test_force_differences_give_the_autograd_modes(lj_minimum):
    system, x0 = lj_minimum
    exact, _ = slow_modes(HessianProducts(system.oracle, x0, "autograd"), x0, 3, solver="dense")
    fd = HessianProducts(system.oracle, x0, "fd", fd_step=1e-4)
    w, _ = slow_modes(fd, x0, 3, solver="dense")
    assert np.allclose(w, exact, rtol=1e-4) and fd.force_calls >= 2 * 60  # two rows per product


def test_reparametrised_gradient_is_the_chain_rule(lj_minimum):
    system, x0 = lj_minimum
    _, psi = slow_modes(HessianProducts(system.oracle, x0), x0, 5, solver="dense")
    model = LinearReparam(x0[None], torch.as_tensor(psi)[None])
    with torch.no_grad():
        model.z.copy_(0.05 * torch.randn(1, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    x = model()
    system.oracle.energy(x).sum().backward()
    forces = system.oracle.forces(x.detach())
    chain = -(torch.as_tensor(psi) @ forces.reshape(-1))
    assert torch.allclose(model.z.grad[0], chain, rtol=1e-10, atol=1e-12)


def test_gnn_returns_x0_at_initialisation_and_moves_atoms_together(lj_minimum):
    system, x0 = lj_minimum
    _, psi = slow_modes(HessianProducts(system.oracle, x0), x0, 6, solver="dense")
    model = GNNReparam(
        x0[None],
        torch.as_tensor(psi)[None],
        depth=2,
        hidden=8,
        init_scale=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(model(), x0[None])
    a = model.adjacency[0]
    assert torch.allclose(a, a.T) and bool((a >= 0).all())
    system.oracle.energy(model()).sum().backward()
    assert float(model.z.grad.abs().max()) > 0 and float(model.readout.grad.abs().max()) > 0


@pytest.mark.parametrize("variant", ["bond_lj", "pure_lj"])
def test_loop_chains_pass_the_conformance_kit_and_know_their_minimum(variant):
    system = loop_chain(30, variant, seed=2)
    ideal = system.reference_positions
    x = torch.stack(
        [
            system.start_positions,
            ideal,
            ideal + 0.05 * torch.randn(30, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
        ]
    )
    validate_oracle(system.oracle, x)
    e, f = system.oracle.energy_and_forces(ideal[None])
    assert float(e[0]) == pytest.approx(system.reference_energy, abs=1e-10) and float(f.abs().max()) < 1e-10
    assert float(loop_formed(ideal)) == 1.0 and float(loop_formed(system.start_positions)) < 0.5
    assert torch.allclose(ideal_loop_chain(30, system.oracle.bond_length), ideal)
    with pytest.raises(ValueError, match="beads above 10"):
        LoopChainOracle(10)


@pytest.mark.parametrize("form", ["linear", "gnn"])
def test_a_short_run_lowers_the_energy_of_a_cluster_and_a_loop_chain(form):
    from openmm_actionmin.benchmarks.warmup import warm_up

    warm_up()  # torch's first optimizer imports torch._dynamo: seconds a 1.5-s budget cannot spare
    for system in (lj_cluster(13), loop_chain(40, "pure_lj", seed=1)):
        res = reparam_search(system, ReparamConfig(form=form, budget_s=1.5, n_starts=2, seed=1))
        assert res.energy < res.extra["start_energy"] and res.extra["before_polish_energy"] <= res.extra["start_energy"]
        assert res.wall_s <= 1.5 + 0.5 and res.force_calls > 0 and res.extra["n_modes"] >= 1
        assert res.method == "reparam" and res.history[-1]["phase"] == "polish"


def test_a_short_run_lowers_the_energy_of_a_peptide():
    import openmm_actionmin as am

    res = am.minimize(CLN025, "reparam", budget_s=3, seed=0, progress=False, form="linear", threads=1)
    assert res.energy < res.extra["start_energy"] and res.wall_s <= 3 + 1.0
    assert res.units.energy == "kJ/mol"


def test_bad_input_gets_a_clear_error():
    import openmm_actionmin as am
    from openmm_actionmin.api import as_system

    with pytest.raises(ValueError, match=r"n_modes=40 is outside 1\.\.33: .*13 atoms"):
        reparam_search(lj_cluster(13), ReparamConfig(n_modes=40, budget_s=1))
    with pytest.raises(ValueError, match="does not run on a function"):
        am.minimize("alpine1:4", "reparam", budget_s=1, progress=False)
    with pytest.raises(ValueError, match="needs an atomic system"):
        reparam_search(as_system("alpine1:4"), ReparamConfig(budget_s=1))
    with pytest.raises(ValueError, match="form must be one of"):
        ReparamConfig(form="mlp")


def test_copies_of_one_start_share_their_modes_and_random_starts_do_not():
    chain = loop_chain(40, "pure_lj", seed=1)
    config = dict(form="linear", budget_s=None, max_steps=20, patience=1000, n_starts=3, seed=1, polish="none")
    shared = reparam_search(chain, ReparamConfig(**config))
    assert len(shared.extra["eigenvalues"]) == 1 and not shared.extra["modes_timed_out"]
    assert shared.extra["adam_steps"] == 20
    apart = reparam_search(chain, ReparamConfig(**config, shared_modes=False))
    assert len(apart.extra["eigenvalues"]) == 3
    np.testing.assert_allclose(apart.extra["eigenvalues"][0], shared.extra["eigenvalues"][0], rtol=1e-3, atol=1e-6)
    cluster = reparam_search(lj_cluster(13), ReparamConfig(**{**config, "n_starts": 2, "max_steps": 5}))
    assert len(cluster.extra["eigenvalues"]) == 2  # random starts: modes of each
