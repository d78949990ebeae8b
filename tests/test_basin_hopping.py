"""Batched basin hopping and its pieces (steps, acceptance, storage, container)."""

import json
import time

import numpy as np
import pytest
import torch

from openmm_actionmin.benchmarks import clusters as bench
from openmm_actionmin.search.basin_hopping import BasinHoppingConfig, basin_hopping
from openmm_actionmin.search.steps import (
    AdaptiveStepSize,
    AngularMove,
    ClusterStep,
    Container,
    ExchangeMove,
    Metropolis,
    MinimaDatabase,
    OccasionalJumping,
    RandomDisplacement,
    SymmetryMove,
)
from openmm_actionmin.systems import binary_lj, lj_cluster

LJ13_GM = -44.326801


@pytest.fixture(scope="module")
def lj13_run():
    s = lj_cluster(13)
    res = basin_hopping(s, BasinHoppingConfig(n_walkers=16, seed=0, budget_s=30.0))
    return s, res


def test_finds_lj13_global_minimum(lj13_run):
    s, res = lj13_run
    assert res.extra["success"] is True
    assert res.energy == pytest.approx(LJ13_GM, abs=1e-4)
    assert res.extra["stop_reason"] == "target"
    assert res.extra["time_to_target_s"] <= res.wall_s
    assert 0 < res.extra["force_calls_to_target"] <= res.force_calls
    assert res.positions.shape == (13, 3)
    # the reported energy belongs to the reported structure
    assert float(s.oracle.energy(torch.as_tensor(res.positions)[None])) == pytest.approx(res.energy, abs=1e-9)
    assert res.history and res.history[-1]["best_energy"] == pytest.approx(res.energy)
    assert res.extra["minima_energies"][0] == pytest.approx(LJ13_GM, abs=1e-4)


def test_result_exports(lj13_run, tmp_path):
    _, res = lj13_run
    res.save(tmp_path / "bh.xyz")
    res.save(tmp_path / "bh.json")
    assert json.loads((tmp_path / "bh.json").read_text())["method"] == "basin_hopping"
    assert "energy=-44.3268" in (tmp_path / "bh.xyz").read_text().splitlines()[1]


def test_seeded_runs_are_reproducible():
    cfg = BasinHoppingConfig(n_walkers=4, seed=3, budget_s=None, max_steps=3, stop_at_target=False)
    a = basin_hopping(lj_cluster(10), cfg)
    b = basin_hopping(lj_cluster(10), cfg)
    assert a.energy == b.energy and a.force_calls == b.force_calls
    assert a.extra["hops"] == b.extra["hops"] >= 12
    c = basin_hopping(
        lj_cluster(10), BasinHoppingConfig(n_walkers=4, seed=4, budget_s=None, max_steps=3, stop_at_target=False)
    )
    assert c.force_calls != a.force_calls


def test_starts_seed_walkers(lj13_run):
    _, res = lj13_run
    s = lj_cluster(13)
    start = torch.as_tensor(res.positions)[None] + 0.01
    out = basin_hopping(s, BasinHoppingConfig(n_walkers=8, seed=1, budget_s=30.0), starts=start)
    assert out.extra["success"]
    # the seeded walker's short quench hits the target while the random ones are still quenching
    assert out.extra["hops"] <= 2
    with pytest.raises(ValueError, match="got 9 starts for 8 walkers"):
        basin_hopping(s, BasinHoppingConfig(n_walkers=8, budget_s=1.0), starts=start.expand(9, 13, 3))


def test_reseeding_restarts_worst_walkers_from_best_minima():
    cfg = BasinHoppingConfig(
        n_walkers=6, seed=0, budget_s=None, max_steps=4, stop_at_target=False, reseed_interval=2, reseed_fraction=0.5
    )
    res = basin_hopping(lj_cluster(10), cfg)
    assert res.extra["reseeded"] >= 3
    off = basin_hopping(
        lj_cluster(10),
        BasinHoppingConfig(n_walkers=6, seed=0, budget_s=None, max_steps=4, stop_at_target=False, reseed_interval=0),
    )
    assert off.extra["reseeded"] == 0
    with pytest.raises(ValueError, match="reseed_fraction in"):
        BasinHoppingConfig(reseed_fraction=0.0)


