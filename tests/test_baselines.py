"""Baselines: Adam multi-start, random-sample-only PLNet, basin hopping, CMA-ES."""

import numpy as np
import pytest
import torch

from openmm_actionmin.oracles.base import DIMENSIONLESS, TorchOracle
from openmm_actionmin.oracles.synthetic import SyntheticOracle, random_shift
from openmm_actionmin.search.baselines import (
    AdamMultistartConfig,
    ScipyBasinHoppingConfig,
    adam_multistart,
    cma_es,
    random_only,
    scipy_basinhopping,
)
from openmm_actionmin.spaces import Box
from openmm_actionmin.systems.base import System

DIM = 6


class ShiftedQuadratic(TorchOracle):
    """A convex test landscape: sum_i a_i (x_i - c_i)^2, minimum 0 at c."""

    def __init__(self, center: torch.Tensor) -> None:
        super().__init__(dim=center.numel(), units=DIMENSIONLESS)
        self.center = center
        self.weights = torch.linspace(0.5, 3.0, center.numel(), dtype=torch.float64)

    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights * (x - self.center) ** 2).sum(dim=-1)


def quadratic_system() -> System:
    center = torch.linspace(-2.0, 3.0, DIM, dtype=torch.float64)
    oracle = ShiftedQuadratic(center)
    return System(
        name="quadratic", oracle=oracle, space=Box.cube(5.0, (DIM,)), reference_energy=0.0, reference_positions=center
    )


def alpine_system(dim: int = DIM) -> System:
    oracle = SyntheticOracle("alpine1", dim, shift=random_shift("alpine1", dim, torch.Generator().manual_seed(1)))
    return System(
        name="alpine1",
        oracle=oracle,
        space=oracle.space(),
        reference_energy=0.0,
        reference_positions=oracle.minimum_location,
    )


def distance(system: System, result) -> float:
    return float(np.linalg.norm(np.asarray(result.positions) - system.reference_positions.numpy()))


def check_common(system: System, result, budget_s: float) -> None:
    assert result.force_calls > 0
    assert result.wall_s < budget_s + 3.0
    e = float(system.oracle.energy(torch.as_tensor(result.positions)[None], transform=None)[0])
    assert e == pytest.approx(result.energy, rel=1e-9, abs=1e-12)
    assert bool(system.space.contains(torch.as_tensor(result.positions).reshape(1, -1))[0])
    assert result.extra["lowest_seen_energy"] <= result.energy + 1e-12
    assert result.history and "best_energy" in result.history[-1]


def test_adam_multistart_finds_the_minimum_of_a_convex_function():
    system = quadratic_system()
    cfg = AdamMultistartConfig(n_starts=16, lr_fractions=(0.01, 0.05), max_steps=400)
    result = adam_multistart(system, 20.0, seed=0, config=cfg)
    assert distance(system, result) < 1e-3
    assert result.energy < 1e-6
    assert result.method == "adam" and min(abs(result.extra["best_lr"] - v) for v in (0.05, 0.25)) < 1e-12
    # force calls are counted by the oracle: 16 starts x (400 steps + 1 final) x 2 learning rates
    assert result.force_calls == 16 * 401 * 2
    check_common(system, result, 20.0)


def test_adam_multistart_respects_the_budget_and_seed():
    system = alpine_system()
    cfg = AdamMultistartConfig(n_starts=64, max_steps=10**6)
    a = adam_multistart(system, 1.0, seed=2, config=cfg)
    check_common(system, a, 1.0)
    assert len(a.extra["steps_per_lr"]) == len(cfg.lr_fractions)
    with pytest.raises(ValueError, match="lr_fractions must be positive"):
        AdamMultistartConfig(lr_fractions=(0.1, -1.0))


def test_random_only_runs_and_trains_on_fresh_samples_only():
    system = alpine_system()
    # a generous budget: the round limit ends the run (a 3 s budget ran out after 2 rounds on a loaded machine)
    result = random_only(
        system, 60.0, seed=0, model_hidden=16, warm_start_samples=256, warm_start_steps=50, fresh_batch=64, max_rounds=5
    )
    assert result.method == "random_only"
    rows = result.history[1:]
    assert len(rows) == 5
    assert all(row["path_points"] == 0 and row["descent_steps"] == 0 for row in rows)
    # each round: fresh samples plus the candidate, nothing else
    calls = [row["force_calls"] for row in result.history]
    assert all(b - a == 64 + 1 for a, b in zip(calls, calls[1:]))
    check_common(system, result, 60.0)


