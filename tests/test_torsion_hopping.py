"""Torsion-space basin hopping on CLN025 with real OpenMM (amber14-all + native OBC2)."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("openmm")
pytest.importorskip("PeptideBuilder")

from openmm_actionmin.search.openmm_baselines import openmm_minimize  # noqa: E402
from openmm_actionmin.search.steps import MinimaDatabase  # noqa: E402
from openmm_actionmin.search.torsion_hopping import (  # noqa: E402
    PivotMove,
    TorsionHoppingConfig,
    find_pivots,
    torsion_hopping,
)

CLN025 = "YYDPETGTWY"
#: Step-limited runs have no budget, so their final polish runs to its tolerance: keep it short.
FAST = {"tolerance_kj_mol_nm": 10.0, "polish_candidates": 1}


@pytest.fixture(scope="module")
def cln025():
    from openmm_actionmin.systems.peptides import peptide

    system = peptide(CLN025, seed=0, threads_per_context=1, name="cln025")
    yield system
    system.oracle.close()


@pytest.fixture(scope="module")
def quenched(cln025):
    """CLN025's start minimised loosely (RMS force 10 kJ/mol/nm): short runs skip the long first quench."""
    return np.asarray(openmm_minimize(cln025, tolerance_kj_mol_nm=10.0, threads=1).positions)


def _bonds(topology):
    return np.array([(b[0].index, b[1].index) for b in topology.bonds()])


def _lengths(x, bonds):
    return np.linalg.norm(x[bonds[:, 0]] - x[bonds[:, 1]], axis=1)


def test_pivots_of_cln025(cln025):
    pivots = find_pivots(cln025.topology)
    labels = [p.label for p in pivots]
    assert "phi PRO4" not in labels  # ring bond
    assert "psi PRO4" in labels
    assert "phi TYR1" not in labels and "psi TYR10" not in labels  # termini
    assert sum(p.kind == "phi" for p in pivots) == 8 and sum(p.kind == "psi" for p in pivots) == 9
    assert any(p.kind == "chi" for p in pivots)
    n = cln025.topology.getNumAtoms()
    for p in pivots:
        assert 0 < len(p.moving) <= n // 2 + 1
        assert p.atoms[1] not in p.moving and p.atoms[2] not in p.moving


@pytest.mark.parametrize("label", ["phi GLU5", "psi TYR2", "psi THR8", "chi1 TRP9"])
def test_pivot_changes_one_torsion_rigidly(cln025, label):
    x = cln025.start_positions.numpy().astype(np.float64)
    pivots = find_pivots(cln025.topology)
    pivot = next(p for p in pivots if p.label == label)
    delta = math.radians(37.0)
    y = pivot.rotate(x, delta)
    change = math.atan2(math.sin(pivot.angle(y) - pivot.angle(x)), math.cos(pivot.angle(y) - pivot.angle(x)))
    assert change == pytest.approx(delta, abs=1e-9)
    # every other backbone torsion keeps its value
    for other in pivots:
        if other is not pivot and other.kind in ("phi", "psi"):
            assert other.angle(y) == pytest.approx(other.angle(x), abs=1e-9)
    bonds = _bonds(cln025.topology)
    np.testing.assert_allclose(_lengths(y, bonds), _lengths(x, bonds), atol=1e-12)
    fixed = np.setdiff1d(np.arange(len(x)), pivot.moving)
    np.testing.assert_array_equal(y[fixed], x[fixed])
    assert np.abs(y[pivot.moving] - x[pivot.moving]).max() > 1e-3
    # set_angle reaches the requested value
    z = pivot.set_angle(x, math.radians(-120.0))
    assert pivot.angle(z) == pytest.approx(math.radians(-120.0), abs=1e-9)