def test_binary_system_without_reference():
    s = binary_lj(6, 3)
    res = basin_hopping(s, BasinHoppingConfig(n_walkers=4, seed=0, budget_s=None, max_steps=2))
    assert res.extra["success"] is None and res.extra["time_to_target_s"] is None
    assert res.extra["stop_reason"] == "max_steps"
    assert np.isfinite(res.energy) and res.symbols.count("Ne") == 3


def test_checkpoint_and_resume(tmp_path):
    ck = tmp_path / "bh.pt"
    cfg = BasinHoppingConfig(
        n_walkers=4, seed=0, budget_s=None, max_steps=2, stop_at_target=False, checkpoint_path=str(ck)
    )
    first = basin_hopping(lj_cluster(10), cfg)
    assert ck.exists()
    cfg2 = BasinHoppingConfig(
        n_walkers=4, seed=0, budget_s=None, max_steps=4, stop_at_target=False, checkpoint_path=str(ck), resume=True
    )
    second = basin_hopping(lj_cluster(10), cfg2)
    assert second.extra["resumed"] is True
    assert second.extra["hops"] >= 4 * 4 > first.extra["hops"]  # every walker reached max_steps = 4 in all
    assert second.energy <= first.energy + 1e-9
    with pytest.raises(ValueError, match="checkpoint .* belongs to another run"):
        basin_hopping(lj_cluster(11), cfg2)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="needs a limit"):
        BasinHoppingConfig(budget_s=None)
    with pytest.raises(ValueError, match="n_walkers must be >= 1"):
        BasinHoppingConfig(n_walkers=0)


# ------------------------------------------------------------------ pieces
def test_metropolis():
    gen = torch.Generator().manual_seed(0)
    m = Metropolis(temperature=0.0)
    e_old = torch.tensor([0.0, 0.0, float("inf"), 0.0], dtype=torch.float64)
    e_new = torch.tensor([-1.0, 1e-6, 5.0, float("inf")], dtype=torch.float64)
    assert m.accept(e_new, e_old, gen).tolist() == [True, False, True, False]
    hot = Metropolis(temperature=1.0)
    many_old = torch.zeros(20000, dtype=torch.float64)
    rate = hot.accept(torch.ones(20000, dtype=torch.float64), many_old, gen).double().mean().item()
    assert rate == pytest.approx(np.exp(-1.0), abs=0.02)


def test_occasional_jumping_accepts_a_stuck_walkers_next_hops():
    jumping = OccasionalJumping(Metropolis(temperature=0.0), stay=2, jump=2)
    up, down = torch.tensor([1.0], dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64)
    zero, inf = torch.zeros(1, dtype=torch.float64), torch.tensor([float("inf")], dtype=torch.float64)
    # walker 0: two uphill hops rejected, then the next two are accepted whatever their energy
    assert [bool(jumping.accept_rows([0], up, zero)[0]) for _ in range(2)] == [False, False]
    assert bool(jumping.accept_rows([0], inf, zero)[0]) is False  # an invalid minimum is never taken
    assert [bool(jumping.accept_rows([0], up, zero)[0]) for _ in range(3)] == [True, True, False]
    assert jumping.jumps == 1
    # walkers are counted apart, and an accepted hop resets the count
    assert jumping.accept_rows([1, 2], torch.cat([up, down]), torch.cat([zero, zero])).tolist() == [False, True]
    assert jumping.accept_rows([1, 2], torch.cat([up, up]), torch.cat([zero, zero])).tolist() == [False, False]
    assert jumping.jumps == 2 and jumping.jumping[1] == 2 and jumping.rejected[2] == 1
    restored = OccasionalJumping(Metropolis(temperature=0.0), stay=2, jump=2)
    restored.load_state_dict(jumping.state_dict())
    assert restored.accept_rows([1, 2], torch.cat([up, up]), torch.cat([zero, zero])).tolist() == [True, False]
    assert restored.jumps == 3 and restored.jumping == {0: 0, 1: 1, 2: 2}
    with pytest.raises(ValueError, match="stay >= 1"):
        OccasionalJumping(Metropolis(), stay=0, jump=1)
    with pytest.raises(ValueError, match="jump_after must be >= 0"):
        BasinHoppingConfig(jump_after=-1)


