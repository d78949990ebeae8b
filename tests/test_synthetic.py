"""Tests of the synthetic benchmark functions and SyntheticOracle."""

import math

import numpy as np
import pytest
import torch

from openmm_actionmin.oracles import DIMENSIONLESS, OracleError, validate_oracle
from openmm_actionmin.oracles.synthetic import (
    SYNTHETIC_FUNCTIONS,
    SyntheticOracle,
    alpine1,
    get_spec,
    make_function,
    random_shift,
    schaffer_f7,
)
from openmm_actionmin.spaces import Box

NAMES = sorted(SYNTHETIC_FUNCTIONS)
DIM = 5


def test_registry_has_the_14_functions():
    assert len(SYNTHETIC_FUNCTIONS) == 14
    for key in ("alpine1", "schaffer_f7", "drop_wave", "modified_xin_she_yang5"):
        assert key in SYNTHETIC_FUNCTIONS
    assert get_spec("Alpine 1").name == "alpine1"
    assert get_spec("Schaffer-F7").name == "schaffer_f7"
    with pytest.raises(OracleError, match="unknown synthetic function 'sphere'.*alpine1"):
        get_spec("sphere")


@pytest.mark.parametrize("name", NAMES)
def test_value_at_minimum_and_larger_nearby(name):
    spec = SYNTHETIC_FUNCTIONS[name]
    for dim in (spec.min_dim, DIM, 50):
        x_star = spec.minimum_location(dim)[None]
        value = float(spec(x_star))
        assert value == pytest.approx(spec.minimum_value, abs=1e-12)
        gen = torch.Generator().manual_seed(1)
        for radius in (1e-3, 1e-2, 1e-1):
            d = torch.randn(64, dim, generator=gen, dtype=torch.float64)
            d = radius * d / d.norm(dim=1, keepdim=True)
            assert bool((spec(x_star + d) > value).all()), (
                f"{name} D={dim}: a point at distance {radius} is not above the minimum"
            )


@pytest.mark.parametrize("name", NAMES)
def test_gradient_finite_and_zero_at_minimum(name):
    spec = SYNTHETIC_FUNCTIONS[name]
    for dtype in (torch.float64, torch.float32):
        oracle = SyntheticOracle(name, DIM, dtype=dtype)
        energy, forces = oracle.energy_and_forces(oracle.minimum_location[None])
        assert bool(torch.isfinite(forces).all())
        assert float(forces.abs().max()) < 1e-5, f"{name}: nonzero gradient {forces} at the minimum"
        assert oracle.counters.nonfinite == 0
    # points with exact zeros / cusps in some coordinates: finite gradients
    x = torch.tensor([[0.0, 1.3, 0.0, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.7]], dtype=torch.float64)
    x = x + spec.minimum_coordinate
    forces = SyntheticOracle(name, DIM).forces(x)
    assert bool(torch.isfinite(forces).all())


