"""Rotated synthetic functions, and the action trainer's budget inside a round."""

import time

import pytest
import torch

import openmm_actionmin as am
from openmm_actionmin.benchmarks.synthetic import (
    build_parser,
    make_system,
    median_rows,
    run_benchmark,
    SyntheticBenchConfig,
)
from openmm_actionmin.oracles import OracleError, validate_oracle
from openmm_actionmin.oracles.synthetic import (
    SYNTHETIC_FUNCTIONS,
    SyntheticOracle,
    make_function,
    parse_name,
    random_rotation,
    random_shift,
)
from openmm_actionmin.search.action import ActionConfig, ActionTrainer
from openmm_actionmin.systems.base import System
from trainer_helpers import small_config


def test_random_rotation_is_orthogonal_reproducible_and_not_the_identity():
    for dim in (2, 7, 100):
        r = random_rotation(dim, torch.Generator().manual_seed(5))
        assert r.shape == (dim, dim) and r.dtype == torch.float64
        torch.testing.assert_close(r.T @ r, torch.eye(dim, dtype=torch.float64), atol=1e-12, rtol=0)
        assert torch.equal(r, random_rotation(dim, torch.Generator().manual_seed(5)))
        assert not torch.equal(r, random_rotation(dim, torch.Generator().manual_seed(6)))
        assert float((r - torch.eye(dim, dtype=torch.float64)).abs().max()) > 0.1
    r32 = random_rotation(50, torch.Generator().manual_seed(5), dtype=torch.float32)
    torch.testing.assert_close(r32.double(), random_rotation(50, torch.Generator().manual_seed(5)), atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", sorted(SYNTHETIC_FUNCTIONS))
def test_rotated_function_keeps_its_minimum_value_and_location(name):
    spec = SYNTHETIC_FUNCTIONS[name]
    dim = max(spec.min_dim, 6)
    shift = random_shift(name, dim, torch.Generator().manual_seed(1))
    rot = random_rotation(dim, torch.Generator().manual_seed(2))
    plain = SyntheticOracle(name, dim, shift=shift)
    rotated = SyntheticOracle(name, dim, shift=shift, rotation=rot)
    assert rotated.name == f"rotated_{name}"
    torch.testing.assert_close(rotated.minimum_location, plain.minimum_location)
    x_star = rotated.minimum_location[None]
    assert float(rotated.energy(x_star)) == pytest.approx(spec.minimum_value, abs=1e-12)
    # nearby points lie above the minimum, and the rotated function is the plain one at rotated points
    gen = torch.Generator().manual_seed(3)
    d = torch.randn(32, dim, generator=gen, dtype=torch.float64)
    d = 1e-2 * d / d.norm(dim=1, keepdim=True)
    assert bool((rotated.energy(x_star + d) > spec.minimum_value).all())
    torch.testing.assert_close(rotated.energy(x_star + d), plain.energy(x_star + d @ rot.T))
    # rotation changes the function elsewhere (except the radial ones, functions of |x - o| alone)
    far = x_star + torch.randn(4, dim, generator=gen, dtype=torch.float64)
    radial = name in ("drop_wave", "salomon")
    assert torch.allclose(rotated.energy(far), plain.energy(far)) == radial


@pytest.mark.parametrize("name", ["alpine1", "schaffer_f7", "rosenbrock", "happycat"])
def test_rotated_oracle_passes_the_conformance_kit(name):
    spec = SYNTHETIC_FUNCTIONS[name]
    dim = 5
    oracle = make_function(f"rotated_{name}", dim, shift=random_shift(name, dim, torch.Generator().manual_seed(0)))
    gen = torch.Generator().manual_seed(3)
    x = oracle.minimum_location + (torch.rand(4, dim, generator=gen, dtype=torch.float64) - 0.5) * min(
        4.0, spec.default_half_width
    )
    random_x = (torch.rand(16, dim, generator=gen, dtype=torch.float64) * 2 - 1) * spec.default_half_width
    report = validate_oracle(oracle, x, random_x=random_x, fd_step=1e-6, fd_rtol=1e-5)
    assert report.max_fd_rel_error < 1e-5


def test_rotated_float32_oracle_matches_float64():
    rot = random_rotation(40, torch.Generator().manual_seed(0))
    shift = random_shift("schaffer_f7", 40, torch.Generator().manual_seed(0))
    o64 = SyntheticOracle("schaffer_f7", 40, shift=shift, rotation=rot)
    o32 = SyntheticOracle("schaffer_f7", 40, shift=shift, rotation=rot, dtype=torch.float32)
    x = o64.space().sample(64, torch.Generator().manual_seed(1))
    assert o32.rotation.dtype == torch.float32
    torch.testing.assert_close(o32.energy(x.float()).double(), o64.energy(x), rtol=1e-4, atol=1e-4)


def test_rotated_names_parse_and_bad_rotations_are_refused():
    assert parse_name("rotated_alpine1") == (SYNTHETIC_FUNCTIONS["alpine1"], True)
    assert parse_name("Rotated Schaffer-F7") == (SYNTHETIC_FUNCTIONS["schaffer_f7"], True)
    assert parse_name("alpine1") == (SYNTHETIC_FUNCTIONS["alpine1"], False)
    with pytest.raises(OracleError, match="unknown synthetic function"):
        parse_name("rotated_sphere")
    a = make_function("rotated_alpine1", 8)
    b = make_function("rotated_alpine1", 8)
    c = make_function("rotated_alpine1", 8, rotation_seed=1)
    assert torch.equal(a.rotation, b.rotation) and not torch.equal(a.rotation, c.rotation)
    assert make_function("alpine1", 8).rotation is None
    with pytest.raises(OracleError, match="rotation_seed needs a rotated"):
        make_function("alpine1", 8, rotation_seed=1)
    with pytest.raises(OracleError, match=r"must have shape \[3, 3\]"):
        SyntheticOracle("alpine1", 3, rotation=torch.eye(2))
    with pytest.raises(OracleError, match="not orthogonal"):
        SyntheticOracle("alpine1", 3, rotation=2 * torch.eye(3))


def test_rotated_target_runs_through_minimize():
    result = am.minimize("rotated_alpine1:6", method="adam", budget_s=1.0, seed=0)
    system = am.as_system("rotated_alpine1:6")
    assert system.name == "rotated_alpine1:6" and system.oracle.rotation is not None
    assert result.system == "rotated_alpine1:6"
    assert float(system.oracle.energy(torch.as_tensor(result.positions)[None])) == pytest.approx(
        result.energy, rel=1e-9
    )


def test_benchmark_rotates_with_a_seeded_rotation_and_says_so():
    plain = make_system("alpine1", 10, 2)
    rotated = make_system("alpine1", 10, 2, rotated=True)
    prefixed = make_system("rotated_alpine1", 10, 2)
    assert not plain.metadata["rotated"] and rotated.metadata["rotated"] and prefixed.metadata["rotated"]
    torch.testing.assert_close(rotated.reference_positions, plain.reference_positions)  # the same shift
    assert torch.equal(rotated.oracle.rotation, prefixed.oracle.rotation)
    assert not torch.equal(rotated.oracle.rotation, make_system("alpine1", 10, 3, rotated=True).oracle.rotation)
    assert rotated.name == "rotated_alpine1-10d"
    assert build_parser().parse_args(["--rotate"]).rotate and not build_parser().parse_args([]).rotate
    config = SyntheticBenchConfig(
        functions=("alpine1",), dims=(4,), seeds=(0,), budget_s=0.3, methods=("adam",), rotated=True
    )
    rows = run_benchmark(config, log=lambda line: None)
    assert rows[0]["rotated"] is True and rows[0]["function"] == "alpine1"
    assert median_rows(rows)[0]["rotated"] is True


# ------------------------------------------------------------- the budget inside a round
class SlowOracle(SyntheticOracle):
    """A synthetic function that sleeps ``per_point`` seconds per evaluated point."""

    def __init__(self, *args, per_point: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.per_point = per_point

    def energy_fn(self, x):
        time.sleep(self.per_point * x.shape[0])
        return super().energy_fn(x)


def slow_system(per_point: float, dim: int = 20) -> System:
    oracle = SlowOracle(
        "schaffer_f7",
        dim,
        shift=random_shift("schaffer_f7", dim, torch.Generator().manual_seed(0)),
        rotation=random_rotation(dim, torch.Generator().manual_seed(1)),
        per_point=per_point,
    )
    return System(
        name="slow",
        oracle=oracle,
        space=oracle.space(),
        reference_positions=oracle.minimum_location,
        reference_energy=0.0,
    )


def allowed(budget: float) -> float:
    return budget + max(0.1 * budget, 2.0)


def test_budget_holds_when_one_round_costs_more_than_the_budget():
    """A round of 1280 evaluations at 3 ms each (about 4 s) on a 2 s budget: the round is cut, the run ends in time."""
    budget = 2.0
    config = small_config(
        budget_s=budget,
        max_rounds=None,
        warm_start_samples=64,
        n_starts=32,
        max_path_points=1024,
        fresh_batch=256,
        eval_batch=64,
        **{k: v for k, v in _bowl().items()},
    )
    start = time.perf_counter()
    result = ActionTrainer(slow_system(3e-3), config).run()
    wall = time.perf_counter() - start
    assert wall <= allowed(budget), wall
    assert result.wall_s <= allowed(budget)
    assert result.extra["rounds"] == len(result.history) - 1  # only finished rounds are recorded
    assert result.positions is not None and result.energy == pytest.approx(result.history[-1]["best_energy"])


def test_budget_holds_when_the_warm_start_pool_costs_more_than_the_budget():
    """16384 warm-start evaluations at 0.5 ms each (8 s) on a 2 s budget: the pool stops at its share of the budget."""
    budget = 2.0
    config = ActionConfig(seed=0, budget_s=budget, eval_batch=1024)
    start = time.perf_counter()
    result = ActionTrainer(slow_system(5e-4), config).run()
    assert time.perf_counter() - start <= allowed(budget)
    assert result.force_calls < 16384


def test_rotation_invariant_settings_are_accepted_and_run():
    config = small_config(
        region="trust",
        region_shape="ball",
        region_penalty=1.0,
        translation_update="isotropic",
        translation_region_power=0.5,
        max_rounds=4,
    )
    trainer = ActionTrainer(slow_system(0.0), config)
    result = trainer.run()
    assert result.extra["rounds"] == 4
    # ball samples: inside the box, within the ball's radius of the region centre
    s = trainer._to_scaled(trainer._sample(2000)).double()
    centre = trainer._to_scaled(trainer.region_center).double()
    assert float(s.abs().max()) <= 1.0 + 1e-12
    unfolded = (s - centre).norm(dim=1)
    assert float(unfolded.max()) <= trainer._ball_radius() + 1e-9
    with pytest.raises(ValueError, match="region_shape"):
        ActionConfig(region_shape="sphere")
    with pytest.raises(ValueError, match="translation_update"):
        ActionConfig(translation_update="sgd")


def _bowl():
    from openmm_actionmin.search.action_config import SYNTHETIC_ACTION

    return {k: v for k, v in SYNTHETIC_ACTION.items() if k not in ("model_hidden",)}


def _kurtosis(v: torch.Tensor) -> float:
    v = v - v.mean()
    return float((v**4).mean() / (v**2).mean() ** 2)


@pytest.mark.parametrize("shape", ["ball", "cube"])
def test_only_the_ball_trust_region_samples_alike_in_every_direction(shape):
    """Offsets from the region centre, projected on a coordinate axis and on a random direction:
    the ball's two projections share one distribution (kurtosis 3(d+2)/(d+4)); the cube's do not
    (uniform along an axis, kurtosis 1.8; nearly Gaussian along a diagonal)."""
    dim = 20
    trainer = ActionTrainer(slow_system(0.0, dim=dim), small_config(region="trust", region_shape=shape, max_rounds=1))
    trainer.run()
    trainer.region_center = trainer._to_z(torch.zeros(dim, dtype=trainer.center.dtype))  # away from the walls
    trainer.region_radius = 0.1
    offsets = trainer._to_scaled(trainer._sample(40_000)).double()
    axis = offsets[:, 3]
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    diagonal = offsets @ (direction / direction.norm())
    k_axis, k_diag = _kurtosis(axis), _kurtosis(diagonal)
    if shape == "ball":
        assert k_axis == pytest.approx(3 * (dim + 2) / (dim + 4), abs=0.1)
        assert abs(k_axis - k_diag) < 0.15
    else:
        assert k_axis == pytest.approx(1.8, abs=0.05) and k_diag > 2.6


def test_benchmark_passes_trainer_options_and_records_them(tmp_path, capsys):
    import json

    from openmm_actionmin.benchmarks.synthetic import main

    out = tmp_path / "rows.json"
    assert (
        main(
            [
                "--functions",
                "alpine1",
                "--dims",
                "4",
                "--seeds",
                "1",
                "--budget-s",
                "0.5",
                "--rotate",
                "--methods",
                "random_only,adam",
                "--max-rounds",
                "2",
                "--option",
                "region_shape=ball",
                "--option",
                "translation_update=isotropic",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["random_only"]["options"] == {"region_shape": "ball", "translation_update": "isotropic"}
    assert "options" not in rows["adam"]
    capsys.readouterr()
    assert main(["--methods", "adam", "--option", "region_form=ball"]) == 2
    assert "unknown option(s) region_form" in capsys.readouterr().err
    assert main(["--methods", "action", "--option", "region_shape=sphere"]) == 2
    assert "region_shape" in capsys.readouterr().err
    assert main(["--methods", "adam", "--option", "ball"]) == 2
    assert "write KEY=VALUE" in capsys.readouterr().err


def test_the_ball_penalty_point_turns_with_the_minimiser():
    """Rotating the model's minimiser about the ball's centre rotates the point the penalty pulls it to."""
    dim = 20
    trainer = ActionTrainer(
        slow_system(0.0, dim=dim), small_config(region="trust", region_shape="ball", region_penalty=1.0, max_rounds=1)
    )
    trainer.run()
    trainer.region_center = trainer._to_z(torch.zeros(dim, dtype=trainer.center.dtype))
    trainer.region_radius = 0.1
    gen = torch.Generator().manual_seed(3)
    s_star = torch.randn(dim, generator=gen, dtype=torch.float64)
    s_star = 0.5 * s_star / s_star.norm()  # outside the ball (radius 0.26), inside the box
    rotation = random_rotation(dim, gen)
    trainer.last_minimizer = s_star
    point = trainer._penalty_point()
    trainer.last_minimizer = rotation @ s_star
    turned = trainer._penalty_point()
    assert point is not None and float(point.norm()) == pytest.approx(trainer._ball_radius(), rel=1e-6)
    torch.testing.assert_close(
        turned.reshape(-1).double(), (rotation @ point.reshape(-1).double()), rtol=1e-5, atol=1e-6
    )
    trainer.last_minimizer = 0.1 * s_star  # inside the ball: no penalty
    assert trainer._penalty_point() is None
