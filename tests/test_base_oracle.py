"""Tests of the oracle protocol itself (base.py), through the torch LJ oracle."""

import math

import numpy as np
import pytest
import torch

from openmm_actionmin.oracles import (
    REDUCED_UNITS,
    FiniteEnergy,
    InvalidConfigurationError,
    OracleError,
    lennard_jones,
)


def lj_dimer_trimer(n=3):
    x = torch.tensor([[0.0, 0.0, 0.0], [1.12, 0.0, 0.0], [0.0, 1.2, 0.0]], dtype=torch.float64)[:n]
    return x


def test_nan_input_names_configuration_and_atom():
    oracle = lennard_jones(3)
    x = torch.stack([lj_dimer_trimer(), lj_dimer_trimer()])
    x[1, 2, 1] = float("nan")
    with pytest.raises(
        InvalidConfigurationError, match=r"non-finite input at configuration 1, atom 2 \(coordinate y\)"
    ):
        oracle.energy(x)
    x[1, 2, 1] = float("inf")
    with pytest.raises(InvalidConfigurationError, match="Remove NaN/inf"):
        oracle.energy_and_forces(x)
    assert oracle.counters.force_calls == 0  # nothing reached the backend


def test_wrong_shape_messages():
    oracle = lennard_jones(3)
    with pytest.raises(
        InvalidConfigurationError, match=r"expects configurations of shape \[B, 3, 3\], got \(2, 4, 3\)$"
    ):
        oracle.energy(torch.zeros(2, 4, 3))
    with pytest.raises(InvalidConfigurationError, match=r"single configuration: add a batch dimension with x\[None\]"):
        oracle.energy(lj_dimer_trimer())
    with pytest.raises(InvalidConfigurationError, match="empty batch"):
        oracle.energy(torch.zeros(0, 3, 3))
    with pytest.raises(OracleError, match="at least 2 atoms"):
        lennard_jones(1)


