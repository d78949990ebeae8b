"""The CUDA paths: PLNet, ActionTrainer, reparametrisation, baselines and oracles with ``device="cuda"``.

Skipped where torch sees no CUDA device (CI and the developers' machines); run
on a lent GPU machine with ``bench/gpu_check.sh``. Real parts throughout: the
OpenMM tests use OpenMM's own CUDA platform and skip where its plugin is absent.
"""

import contextlib
import math

import pytest
import torch

from openmm_actionmin.benchmarks.synthetic import evaluate_run, make_system, run_method
from openmm_actionmin.models.plnet import PLNet, PLNetConfig
from openmm_actionmin.oracles import lennard_jones, validate_oracle
from openmm_actionmin.registry import METHODS_FOR
from openmm_actionmin.search.action import ActionTrainer
from trainer_helpers import small_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plnet_on_cuda_matches_the_same_weights_on_cpu(dtype):
    torch.manual_seed(0)
    cpu = PLNet(PLNetConfig(dim=12, hidden=32, dtype=dtype))
    gpu = PLNet(PLNetConfig(dim=12, hidden=32, dtype=dtype)).to(CUDA)
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(64, 12, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(gpu(x.to(CUDA)).cpu(), cpu(x), rtol=tol, atol=tol)
    x_star = gpu.minimizer()
    assert x_star.device.type == "cuda"
    torch.testing.assert_close(x_star.cpu(), cpu.minimizer(), rtol=100 * tol, atol=100 * tol)
    # gradients reach every parameter on the device
    gpu(x.to(CUDA)).sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in gpu.parameters() if p.requires_grad)


def test_trainer_on_cuda_runs_on_the_device_and_tracks_the_cpu_run():
    results = {}
    for device in ("cpu", "cuda"):
        system = make_system("alpine1", 20, seed=1, device=device)
        trainer = ActionTrainer(system, small_config(max_rounds=4, warm_start_steps=100))
        results[device] = trainer.run()
        if device == "cuda":
            assert all(p.device.type == "cuda" for p in trainer.model.parameters())
            assert trainer.oracle.device.type == "cuda"
    cpu, gpu = results["cpu"], results["cuda"]
    assert len(gpu.history) == len(cpu.history) == 5
    assert math.isfinite(gpu.energy) and gpu.force_calls == cpu.force_calls
    # same seed, same samples (drawn on the CPU): the warm start's candidate agrees to float64 noise
    assert gpu.history[0]["candidate_distance"] == pytest.approx(cpu.history[0]["candidate_distance"], rel=1e-6)
    # later rounds may part by rounding only; they stay on the same path here
    assert gpu.history[-1]["best_distance"] == pytest.approx(cpu.history[-1]["best_distance"], rel=1e-3)


def test_trainer_checkpoint_resume_on_cuda(tmp_path):
    system = make_system("schaffer_f7", 10, seed=0, device="cuda")
    cfg = dict(max_rounds=5, checkpoint_every=2, warm_start_steps=100)
    full = ActionTrainer(system, small_config(**cfg)).run()
    ckpt = tmp_path / "cuda.pt"

    class Killed(Exception):
        pass

    def kill(row):
        if row["round"] == 3:
            raise Killed

    with pytest.raises(Killed):
        ActionTrainer(system, small_config(checkpoint_path=str(ckpt), **cfg)).run(on_round=kill)
    resumed = ActionTrainer(system, small_config(checkpoint_path=str(ckpt), **cfg)).run()
    assert [r["best_energy"] for r in resumed.history] == [r["best_energy"] for r in full.history]
    assert (resumed.positions == full.positions).all()


@pytest.mark.parametrize("method", METHODS_FOR["function"])
def test_every_benchmark_method_runs_with_a_cuda_oracle(method):
    system = make_system("alpine1", 30, seed=0, device="cuda")
    result = run_method(method, system, 4.0, 0, max_rounds=3)
    row = evaluate_run(system, result, function="alpine1", dim=30, seed=0, shifted=True)
    assert math.isfinite(row["distance"]) and math.isfinite(row["energy"]) and row["force_calls"] > 0
    # the reported energy is the true energy at the reported point
    e = float(system.oracle.energy(torch.as_tensor(result.positions)[None], transform=None)[0])
    assert e == pytest.approx(result.energy, rel=1e-9, abs=1e-9)