def test_jumping_runs_through_the_loop_and_its_checkpoint(tmp_path):
    ckpt = tmp_path / "bh.ckpt"
    cfg = BasinHoppingConfig(
        n_walkers=4,
        max_steps=30,
        budget_s=None,
        seed=1,
        jump_after=1,
        jump_hops=2,
        target_energy=-1e9,
        checkpoint_path=str(ckpt),
    )
    res = basin_hopping(lj_cluster(13), cfg)
    assert res.extra["jumps"] > 0 and res.extra["config"]["jump_after"] == 1
    assert ckpt.exists()


def test_adaptive_step_size():
    rule = AdaptiveStepSize(target=0.5, interval=10, factor=0.9)
    step = torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64)
    trials = torch.tensor([10, 10, 3])
    accepts = torch.tensor([9, 1, 3])
    rule.update(step, trials, accepts)
    assert step.tolist() == pytest.approx([0.4 / 0.9, 0.36, 0.4])
    assert trials.tolist() == [0, 0, 3] and accepts.tolist() == [0, 0, 3]


def test_container_pulls_back_and_flags():
    c = Container(radius=3.0)
    x = torch.zeros((2, 4, 3), dtype=torch.float64)
    x[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 30.0])
    assert c.inside(x).tolist() == [False, True]
    y = c.pull_back(x)
    assert bool(c.inside(y).all())
    assert torch.allclose(y.mean(dim=1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)  # recentred
    # only the evaporated atom moved relative to the others
    assert torch.allclose(y[0, 1:3] - y[0, :1], x[0, 1:3] - x[0, :1])
    assert float((y[0, 3] - y[0, :3].median(dim=0).values).norm()) == pytest.approx(2.7)
    assert Container.default_radius(38) > Container.default_radius(13) > 2.0


def test_proposals():
    gen = torch.Generator().manual_seed(0)
    x = lj_cluster(13).space.to_config(lj_cluster(13).space.sample(3, gen))
    size = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    y = RandomDisplacement().propose(x, size, gen)
    assert bool(((y - x).abs().amax(dim=(1, 2)) <= size).all())
    z = AngularMove(n_atoms=2).propose(x, size, gen)
    changed = ((z - x).norm(dim=-1) > 1e-12).sum(dim=1)
    assert changed.tolist() == [2, 2, 2]
    r_max = (x - x.mean(1, keepdim=True)).norm(dim=-1).amax(dim=1)
    moved_r = (z - x.mean(1, keepdim=True)).norm(dim=-1).amax(dim=1)
    assert torch.allclose(moved_r, r_max)
    mixed = ClusterStep(angular_prob=1.0).propose(x, size, gen)
    assert (((mixed - x).norm(dim=-1) > 1e-12).sum(dim=1) == 1).all()


def test_exchange_move_swaps_atoms_of_different_types():
    gen = torch.Generator().manual_seed(0)
    types = [0, 0, 0, 0, 1, 1]
    x = torch.randn(5, 6, 3, dtype=torch.float64, generator=gen)
    z = ExchangeMove(types, n_swaps=1).propose(x, torch.full((5,), 0.3, dtype=torch.float64), gen)
    moved = (z - x).norm(dim=-1) > 1e-12
    assert (moved.sum(dim=1) == 2).all()  # one pair per walker
    t = torch.tensor(types)
    for k in range(5):
        i, j = moved[k].nonzero()[:, 0].tolist()
        assert t[i] != t[j]
        assert torch.equal(z[k, i], x[k, j]) and torch.equal(z[k, j], x[k, i])
    # the geometry (the set of sites) is unchanged
    assert torch.allclose(torch.sort(z.reshape(5, -1), dim=1).values, torch.sort(x.reshape(5, -1), dim=1).values)
    always = ClusterStep(exchange_prob=1.0, exchange=ExchangeMove(types)).propose(
        x, torch.zeros(5, dtype=torch.float64), gen
    )
    assert (((always - x).norm(dim=-1) > 1e-12).sum(dim=1) == 2).all()
    with pytest.raises(ValueError, match="at least two types"):
        ExchangeMove([0, 0, 0])


def _icosahedron(radius=1.1):
    phi = (1 + 5**0.5) / 2
    v = []
    for a in (-1, 1):
        for b in (-1, 1):
            v += [(0, a, b * phi), (a, b * phi, 0), (b * phi, 0, a)]
    v = torch.tensor(v, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True) * radius
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), v])