def test_proposal_is_clash_free_and_keeps_bonds(cln025):
    x = cln025.start_positions.numpy().astype(np.float64)
    move = PivotMove.from_topology(cln025.topology, clash_nm=0.15)
    rng = np.random.default_rng(3)
    bonds = _bonds(cln025.topology)
    for _ in range(20):
        y = move.propose(x, rng)
        assert y.shape == x.shape and np.isfinite(y).all()
        np.testing.assert_allclose(_lengths(y, bonds), _lengths(x, bonds), atol=1e-10)
        assert move.min_heavy_distance(y) >= 0.15
    a = move.propose(x, np.random.default_rng(5))
    b = move.propose(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_energy_only_minima_database_keeps_lowest_distinct():
    store = MinimaDatabase(max_size=2, energy_tol=0.1, fingerprint_tol=None)
    x = np.zeros((3, 3))
    assert store.add(x, -1.0) and store.add(x + 1.0, -3.0)
    assert not store.add(x + 2.0, -3.05)  # same minimum, found lower: kept with the lower energy
    assert store.minima[0].count == 2 and store.minima[0].fingerprint is None
    np.testing.assert_array_equal(store.minima[0].x, x + 2.0)
    assert store.add(x, -2.0)
    assert not store.add(x, math.inf)
    assert store.energies == [-3.05, -2.0]
    restored = MinimaDatabase(max_size=2, energy_tol=0.1, fingerprint_tol=None)
    restored.load_state_dict({"items": [(-3.0, x), (-2.0, x)]})  # an energy-only snapshot of (energy, x) pairs
    assert restored.energies == [-3.0, -2.0]


def test_short_run_beats_openmm_minimize(cln025):
    ref = openmm_minimize(cln025, budget_s=20.0, threads=1)
    seen = []
    res = torsion_hopping(
        cln025,
        TorsionHoppingConfig(seed=0, budget_s=8.0, threads=1),
        observer=lambda x: seen.append(1) or {"probe": float(len(seen))},
    )
    assert math.isfinite(res.energy) and res.energy < res.extra["start_energy"]
    assert res.energy < ref.energy  # measured: about -1590 vs -1563.6 kJ/mol after 8 s
    assert res.positions.shape == (cln025.topology.getNumAtoms(), 3)
    assert res.wall_s < 8.0 + 5.0 and res.extra["hops"] > 5
    assert res.extra["final_rms_force"] < 10.0
    rows = res.history
    assert {"wall_s", "best_energy", "energy", "force_calls", "probe"} <= set(rows[-1])
    assert all(b["best_energy"] <= a["best_energy"] + 1e-9 for a, b in zip(rows, rows[1:]))
    assert res.force_calls == rows[-1]["force_calls"] > res.extra["hops"]
    # the oracle agrees with the reported energy
    e = float(cln025.oracle.energy(torch.as_tensor(res.positions)[None], transform=None)[0])
    assert e == pytest.approx(res.energy, abs=0.05)


def test_same_seed_same_result_and_resume(cln025, quenched, tmp_path):
    cfg = TorsionHoppingConfig(seed=4, budget_s=None, max_steps=6, threads=1, min_polish_s=0.0, **FAST)
    a = torsion_hopping(cln025, cfg, starts=[quenched])
    b = torsion_hopping(cln025, cfg, starts=[quenched])
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.energy == b.energy and a.force_calls == b.force_calls
    # interrupted after 3 hops, then resumed to 6: the same walk
    ckpt = tmp_path / "hop.pt"
    first = torsion_hopping(
        cln025,
        TorsionHoppingConfig(
            seed=4, budget_s=None, max_steps=3, threads=1, checkpoint_path=str(ckpt), min_polish_s=0.0, **FAST
        ),
        starts=[quenched],
    )
    assert ckpt.exists() and first.extra["hops"] == 3
    resumed = torsion_hopping(
        cln025,
        TorsionHoppingConfig(
            seed=4,
            budget_s=None,
            max_steps=6,
            threads=1,
            checkpoint_path=str(ckpt),
            resume=True,
            min_polish_s=0.0,
            **FAST,
        ),
    )
    assert resumed.extra["hops"] == 6
    assert resumed.energy == a.energy
    np.testing.assert_array_equal(resumed.positions, a.positions)
    assert resumed.force_calls == a.force_calls
    other = torsion_hopping(
        cln025,
        TorsionHoppingConfig(seed=5, budget_s=None, max_steps=6, threads=1, min_polish_s=0.0, **FAST),
        starts=[quenched],
    )
    assert not np.array_equal(other.positions, a.positions)


def test_starts_pick_the_lowest(cln025, quenched):
    x = quenched
    pivot = next(p for p in find_pivots(cln025.topology) if p.label == "psi THR6")
    other = pivot.rotate(x, 1.0)
    res = torsion_hopping(
        cln025, TorsionHoppingConfig(seed=0, budget_s=None, max_steps=0, threads=1, **FAST), starts=[other, x]
    )
    e_x = float(cln025.oracle.energy(torch.as_tensor(x)[None], transform=None)[0])
    assert math.isfinite(res.energy) and res.extra["hops"] == 0
    assert res.history[0]["best_energy"] <= e_x + 1.0  # the walk began from the lower start (x)


def test_bad_input(cln025, tmp_path):
    x = cln025.start_positions.numpy().astype(np.float64)
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        torsion_hopping(cln025, TorsionHoppingConfig(max_steps=1, budget_s=None), starts=[bad])
    with pytest.raises(ValueError, match=r"\[%d, 3\]" % len(x)):
        torsion_hopping(cln025, TorsionHoppingConfig(max_steps=1, budget_s=None), starts=[x[:-1]])
    with pytest.raises(ValueError, match="limit"):
        TorsionHoppingConfig(budget_s=None, max_steps=None)
    with pytest.raises(ValueError, match="force"):
        TorsionHoppingConfig(quench_tolerance_kj_mol_nm=0.0)
    with pytest.raises(ValueError, match="temperature"):
        TorsionHoppingConfig(temperature=-1.0)
    ckpt = tmp_path / "other.pt"
    torch.save({"system": "something else", "n_atoms": 3}, ckpt)
    with pytest.raises(ValueError, match="checkpoint"):
        torsion_hopping(
            cln025, TorsionHoppingConfig(max_steps=1, budget_s=None, checkpoint_path=str(ckpt), resume=True)
        )


def test_methods_are_wired():
    from openmm_actionmin import proteins
    from openmm_actionmin.benchmarks.proteins import BENCH_METHODS, build_parser

    for m in ("basin_hopping", "torsion_hopping", "hybrid"):
        assert m in proteins.METHODS
    assert proteins.canonical_method("torsion_hopping") == "basin_hopping"
    assert "basin_hopping" in BENCH_METHODS and "hybrid" in BENCH_METHODS
    args = build_parser().parse_args(["--methods", "basin_hopping,hybrid"])
    assert args.methods == "basin_hopping,hybrid"


def test_minimize_pdb_hybrid_tiny(tmp_path):
    from openmm_actionmin.data import data_path
    from openmm_actionmin.api import minimize_pdb

    pdb = data_path("systems", "pdb", "5awl_cln025.pdb")
    res = minimize_pdb(pdb, method="hybrid", seed=0, budget_s=8.0, reference=pdb, threads=1, output=tmp_path / "h.pdb")
    assert res.method == "hybrid" and math.isfinite(res.energy)
    # the input structure is one of the hopping starts: never worse than OpenMM's minimisation of it
    plain = minimize_pdb(pdb, method="openmm", seed=0, budget_s=8.0, threads=1)
    assert res.energy <= plain.energy + 1.0
    assert res.energy < res.extra["start_energy"]
    assert res.extra["ca_rmsd_A"] < 3.0
    assert (tmp_path / "h.pdb").exists()


def test_budget_is_kept_on_a_large_protein(tmp_path):
    """A 2,000-atom extended chain: the start quench and the polish are cut to the budget (preparation included)."""
    import time

    import openmm_actionmin
    from openmm_actionmin.systems.peptides import build_heavy_atom_pdb

    pdb = tmp_path / "long.pdb"
    pdb.write_text(build_heavy_atom_pdb("ACDEFGHIKLMNPQRSTVWY" * 6 + "GSGSGSGSGS"))
    t = time.perf_counter()
    res = openmm_actionmin.minimize(str(pdb), "basin_hopping", budget_s=15, progress=False, threads=1)
    wall = time.perf_counter() - t
    assert wall <= 15 + 1.5
    assert res.energy < res.extra["start_energy"]
