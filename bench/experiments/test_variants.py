"""Tests of the research variants (run by hand: ``python -m pytest -q bench/experiments/test_variants.py``)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variants import (  # noqa: E402
    ACTION_VARIANTS,
    BASIN_HOPPING_VARIANTS,
    METHODS,
    basinhopping_variant,
    reflect_into_box,
)

from openmm_actionmin.oracles.base import DIMENSIONLESS, TorchOracle  # noqa: E402
from openmm_actionmin.search.action_config import SYNTHETIC_ACTION  # noqa: E402
from openmm_actionmin.search.baselines import scipy_basinhopping  # noqa: E402
from openmm_actionmin.spaces import Box  # noqa: E402
from openmm_actionmin.systems.base import System  # noqa: E402

DIM = 6


class ShiftedQuadratic(TorchOracle):
    """sum_i a_i (x_i - c_i)^2, minimum 0 at c."""

    def __init__(self, center: torch.Tensor) -> None:
        super().__init__(dim=center.numel(), units=DIMENSIONLESS)
        self.center = center
        self.weights = torch.linspace(0.5, 3.0, center.numel(), dtype=torch.float64)

    def energy_fn(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights * (x - self.center) ** 2).sum(dim=-1)


def quadratic_system() -> System:
    center = torch.linspace(-2.0, 3.0, DIM, dtype=torch.float64)
    return System(
        name="quadratic",
        oracle=ShiftedQuadratic(center),
        space=Box.cube(5.0, (DIM,)),
        reference_energy=0.0,
        reference_positions=center,
    )


def distance(system: System, result) -> float:
    return float(np.linalg.norm(np.asarray(result.positions) - system.reference_positions.numpy()))


def test_variant_names_do_not_shadow_product_methods():
    assert ACTION_VARIANTS["random_only_trust"]["action_weight"] == 0.0
    assert ACTION_VARIANTS["action_free"] == {**SYNTHETIC_ACTION, "region_penalty": 0.0}
    assert "action" not in ACTION_VARIANTS
    assert set(METHODS) >= {"action", "random_only", "adam", "cma", "scipy_basinhopping"}
    assert set(METHODS) >= set(ACTION_VARIANTS) | set(BASIN_HOPPING_VARIANTS)


def test_reflect_into_box_mirrors_overshoots_at_the_walls():
    lower, upper = np.array([-1.0, 0.0, -10.0]), np.array([1.0, 4.0, 10.0])
    x = np.array(
        [
            [1.25, -0.5, 3.0],  # past the top wall by 0.25; past the bottom by 0.5; inside
            [-1.0, 4.0, 29.0],  # on the walls; 19 past the top of a width-20 box
            [5.5, 9.0, -35.0],
        ]
    )  # overshoots of more than one width fold back again
    y = reflect_into_box(x, lower, upper)
    np.testing.assert_allclose(y, [[0.75, 0.5, 3.0], [-1.0, 4.0, -9.0], [0.5, 1.0, 5.0]], atol=1e-12)
    rng = np.random.default_rng(0)
    many = reflect_into_box(rng.uniform(-50, 50, size=(1000, 3)), lower, upper)
    assert (many >= lower).all() and (many <= upper).all()


def test_basinhopping_variants_reflect_and_reheat():
    system = quadratic_system()
    bh = basinhopping_variant(system, 2.0, seed=0, boundary="reflect", method_name="basinhopping_reflect")
    assert bh.method == "basinhopping_reflect" and bh.extra["config"]["boundary"] == "reflect"
    assert distance(system, bh) < 1e-3
    reheated = basinhopping_variant(system, 2.0, seed=0, reheat_after=20)
    assert reheated.extra["restarts"] >= 1  # the convex minimum is found at once, then nothing improves
    assert distance(system, reheated) < 1e-3
    with pytest.raises(ValueError, match="reheat_after must be"):
        basinhopping_variant(system, 1.0, reheat_after=0)
    with pytest.raises(ValueError, match="boundary must be one of"):
        basinhopping_variant(system, 1.0, boundary="wrap")


def test_clip_without_reheat_starts_where_the_product_baseline_starts():
    a = scipy_basinhopping(quadratic_system(), 0.5, seed=3)
    b = basinhopping_variant(quadratic_system(), 0.5, seed=3)
    assert a.history[0]["best_energy"] == b.history[0]["best_energy"]
    assert a.history[0]["stepsize"] == b.history[0]["stepsize"]
    assert b.extra["config"] == {**a.extra["config"], "boundary": "clip", "reheat_after": None}