def test_symmetry_move_fills_the_site_the_symmetry_asks_for():
    ico = _icosahedron()
    # a vertex moved to the hollow above the farthest face: one vacancy, one stray atom
    far = torch.argsort((ico[1:] - ico[1]).norm(dim=1))[-3:] + 1
    defect = ico.clone()
    defect[1] = ico[far].mean(0) / ico[far].mean(0).norm() * 1.1 * 1.6
    gen = torch.Generator().manual_seed(0)
    move = SymmetryMove()
    for _ in range(5):
        out = move.propose_one(defect, gen)
        assert out is not None
        # the stray atom is back on the icosahedron: 12 atoms at the vertex radius around the centre
        r = torch.sort((out - out[0]).norm(dim=1)).values
        assert torch.allclose(r, torch.sort((ico - ico[0]).norm(dim=1)).values, atol=1e-8)
    # a complete icosahedron has nothing to complete, in any orientation
    rot, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=gen))
    assert move.propose_one(ico @ rot.T, gen) is None
    # through ClusterStep: the walkers it finds nothing for keep their displacement
    x = torch.stack([defect, ico])
    size = torch.full((2,), 0.05, dtype=torch.float64)
    both = ClusterStep(symmetry_prob=1.0).propose(x, size, gen)
    assert torch.allclose(torch.sort((both[0] - both[0, 0]).norm(dim=1)).values, r)
    assert 0 < float((both[1] - ico).abs().amax()) <= 0.05
    with pytest.raises(ValueError, match="max_moved"):
        SymmetryMove(max_moved=0)


def test_symmetry_moves_off_leave_runs_unchanged():
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x = torch.randn(4, 13, 3, dtype=torch.float64)
    size = torch.full((4,), 0.3, dtype=torch.float64)
    plain = ClusterStep(angular_prob=0.5).propose(x, size, gen_a)
    off = ClusterStep(angular_prob=0.5, symmetry_prob=0.0).propose(x, size, gen_b)
    assert torch.equal(plain, off)
    run = basin_hopping(lj_cluster(13), BasinHoppingConfig(n_walkers=4, seed=0, budget_s=30.0, symmetry_prob=0.5))
    assert run.energy == pytest.approx(LJ13_GM, abs=1e-4)
    assert run.extra["config"]["symmetry_prob"] == 0.5
    with pytest.raises(ValueError, match="symmetry_prob must be in"):
        BasinHoppingConfig(symmetry_prob=-0.1)
    with pytest.raises(ValueError, match="do not yet tell atom types apart"):
        basin_hopping(binary_lj(6, 3), BasinHoppingConfig(n_walkers=2, budget_s=None, max_steps=1, symmetry_prob=0.2))