def test_kinks_use_documented_convention():
    # Alpine 1 at exactly a zero of x sin x + 0.1 x other than 0: torch's sign(0) = 0 subgradient
    root = float(np.pi + np.arcsin(0.1))  # sin(root) = -0.1
    x = torch.tensor([[root, 0.0]], dtype=torch.float64, requires_grad=True)
    value = alpine1(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    assert float(value.detach()) < 1e-14
    assert bool(torch.isfinite(grad).all())
    # Schaffer F7: tiny but nonzero s in float32 (s below the smallest normal) gives a zero, finite gradient
    x32 = torch.tensor([[1e-30, 0.0, 2.0]], dtype=torch.float32, requires_grad=True)
    (g32,) = torch.autograd.grad(schaffer_f7(x32).sum(), x32)
    assert bool(torch.isfinite(g32).all())
    # Modified Xin-She Yang 5: sqrt|x_i| cusp at x_i = 0 with x elsewhere nonzero
    o = SyntheticOracle("modified_xin_she_yang5", 3)
    assert bool(torch.isfinite(o.forces(torch.tensor([[0.0, 1.0, -1.0]]))).all())


def test_alpine_and_schaffer_f7_exact_paper_forms():
    x = np.array([[0.3, -1.7, 2.5, 4.0], [10.0, -20.0, 33.0, 0.1]])
    alp = np.abs(x * np.sin(x) + 0.1 * x).sum(axis=1)
    n = x.shape[1]
    s = x[:, :-1] ** 2 + x[:, 1:] ** 2
    sch = (s**0.25 * (1 + np.sin(50 * s**0.1) ** 2)).sum(axis=1) / n  # (1/n), n = D, sum over n-1 pairs
    xt = torch.tensor(x)
    np.testing.assert_allclose(alpine1(xt).numpy(), alp, rtol=1e-14)
    np.testing.assert_allclose(schaffer_f7(xt).numpy(), sch, rtol=1e-13)
    # a hand value: D = 2, x = (1, 0): s = 1 -> (1/2) (1 + sin^2 50)
    assert float(schaffer_f7(torch.tensor([[1.0, 0.0]], dtype=torch.float64))) == pytest.approx(
        0.5 * (1 + math.sin(50.0) ** 2), rel=1e-14
    )


def test_reference_values_of_other_functions():
    # hand-computed values at simple points
    one = torch.ones(1, 2, dtype=torch.float64)
    f = SYNTHETIC_FUNCTIONS
    assert float(f["rastrigin"](one)) == pytest.approx(2.0, abs=1e-12)  # 10*2 + 2*(1 - 10)
    assert float(f["rosenbrock"](torch.zeros(1, 3, dtype=torch.float64))) == pytest.approx(2.0)
    assert float(f["drop_wave"](one)) == pytest.approx(1 - (1 + math.cos(12 * math.sqrt(2))) / 3.0)
    assert float(f["salomon"](one)) == pytest.approx(1 - math.cos(2 * math.pi * math.sqrt(2)) + 0.1 * math.sqrt(2))
    assert float(f["happycat"](one)) == pytest.approx(0.0 + (1 + 2) / 2 + 0.5)
    assert float(f["hgbat"](one)) == pytest.approx(0.0 + (1 + 2) / 2 + 0.5)
    g = 0.5 + (math.sin(math.sqrt(2)) ** 2 - 0.5) / (1.002) ** 2
    assert float(f["expanded_schaffer_f6"](one)) == pytest.approx(2 * g)  # cyclic: pairs (1,2) and (2,1)
    assert float(f["xin_she_yang1"](one)) == pytest.approx(2 * math.exp(-2 * math.sin(1.0)))


@pytest.mark.parametrize("name", NAMES)
def test_validate_oracle(name):
    spec = SYNTHETIC_FUNCTIONS[name]
    oracle = SyntheticOracle(name, DIM)
    gen = torch.Generator().manual_seed(3)
    # reasonable points: a moderate region around the minimum, away from the cusps
    x = spec.minimum_coordinate + (torch.rand(4, DIM, generator=gen, dtype=torch.float64) - 0.5) * min(
        4.0, spec.default_half_width
    )
    random_x = (torch.rand(16, DIM, generator=gen, dtype=torch.float64) * 2 - 1) * spec.default_half_width
    report = validate_oracle(oracle, x, random_x=random_x, fd_step=1e-6, fd_rtol=1e-5)
    assert report.max_fd_rel_error < 1e-5


def test_shift_moves_the_minimum_and_space():
    gen = torch.Generator().manual_seed(0)
    for name in ("alpine1", "rosenbrock", "happycat", "schaffer_f7"):
        shift = random_shift(name, DIM, gen)
        oracle = make_function(name, DIM, shift=shift)
        spec = SYNTHETIC_FUNCTIONS[name]
        expected = spec.minimum_location(DIM) + shift
        torch.testing.assert_close(oracle.minimum_location, expected)
        assert float(oracle.energy(oracle.minimum_location[None])) == pytest.approx(oracle.minimum_value, abs=1e-12)
        # the unshifted minimiser is no longer a minimum
        assert float(oracle.energy(spec.minimum_location(DIM)[None])) > oracle.minimum_value + 1e-3
        assert float(oracle.distance_to_minimum(oracle.minimum_location[None])) == 0.0
        # the shifted minimum lies inside 80% of the default box
        assert float(oracle.minimum_location.abs().max()) <= 0.8 * spec.default_half_width
        box = oracle.space()
        assert isinstance(box, Box) and box.dim == DIM
        assert float(box.upper[0]) == spec.default_half_width == oracle.default_box
        assert oracle.units == DIMENSIONLESS
    assert SYNTHETIC_FUNCTIONS["alpine1"].action_paper_half_width == 100.0
    assert make_function("alpine1", 3).space(100.0).upper.tolist() == [100.0] * 3


def test_random_shift_reproducible_and_uniform():
    a = random_shift("alpine1", 1000, torch.Generator().manual_seed(7))
    b = random_shift("alpine1", 1000, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert float(a.abs().max()) <= 8.0 and float(a.abs().max()) > 7.5
    assert abs(float(a.mean())) < 0.5


def test_bad_arguments():
    with pytest.raises(OracleError, match="rosenbrock needs dim >= 2"):
        SyntheticOracle("rosenbrock", 1)
    with pytest.raises(OracleError, match=r"shift for alpine1 must have shape \[3\]"):
        SyntheticOracle("alpine1", 3, shift=[1.0, 2.0])
    with pytest.raises(OracleError, match="NaN/inf"):
        SyntheticOracle("alpine1", 2, shift=[1.0, float("nan")])
    with pytest.raises(ValueError, match="fraction"):
        random_shift("alpine1", 2, fraction=1.5)


def test_batched_float32_and_autograd_bridge():
    oracle = SyntheticOracle("schaffer_f7", 10, dtype=torch.float32)
    x = oracle.space().sample(32, torch.Generator().manual_seed(0)).requires_grad_(True)
    e = oracle.energy(x)
    assert e.shape == (32,) and e.dtype == torch.float32
    e.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert oracle.counters.force_calls == 32


def test_function_action_defaults_are_the_trust_region_bowl_and_random_only_samples_the_box():
    """minimize() and the benchmark use SYNTHETIC_ACTION; random-only keeps the paper's uniform samples."""
    import openmm_actionmin as am
    from openmm_actionmin.search.action_config import BOWL_MODEL, SYNTHETIC_ACTION

    tiny = dict(budget_s=600, max_rounds=2, progress=False, warm_start_samples=64, warm_start_steps=5)
    action = am.minimize("alpine1:5", method="action", **tiny)
    config = action.extra["config"]
    assert config["region"] == "trust" and config["model_growth"] == "learned" and not config["model_learn_bounds"]
    assert config["region_penalty"] == 1.0  # the minimiser is held in the trust region
    assert all(config[k] == v for k, v in SYNTHETIC_ACTION.items())
    ro = am.minimize("alpine1:5", method="random_only", **tiny)
    assert ro.extra["config"]["region"] == "box" and ro.extra["config"]["action_weight"] == 0.0
    assert all(ro.extra["config"][k] == v for k, v in BOWL_MODEL.items())


def test_benchmark_runs_the_registrys_function_methods_by_default():
    from openmm_actionmin.benchmarks.synthetic import METHOD_NAMES, METHODS, SyntheticBenchConfig, build_parser
    from openmm_actionmin.registry import METHODS_FOR

    product = list(METHODS_FOR["function"])
    assert sorted(product) == ["action", "adam", "cma", "random_only", "scipy_basinhopping"]
    assert list(METHOD_NAMES) == list(METHODS) == product
    assert list(SyntheticBenchConfig().methods) == product
    assert build_parser().parse_args([]).methods.split(",") == product
    with pytest.raises(ValueError, match="unknown method.*basinhopping"):
        SyntheticBenchConfig(methods=("basinhopping",))


def test_benchmark_methods_run_through_the_registry(monkeypatch):
    """Every benchmark name runs registry.METHODS[name].run with the run's seed, budget and round limit."""
    import dataclasses

    from openmm_actionmin import registry
    from openmm_actionmin.benchmarks import synthetic
    from openmm_actionmin.result import Result

    calls = []
    for name in registry.METHODS_FOR["function"]:

        def fake(system, config, name=name):
            calls.append((name, config.seed, config.budget_s, dict(config.options)))
            return Result(
                positions=np.zeros(system.oracle.dim), energy=1.0, units=DIMENSIONLESS, method=name, seed=config.seed
            )

        monkeypatch.setitem(registry.METHODS, name, dataclasses.replace(registry.METHODS[name], run=fake))
    rows = synthetic.run_benchmark(
        synthetic.SyntheticBenchConfig(functions=("alpine1",), dims=(3,), seeds=(2,), budget_s=5.0, max_rounds=4),
        log=lambda line: None,
    )
    assert [r["method"] for r in rows] == list(registry.METHODS_FOR["function"])
    assert calls == [
        (name, 2, 5.0, {"max_rounds": 4} if name in synthetic.PLNET_METHODS else {})
        for name in registry.METHODS_FOR["function"]
    ]


def test_warm_up_pays_torchs_one_time_optimizer_import_before_any_timed_run():
    """After warm_up(), building an optimizer imports nothing more (so no method's budget pays for it)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from openmm_actionmin.benchmarks.warmup import warm_up\n"
        "warm_up()\n"
        "before = set(sys.modules)\n"
        "torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