def test_basinhopping_and_cma_find_the_convex_minimum_within_budget():
    system = quadratic_system()
    bh = scipy_basinhopping(system, 2.0, seed=0)
    check_common(system, bh, 2.0)
    assert distance(system, bh) < 1e-3
    es = cma_es(system, 2.0, seed=0)
    check_common(system, es, 2.0)
    assert distance(system, es) < 1e-3
    assert es.extra["generations"] > 10


def test_scipy_basinhopping_on_a_cluster_starts_from_the_systems_positions():
    import dataclasses

    from openmm_actionmin import minimize
    from openmm_actionmin.systems import lj_cluster

    system = lj_cluster(38)
    found = minimize(system, method="basin_hopping_lattice", budget_s=10.0, seed=0)
    assert found.energy == pytest.approx(-173.928427, abs=1e-4)
    at_minimum = dataclasses.replace(system, start_positions=torch.as_tensor(found.positions, dtype=torch.float64))
    bh = scipy_basinhopping(at_minimum, 10.0, seed=0)
    # back at the minimum within a few hops; from a random LJ38 start SciPy needs thousands
    assert bh.extra["success"] is True and bh.extra["quenches"] <= 10


def test_scipy_basinhopping_on_a_cluster_is_unbounded_and_stops_at_the_reference():
    from openmm_actionmin import minimize
    from openmm_actionmin.systems import lj_cluster

    system = lj_cluster(13)
    bh = scipy_basinhopping(system, 30.0, seed=0)
    assert bh.extra["success"] is True and bh.energy == pytest.approx(-44.326801, abs=1e-4)
    assert bh.extra["time_to_target_s"] < 30.0 and bh.wall_s < 30.0  # stopped at the target, not the budget
    assert bh.extra["config"] == {"temperature": 0.8, "step_size": 0.4, "local_maxiter": None, "target_tolerance": 1e-4}
    # the registry passes cluster settings, and refuses the function ones
    run = minimize(lj_cluster(7), method="scipy_basinhopping", budget_s=1.0, seed=0, temperature=0.5)
    assert run.extra["config"]["temperature"] == 0.5
    with pytest.raises(ValueError, match="step_fraction"):
        minimize(lj_cluster(7), method="scipy_basinhopping", budget_s=1.0, step_fraction=0.1)


def test_config_or_fields_not_both_and_configs_are_not_interchangeable():
    system = quadratic_system()
    bh = scipy_basinhopping(system, 0.5, seed=0, local_maxiter=20)
    assert bh.method == "scipy_basinhopping" and bh.extra["config"]["local_maxiter"] == 20
    with pytest.raises(TypeError, match="either config or ScipyBasinHoppingConfig fields"):
        scipy_basinhopping(system, 1.0, config=ScipyBasinHoppingConfig(), temperature=2.0)
    with pytest.raises(TypeError, match="config must be a CMAESConfig, got ScipyBasinHoppingConfig"):
        cma_es(system, 1.0, config=ScipyBasinHoppingConfig())


def test_budget_must_be_positive():
    with pytest.raises(ValueError, match="budget_s must be positive"):
        cma_es(quadratic_system(), 0.0)


def test_synthetic_benchmark_cli_writes_rows_and_medians(tmp_path, capsys):
    import json

    from openmm_actionmin.benchmarks.synthetic import main, make_system

    # the shift depends on (function, dim, seed) only, lies inside 80 % of the paper's box, and --no-shift is exact
    a, b = make_system("alpine1", 8, 1), make_system("alpine1", 8, 1)
    assert torch.equal(a.reference_positions, b.reference_positions)
    assert float(a.reference_positions.abs().max()) <= 80.0 and float(a.reference_positions.abs().max()) > 1.0
    assert float(a.space.upper[0]) == 100.0
    assert not bool(make_system("alpine1", 8, 1, shifted=False).reference_positions.any())

    out = tmp_path / "rows.json"
    code = main(
        [
            "--functions",
            "alpine1",
            "--dims",
            "4",
            "--seeds",
            "2",
            "--budget-s",
            "0.3",
            "--methods",
            "adam,cma,scipy_basinhopping",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert len(rows) == 6 and {r["method"] for r in rows} == {"adam", "cma", "scipy_basinhopping"}
    for key in (
        "function",
        "dim",
        "method",
        "seed",
        "shifted",
        "distance",
        "energy",
        "avg_error_per_dim",
        "wall_s",
        "force_calls",
        "lowest_seen_distance",
    ):
        assert key in rows[0]
    assert rows[0]["avg_error_per_dim"] == pytest.approx(rows[0]["distance"] / 2.0)
    assert len(payload["medians"]) == 3
    printed = capsys.readouterr().out
    assert "Medians over seeds" in printed and "| alpine1 | 4 | True | False | adam | 2 |" in printed
    assert main(["--methods", "action,nope"]) == 2
    assert "unknown method(s) nope" in capsys.readouterr().err
