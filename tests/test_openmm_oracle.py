"""OpenMM oracle: exact agreement with OpenMM, conformance, pool, GB models, cluster XMLs.

Real OpenMM throughout (no mocks). Reference platform where double precision is
needed (finite differences, 1e-8 comparisons), CPU platform elsewhere.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_actionmin.data import data_path
from openmm_actionmin.oracles import REDUCED_UNITS, FiniteEnergy, OracleError, lennard_jones, lj_coulomb
from openmm_actionmin.oracles.openmm import OpenMMOracle, build_native_obc2
from openmm_actionmin.oracles.testing import validate_oracle
from openmm_actionmin.pdbprep import prepare_pdb

TRPCAGE = data_path("systems", "pdb", "1l2y_trpcage_model1.pdb")
CLN025 = data_path("systems", "pdb", "5awl_cln025.pdb")
PDBS = {"trpcage": TRPCAGE, "cln025": CLN025}


def _near_start(oracle, n, scale=0.01, seed=0):
    """Configurations ``[n, N, 3]``: the prepared start plus small Gaussian noise (nm)."""
    g = torch.Generator().manual_seed(seed)
    noise = scale * torch.randn((n,) + tuple(oracle.positions.shape), generator=g, dtype=torch.float64)
    return oracle.positions[None] + noise


def _lattice(n, spacing=1.12):
    grid = torch.stack(torch.meshgrid(*[torch.arange(3, dtype=torch.float64)] * 3, indexing="ij"), -1)
    return grid.reshape(-1, 3)[:n] * spacing


def _jittered(n, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return _lattice(n)[None] + 0.08 * torch.randn(batch, n, 3, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def ref_oracles():
    """Reference-platform oracles: (name, solvent) -> oracle."""
    out = {}
    for name, path in PDBS.items():
        for solvent in ("none", "obc2", "obc2-xml"):
            out[name, solvent] = OpenMMOracle.from_pdb(path, solvent=solvent, platform="Reference")
    yield out
    for o in out.values():
        o.close()


# ------------------------------------------------------------- exact agreement
@pytest.mark.parametrize("name", ["trpcage", "cln025"])
@pytest.mark.parametrize("platform", ["CPU", "Reference"])
def test_equals_context_getstate(name, platform):
    oracle = OpenMMOracle.from_pdb(
        PDBS[name], solvent="obc2", platform=platform, threads_per_context=1 if platform == "CPU" else None
    )
    assert oracle.platform_name == platform
    x = _near_start(oracle, 3, seed=1)
    energy, forces = oracle.energy_and_forces(x)
    # an independent Context of the same System on the same platform
    props = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(
        oracle.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform), props
    )
    for i in range(3):
        context.setPositions(x[i].numpy() * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        e_ref = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        f_ref = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        assert float(energy[i]) == pytest.approx(e_ref, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(forces[i].numpy(), f_ref, rtol=1e-12, atol=1e-9)
    assert oracle.units.energy == "kJ/mol" and oracle.units.length == "nm"
    assert oracle.counters.force_calls == 3
    oracle.close()


def test_from_pdb_record_and_group_energies(ref_oracles):
    oracle = ref_oracles["cln025", "obc2"]
    assert oracle.positions.shape == (166, 3) and oracle.n_atoms == 166
    assert oracle.topology.getNumAtoms() == 166 and oracle.solvent == "obc2"
    assert oracle.modeller.topology.getNumAtoms() == 166 and oracle.preparation.removed_waters == 12
    assert oracle.system.getNumConstraints() == 0
    x = _near_start(oracle, 2, seed=2)
    groups = oracle.group_energies(x)
    assert set(groups) == {
        "HarmonicBondForce",
        "HarmonicAngleForce",
        "PeriodicTorsionForce",
        "NonbondedForce",
        "GBSAOBCForce",
    }
    total = sum(groups.values())
    torch.testing.assert_close(total, oracle.energy(x), rtol=1e-10, atol=1e-7)
    assert all(v.shape == (2,) for v in groups.values())


# ------------------------------------------------------------------- conformance
@pytest.mark.parametrize("solvent", ["none", "obc2"])
def test_conformance_reference(ref_oracles, solvent):
    oracle = ref_oracles["trpcage", solvent]
    x = _near_start(oracle, 2, seed=3)
    report = validate_oracle(oracle, x, fd_step=1e-5, fd_rtol=1e-5, fd_directions=2)
    assert report.max_fd_rel_error < 1e-5


def test_conformance_cpu_relaxed_fd():
    oracle = OpenMMOracle.from_pdb(CLN025, solvent="obc2", platform="CPU", n_contexts=2, threads_per_context=1)
    x = _near_start(oracle, 2, seed=4)
    # float32 positions on CPU: larger step, looser tolerance; pool slices must equal a loop exactly
    report = validate_oracle(oracle, x, fd_step=1e-3, fd_rtol=2e-2, batch_atol=0.0, batch_rtol=0.0)
    assert report.max_batch_loop_error == 0.0
    oracle.close()


def test_random_boxes_finite_with_pool():
    oracle = OpenMMOracle.from_pdb(TRPCAGE, solvent="none", platform="CPU", n_contexts=2, threads_per_context=1)
    assert oracle.threads_per_context == 1
    lo, hi = oracle.positions.min(0).values, oracle.positions.max(0).values
    g = torch.Generator().manual_seed(5)
    x = lo + (hi - lo) * torch.rand(1000, oracle.n_atoms, 3, generator=g, dtype=torch.float64)
    raw, _ = oracle.energy_and_forces(x[:50], transform=None)
    assert float(raw.min()) > 1e4  # absurd geometries: the cap/transform is really exercised
    energy, forces = oracle.energy_and_forces(x, transform=FiniteEnergy())
    assert bool(torch.isfinite(energy).all()) and bool(torch.isfinite(forces).all())
    assert float(energy.max()) < 1e4
    assert oracle.counters.force_calls == 1050
    oracle.close()


# ----------------------------------------------------------------- GB models
@pytest.mark.parametrize("name", ["trpcage", "cln025"])
def test_native_obc2_equals_xml_obc2(ref_oracles, name):
    native, xml = ref_oracles[name, "obc2"], ref_oracles[name, "obc2-xml"]
    vacuum = ref_oracles[name, "none"]
    x = _near_start(native, 2, seed=6)
    e_n, f_n = native.energy_and_forces(x)
    e_x, f_x = xml.energy_and_forces(x)
    e_v = vacuum.energy(x)
    assert float((e_n - e_x).abs().max()) < 1e-3
    assert float((e_n - e_v).abs().min()) > 100.0  # the solvent term is really there
    np.testing.assert_allclose(f_n.numpy(), f_x.numpy(), rtol=1e-5, atol=1e-3)


def test_native_obc2_builder_errors():
    prep = prepare_pdb(CLN025)
    ff = app.ForceField("amber14-all.xml")
    system = ff.createSystem(prep.topology, nonbondedMethod=app.CutoffNonPeriodic, constraints=None)
    with pytest.raises(OracleError, match="NoCutoff"):
        build_native_obc2(system, prep.topology)


def test_gbn2_and_vacuum_differ():
    gbn2 = OpenMMOracle.from_pdb(CLN025, solvent="gbn2", platform="CPU", threads_per_context=1)
    assert any(isinstance(f, openmm.CustomGBForce) for f in gbn2.system.getForces())
    assert "CustomGBForce" in gbn2.group_names.values()
    gbn2.close()


# --------------------------------------------------------------- pool and platform
def test_platform_choice_and_threads():
    oracle = OpenMMOracle.from_pdb(CLN025, solvent="none")
    assert oracle.platform_name == "CPU"  # no CUDA/OpenCL on this machine; CPU precedes Reference
    cpus = os.cpu_count()
    assert oracle.threads_per_context == max(1, cpus // 1)
    context = oracle._contexts[0]
    assert context.getPlatform().getPropertyValue(context, "Threads") == str(oracle.threads_per_context)
    oracle.close()
    with pytest.raises(OracleError, match=f"exceeds the {cpus} CPUs"):
        OpenMMOracle.from_pdb(CLN025, solvent="none", platform="CPU", n_contexts=cpus + 1, threads_per_context=1)
    with pytest.raises(OracleError, match="platform 'Nope' is not available"):
        OpenMMOracle.from_pdb(CLN025, solvent="none", platform="Nope")


def test_constraints_and_mismatch_rejected():
    prep = prepare_pdb(CLN025)
    ff = app.ForceField("amber14-all.xml")
    constrained = ff.createSystem(prep.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    with pytest.raises(OracleError, match=r"constraints.*constraints=None"):
        OpenMMOracle(prep.topology, constrained, platform="Reference")
    free = ff.createSystem(prep.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    other = prepare_pdb(TRPCAGE).topology
    with pytest.raises(OracleError, match="topology has 304 atoms but the System has 166"):
        OpenMMOracle(other, free, platform="Reference")
    with pytest.raises(OracleError, match="unknown solvent"):
        OpenMMOracle.from_pdb(CLN025, solvent="water")


def test_close_pickle_and_fork_guard():
    oracle = OpenMMOracle.from_cluster_xml("lj_reduced.xml", ["LJ"] * 4, platform="Reference")
    x = _jittered(4, 1)
    with pytest.raises(TypeError, match="spawn"):
        pickle.dumps(oracle)
    oracle._creator_pid = -1  # as seen from a forked child
    with pytest.raises(OracleError, match="fork"):
        oracle.energy(x)
    oracle._creator_pid = os.getpid()
    oracle.close()
    oracle.close()
    with pytest.raises(OracleError, match="closed"):
        oracle.energy(x)


def test_openmm_exception_becomes_cap():
    # A periodic CPU system: an infinite coordinate makes OpenMM raise "Particle coordinate is NaN".
    # The finite input 1e308 overflows to inf through the oracle's length scale (10 nm per unit).
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(5, 0, 0), openmm.Vec3(0, 5, 0), openmm.Vec3(0, 0, 5))
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(1.0)
    for i in range(8):
        system.addParticle(1.0)
        nb.addParticle(0.2 * (-1) ** i, 0.3, 1.0)
    system.addForce(nb)
    oracle = OpenMMOracle(None, system, platform="CPU", threads_per_context=1, length_scale=10.0)
    x = (_lattice(8, spacing=0.05) + 0.05)[None].repeat(2, 1, 1)
    x[0, 0, 0] = 1e308
    energy, forces = oracle.energy_and_forces(x)
    assert float(energy[0]) == oracle.nonfinite_energy and bool((forces[0] == 0).all())
    assert np.isfinite(float(energy[1])) and float(energy[1]) != oracle.nonfinite_energy
    assert oracle.counters.nonfinite == 1
    assert "Particle coordinate is NaN" in oracle.last_exception
    # coincident atoms of a NoCutoff system: NaN from OpenMM, capped
    lj = OpenMMOracle.from_cluster_xml("lj_reduced.xml", ["LJ"] * 3, platform="CPU", threads_per_context=1)
    e, _ = lj.energy_and_forces(torch.zeros(1, 3, 3, dtype=torch.float64))
    assert float(e[0]) == lj.nonfinite_energy and lj.counters.nonfinite == 1
    oracle.close()
    lj.close()


def test_lazy_import():
    code = (
        "import sys, openmm_actionmin.oracles as o; assert 'openmm' not in sys.modules; print(o.OpenMMOracle.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OpenMMOracle"


# ------------------------------------------------------------------ clusters
def test_lj13_xml_matches_torch():
    oracle = OpenMMOracle.from_cluster_xml("lj_reduced.xml", ["LJ"] * 13, platform="Reference")
    assert oracle.units == REDUCED_UNITS
    x = _jittered(13, 8, seed=7)
    e, f = oracle.energy_and_forces(x)
    e_t, f_t = lennard_jones(13).energy_and_forces(x)
    assert float(((e - e_t).abs() / e_t.abs()).max()) < 1e-8
    np.testing.assert_allclose(f.numpy(), f_t.numpy(), rtol=1e-8, atol=1e-8 * float(f_t.abs().max()))
    report = validate_oracle(oracle, x[:3], random_x=10 * torch.rand(20, 13, 3, dtype=torch.float64), fd_rtol=1e-6)
    assert report.n_random_checked == 20
    oracle.close()


def test_ionic_xml_matches_torch_lj_coulomb():
    types = ["P", "M"] * 4
    charges = [1.0 if t == "P" else -1.0 for t in types]
    oracle = OpenMMOracle.from_cluster_xml("lj_coulomb_ionic.xml", types, platform="Reference")
    x = _jittered(8, 6, seed=8)
    e, f = oracle.energy_and_forces(x)
    e_t, f_t = lj_coulomb(charges).energy_and_forces(x)
    np.testing.assert_allclose(e.numpy(), e_t.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(f.numpy(), f_t.numpy(), rtol=1e-8, atol=1e-8 * float(f_t.abs().max()))
    # the charges really enter: an all-"P" cluster (all q = +1) has a different energy
    e_same = OpenMMOracle.from_cluster_xml("lj_coulomb_ionic.xml", ["P"] * 8, platform="Reference").energy(x)
    assert float((e_same - e).abs().min()) > 0.1
    validate_oracle(oracle, x[:2], fd_rtol=1e-6)
    oracle.close()


def test_cluster_xml_errors(tmp_path):
    with pytest.raises(OracleError, match=r"no one-atom residue template for type\(s\) \['Q'\]; known types: \['LJ'\]"):
        OpenMMOracle.from_cluster_xml("lj_reduced.xml", ["LJ", "Q"])
    with pytest.raises(OracleError, match="nothere.xml not found"):
        OpenMMOracle.from_cluster_xml(tmp_path / "nothere.xml", ["LJ"])


# ------------------------------------------------------------------ benchmark
def test_oracle_bench_smoke_writes_exact_json(tmp_path, capsys):
    import json

    from openmm_actionmin.benchmarks.oracles import main

    out = tmp_path / "bench.json"
    summary = main(
        [
            "--lj-batch",
            "8",
            "--ase-evals",
            "2",
            "--trpcage-batch",
            "1",
            "--pool-batch",
            "2",
            "--pool-solvent",
            "none",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert data == summary
    assert set(data) == {"lj38_torch_over_ase", "trpcage_ms", "pool_over_single"}
    assert set(data["trpcage_ms"]) == {"vacuum", "xml_gb", "native_gb"}
    assert all(v > 0 for v in data["trpcage_ms"].values())
    assert data["lj38_torch_over_ase"] > 0 and data["pool_over_single"] > 0
    printed = capsys.readouterr().out
    assert "pool / single speed-up" in printed and "results identical: True" in printed


def test_pool_warning_only_for_gpu_pools_larger_than_the_device_count():
    from openmm_actionmin.oracles.openmm import pool_warning

    assert pool_warning("CPU", 8, 1) is None
    assert pool_warning("CUDA", 1, 1) is None
    assert pool_warning("CUDA", 4, 4) is None
    message = pool_warning("CUDA", 2, 1)
    assert "n_contexts=1" in message and "2 CUDA Contexts share 1 GPU" in message
    assert "n_contexts=2" in pool_warning("OpenCL", 3, 2)