def test_pair_oracle_conformance_on_cuda():
    oracle = lennard_jones(13, device="cuda")
    g = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(3, dtype=torch.float64)] * 3, indexing="ij"), -1)
    x = grid.reshape(-1, 3)[:13][None] * 1.12 + 0.05 * torch.randn(3, 13, 3, generator=g, dtype=torch.float64)
    validate_oracle(oracle, x, random_x=2.5 * torch.rand(16, 13, 3, generator=g, dtype=torch.float64))
    cpu = lennard_jones(13)
    torch.testing.assert_close(oracle.energy(x).cpu(), cpu.energy(x), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- OpenMM
def _openmm_cuda():
    openmm = pytest.importorskip("openmm")
    from openmm_actionmin.oracles.openmm import available_platforms

    if "CUDA" not in available_platforms():
        pytest.skip(f"OpenMM has no CUDA platform here ({available_platforms()})")
    return openmm


def test_openmm_cuda_pool_matches_reference_and_conforms():
    _openmm_cuda()
    from openmm_actionmin.data import data_path
    from openmm_actionmin.oracles.openmm import OpenMMOracle

    pdb = data_path("systems", "pdb", "1l2y_trpcage_model1.pdb")
    ref = OpenMMOracle.from_pdb(pdb, solvent="obc2", platform="Reference")
    # more Contexts than GPUs: allowed (and tested here), but warned about as slower than one per GPU
    warns = (
        pytest.warns(UserWarning, match="time-sliced") if torch.cuda.device_count() < 3 else contextlib.nullcontext()
    )
    with warns:
        gpu = OpenMMOracle.from_pdb(
            pdb,
            solvent="obc2",
            platform="CUDA",
            n_contexts=3,
            device="cuda",
            platform_properties={"Precision": "double"},
        )
    assert gpu.platform_name == "CUDA" and len(gpu._contexts) == 3
    g = torch.Generator().manual_seed(0)
    x = ref.positions[None] + 0.01 * torch.randn((7,) + tuple(ref.positions.shape), generator=g, dtype=torch.float64)
    e_ref, f_ref = ref.energy_and_forces(x, transform=None)
    e_gpu, f_gpu = gpu.energy_and_forces(x, transform=None)
    assert e_gpu.device.type == "cuda" and f_gpu.device.type == "cuda"
    torch.testing.assert_close(e_gpu.cpu(), e_ref, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(f_gpu.cpu(), f_ref, rtol=1e-5, atol=1e-2)
    validate_oracle(gpu, x[:3], fd_step=1e-5, fd_rtol=1e-4, fd_directions=2, batch_atol=1e-6, batch_rtol=1e-9)
    # absurd geometries (all atoms in a small random box): finite under the default transform
    lo, hi = ref.positions.min(0).values, ref.positions.max(0).values
    boxes = lo + (hi - lo) * torch.rand(64, ref.n_atoms, 3, generator=g, dtype=torch.float64)
    energy, forces = gpu.energy_and_forces(boxes)
    assert bool(torch.isfinite(energy).all()) and bool(torch.isfinite(forces).all())
    ref.close()
    gpu.close()


def test_openmm_cuda_mixed_precision_is_the_default_choice():
    _openmm_cuda()
    from openmm_actionmin.data import data_path
    from openmm_actionmin.oracles.openmm import OpenMMOracle

    oracle = OpenMMOracle.from_pdb(data_path("systems", "pdb", "5awl_cln025.pdb"), solvent="obc2", n_contexts=2)
    assert oracle.platform_name == "CUDA"  # CUDA comes first in the platform order when it is there
    ref = OpenMMOracle.from_pdb(data_path("systems", "pdb", "5awl_cln025.pdb"), solvent="obc2", platform="Reference")
    x = ref.positions[None].repeat(4, 1, 1)
    torch.testing.assert_close(oracle.energy(x, transform=None), ref.energy(x, transform=None), rtol=1e-5, atol=1e-2)
    oracle.close()
    ref.close()


def test_minimize_builds_clusters_and_functions_on_cuda():
    import openmm_actionmin as am

    lj = am.minimize("LJ13", budget_s=10.0, seed=0, device="cuda", progress=False)
    assert lj.energy == pytest.approx(-44.326801, abs=1e-4)  # the LJ13 icosahedron
    fn = am.minimize("alpine1:30", "action", budget_s=5.0, seed=0, device="cuda", progress=False, max_rounds=3)
    assert math.isfinite(fn.energy) and fn.force_calls > 0


# ------------------------------------------------------ neural reparametrisation
def test_reparam_runs_on_cuda_with_the_gnn_and_the_loop_oracle():
    from openmm_actionmin.oracles import validate_oracle as check
    from openmm_actionmin.search.reparam import GNNReparam, HessianProducts, ReparamConfig, reparam_search, slow_modes
    from openmm_actionmin.systems.loops import loop_chain

    system = loop_chain(40, "pure_lj", seed=1, device="cuda")
    x0 = system.start_positions.to(CUDA)
    check(system.oracle, x0[None] + 0.01 * torch.randn(3, *x0.shape, dtype=torch.float64, device=CUDA))
    _, psi = slow_modes(HessianProducts(system.oracle, x0), x0, 6)
    psi = torch.as_tensor(psi, device=CUDA)
    model = GNNReparam(
        x0[None], psi[None], depth=2, hidden=8, init_scale=0.1, generator=torch.Generator().manual_seed(0)
    )
    assert model().device.type == "cuda" and torch.equal(model(), x0[None])
    assert all(p.device.type == "cuda" for p in model.parameters())
    for form in ("linear", "gnn"):
        res = reparam_search(system, ReparamConfig(form=form, budget_s=3.0, n_starts=2, seed=1))
        assert res.energy < res.extra["start_energy"] and res.force_calls > 0
        e = float(system.oracle.energy(torch.as_tensor(res.positions, device=CUDA)[None])[0])
        assert e == pytest.approx(res.energy, rel=1e-9, abs=1e-9)