def test_accepts_numpy_and_lists():
    oracle = lennard_jones(2)
    e_list = oracle.energy([[[0.0, 0, 0], [1.0, 0, 0]]])
    e_np = oracle.energy(np.array([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=np.float32))
    assert e_list.dtype == torch.float64 and float(e_list) == pytest.approx(0.0, abs=1e-12)  # r = sigma
    assert float(e_np) == pytest.approx(0.0, abs=1e-12)


def test_counters_count_configurations_and_batches():
    oracle = lennard_jones(3)
    x = lj_dimer_trimer()[None].repeat(5, 1, 1)
    oracle.energy_and_forces(x)
    oracle.energy(x[:2])
    xg = x[:3].clone().requires_grad_(True)
    oracle.energy(xg).sum().backward()  # autograd bridge: one backend call
    c = oracle.counters
    assert (c.force_calls, c.batches, c.nonfinite) == (10, 3, 0)
    assert c.seconds > 0
    snap = c.snapshot()
    oracle.reset_counters()
    assert oracle.counters.force_calls == 0 and snap.force_calls == 10


def test_nonfinite_output_becomes_cap_with_zero_forces():
    oracle = lennard_jones(3)
    good = lj_dimer_trimer()
    bad = good.clone()
    bad[1] = bad[0]  # coincident atoms: raw energy inf / NaN
    e, f = oracle.energy_and_forces(torch.stack([good, bad, good]), transform=None)
    assert float(e[1]) == oracle.nonfinite_energy == 1e30
    assert bool((f[1] == 0).all())
    assert bool(torch.isfinite(e).all()) and bool(torch.isfinite(f).all())
    assert float(e[0]) == float(e[2]) and float(e[0]) < 0
    assert oracle.counters.nonfinite == 1 and oracle.counters.capped == 1
    # a custom cap
    capped = lennard_jones(3, nonfinite_energy=123.0)
    assert float(capped.energy(bad[None])) == 123.0


def test_cap_bounds_finite_energies_above_it():
    oracle = lennard_jones(3)
    cap = oracle.nonfinite_energy
    good = lj_dimer_trimer()
    close = good.clone()
    close[1, 0] = 1e-4  # raw energy 4e48: finite, above the cap
    e, f = oracle.energy_and_forces(torch.stack([good, close]), transform=None)
    assert float(e[1]) == cap and bool((f[1] == 0).all()) and float(e[0]) < 0
    assert (oracle.counters.capped, oracle.counters.nonfinite) == (1, 0)
    tf = FiniteEnergy()
    t = oracle.energy(close[None])
    assert float(oracle.energy(close[None], transform=tf)) == float(tf(torch.tensor([cap], dtype=torch.float64))[0])
    assert float(t) == cap  # no default transform: the cap itself
    snap = oracle.counters.snapshot()
    oracle.reset_counters()
    assert snap.capped == 3 and oracle.counters.capped == 0


def test_finite_energy_transform_properties():
    tf = FiniteEnergy(threshold=10.0, scale=5.0)
    e = torch.linspace(-50.0, 1e4, 20001, dtype=torch.float64)
    t, slope = tf(e)
    assert bool((torch.diff(t) > 0).all()), "transform must be strictly increasing"
    torch.testing.assert_close(t[e <= 10.0], e[e <= 10.0])  # identity below the threshold
    # C1 at the threshold: one-sided numerical slopes are both 1
    h = 1e-6
    th = torch.tensor([10.0 - h, 10.0, 10.0 + h], dtype=torch.float64)
    v, s = tf(th)
    left = (v[1] - v[0]) / h
    right = (v[2] - v[1]) / h
    assert float(left) == pytest.approx(1.0, abs=1e-6) and float(right) == pytest.approx(1.0, abs=1e-6)
    # the returned slope is the numerical derivative everywhere
    pts = torch.tensor([11.0, 50.0, 1e3, 1e6], dtype=torch.float64)
    step = 1e-5 * pts  # relative step: roundoff stays small next to the slope
    num = (tf(pts + step)[0] - tf(pts - step)[0]) / (2 * step)
    torch.testing.assert_close(tf(pts)[1], num, rtol=1e-6, atol=0)
    # bounded for astronomically large energies
    big, big_slope = tf(torch.tensor([1e38], dtype=torch.float64))
    assert float(big) == pytest.approx(10.0 + 5.0 * math.log1p((1e38 - 10.0) / 5.0))
    assert float(big) < 10.0 + 5.0 * 90 and float(big_slope) > 0
    with pytest.raises(ValueError, match="scale must be positive"):
        FiniteEnergy(threshold=0.0, scale=0.0)


def test_transformed_forces_are_minus_gradient_and_raw_available():
    tf = FiniteEnergy(threshold=1.0, scale=2.0)
    oracle = lennard_jones(3, transform=tf)
    gen = torch.Generator().manual_seed(0)
    # compressed configurations: raw energies far above the threshold
    x = lj_dimer_trimer()[None] * torch.linspace(0.5, 1.1, 6, dtype=torch.float64)[:, None, None]
    x = x + 0.01 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    raw_e, raw_f = oracle.energy_and_forces(x, transform=None)
    t_e, t_f = oracle.energy_and_forces(x)
    assert float(raw_e.max()) > 1e3  # the transform is active on some rows
    expected_e, slope = tf(raw_e)
    torch.testing.assert_close(t_e, expected_e)
    torch.testing.assert_close(t_f, raw_f * slope[:, None, None])
    # autograd through energy(x) with requires_grad gives minus the transformed forces
    xg = x.clone().requires_grad_(True)
    e = oracle.energy(xg)
    (grad,) = torch.autograd.grad(e.sum(), xg)
    torch.testing.assert_close(grad, -t_f)
    # and the raw energy is differentiable too, with the raw forces
    xg2 = x.clone().requires_grad_(True)
    (grad_raw,) = torch.autograd.grad(oracle.energy(xg2, transform=None).sum(), xg2)
    torch.testing.assert_close(grad_raw, -raw_f)
    # finite difference of the transformed energy along a direction
    d = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    h = 1e-6
    fd = (oracle.energy(x + h * d) - oracle.energy(x - h * d)) / (2 * h)
    torch.testing.assert_close(fd, -(t_f * d).sum(dim=(1, 2)), rtol=1e-5, atol=1e-6)


def test_units_and_repr():
    oracle = lennard_jones(4)
    assert oracle.units == REDUCED_UNITS and oracle.units.force == "epsilon/sigma"
    assert oracle.event_shape == (4, 3) and oracle.dim == 12 and oracle.n_atoms == 4
    assert "n_atoms=4" in repr(oracle)
    with oracle as o:
        assert o is oracle