def test_exchange_default_follows_the_system():
    binary = basin_hopping(binary_lj(6, 3), BasinHoppingConfig(n_walkers=4, seed=0, budget_s=None, max_steps=2))
    assert binary.extra["config"]["exchange_prob"] is None and np.isfinite(binary.energy)
    with pytest.raises(ValueError, match="one atom type, so there is nothing to exchange"):
        basin_hopping(lj_cluster(7), BasinHoppingConfig(n_walkers=2, budget_s=None, max_steps=1, exchange_prob=0.2))
    with pytest.raises(ValueError, match="exchange_prob must be in"):
        BasinHoppingConfig(exchange_prob=1.5)


def test_walkers_and_compression_default_by_kind_of_cluster():
    from openmm_actionmin import minimize
    from openmm_actionmin.search.basin_hopping import default_config

    assert (default_config(binary_lj(6, 3)).n_walkers, default_config(binary_lj(6, 3)).compression) == (4, 0.0)
    assert (default_config(lj_cluster(9)).n_walkers, default_config(lj_cluster(9)).compression) == (16, 1.0)
    run = minimize(binary_lj(6, 3), method="basin_hopping", budget_s=None, max_steps=2, seed=0)
    assert run.extra["n_walkers"] == 4 and run.extra["config"]["compression"] == 0.0
    # the user's settings win, through minimize() and the benchmark
    run = minimize(
        binary_lj(6, 3), method="basin_hopping", budget_s=None, max_steps=2, seed=0, n_walkers=8, compression=1.0
    )
    assert run.extra["n_walkers"] == 8 and run.extra["config"]["compression"] == 1.0
    row = bench.run_basin_hopping(binary_lj(6, 3), 0, 2.0, 1e-4)
    assert row["walkers"] == 4


def test_minima_database_deduplicates():
    db = MinimaDatabase(max_size=3)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert db.add(base, -5.0)
    assert not db.add(base[::-1] @ q.T + 2.0, -5.0 + 1e-7)  # rotated, permuted, shifted copy
    assert db.minima[0].count == 2
    assert db.add(base * 1.1, -5.0 + 2e-6)  # same energy window, different shape
    assert db.add(base * 1.2, -7.0)
    assert not db.add(base * 1.3, -1.0)  # full and higher than everything stored
    assert db.energies == sorted(db.energies) and len(db) == 3
    assert db.lowest.energy == -7.0


def test_benchmark_rows_and_summary(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert (
        bench.main(
            [
                "--systems",
                "LJ7",
                "--methods",
                "basin_hopping,scipy_basinhopping,ase_basinhopping",
                "--seeds",
                "1",
                "--budget-s",
                "10",
                "--walkers",
                "4",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["basin_hopping", "scipy_basinhopping", "ase_basinhopping"]
    for r in rows:
        assert r["success"] is True and r["best_energy"] == pytest.approx(-16.505384, abs=1e-4)
        assert r["time_to_gm_s"] > 0 and r["force_calls"] > 0
    text = capsys.readouterr().out
    assert "med t_GM/s" in text and "LJ7" in text
    # resume: nothing is re-run
    assert (
        bench.main(
            ["--systems", "LJ7", "--methods", "basin_hopping", "--seeds", "1", "--budget-s", "10", "--json", str(out)]
        )
        == 0
    )
    assert len(json.loads(out.read_text())) == 3
    with pytest.raises(ValueError, match="unknown method"):
        bench.main(["--methods", "simulated_annealing"])
    with pytest.raises(ValueError, match="unknown cluster system"):
        bench.main(["--systems", "XX3"])


def test_budget_is_kept():
    t = time.perf_counter()
    res = basin_hopping(lj_cluster(13), BasinHoppingConfig(seed=0, budget_s=2.0, stop_at_target=False))
    wall = time.perf_counter() - t
    assert res.extra["stop_reason"] == "budget" and wall < 4.0
    assert res.extra["hops"] > 0 and res.energy <= -40.0
