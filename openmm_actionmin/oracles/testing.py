"""Conformance kit: the checks every oracle adapter must pass.

Usage in an adapter's tests::

    from openmm_actionmin.oracles.testing import validate_oracle
    report = validate_oracle(oracle, x)   # raises AssertionError on failure

``x`` should hold a few *physically reasonable* configurations (finite
differences need a smooth neighbourhood); ``random_x`` optionally holds absurd
ones (overlaps, random boxes) that must still give finite outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from .base import EnergyOracle, FiniteEnergy


@dataclasses.dataclass
class ConformanceReport:
    """What :func:`validate_oracle` measured.

    Attributes:
        max_autograd_error: Max abs difference between forces and minus the
            autograd gradient.
        max_fd_rel_error: Max relative error of finite-difference directional
            derivatives against the forces.
        max_batch_loop_error: Max abs difference batch vs one-at-a-time.
        n_random_checked: Random configurations checked for finite output.
    """

    max_autograd_error: float = 0.0
    max_fd_rel_error: float = 0.0
    max_batch_loop_error: float = 0.0
    n_random_checked: int = 0


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def validate_oracle(
    oracle: EnergyOracle,
    x: torch.Tensor,
    *,
    random_x: Optional[torch.Tensor] = None,
    fd_step: float = 1e-5,
    fd_rtol: float = 1e-4,
    fd_directions: int = 3,
    batch_atol: float = 1e-8,
    batch_rtol: float = 1e-8,
    finite_transform: Optional[FiniteEnergy] = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check an oracle against the protocol.

    Checks: output shapes ``energy [B]`` and ``forces [B, *event_shape]``; dtype
    and device; forces equal minus the autograd gradient of :meth:`energy`;
    central finite differences of the energy along random directions match
    ``-forces . direction``; a batch equals a loop over single configurations;
    NaN input raises; and, if ``random_x`` is given, transformed energies and
    forces of those configurations are all finite.

    Args:
        oracle: The oracle to check.
        x: Reasonable configurations ``[B, *event_shape]`` (B >= 2 recommended).
        random_x: Optional absurd configurations for the finiteness check.
        fd_step: Finite-difference step in oracle length units.
        fd_rtol: Relative tolerance of the finite-difference check (relative
            to the largest of the directional derivative and 1).
        fd_directions: Random unit directions per configuration.
        batch_atol: Absolute tolerance of batch-vs-loop equality.
        batch_rtol: Relative tolerance of batch-vs-loop equality.
        finite_transform: Transform used for the ``random_x`` check (default
            ``FiniteEnergy()``).
        seed: Seed of the random directions.

    Returns:
        A :class:`ConformanceReport`.

    Raises:
        AssertionError: naming the first failed check.
    """
    report = ConformanceReport()
    name = type(oracle).__name__
    x = oracle.as_batch(x).detach()
    b = x.shape[0]

    energy, forces = oracle.energy_and_forces(x)
    _check(tuple(energy.shape) == (b,), f"{name}: energy shape {tuple(energy.shape)} != {(b,)}")
    _check(tuple(forces.shape) == tuple(x.shape), f"{name}: forces shape {tuple(forces.shape)} != {tuple(x.shape)}")
    for t, what in ((energy, "energy"), (forces, "forces")):
        _check(t.dtype == oracle.dtype, f"{name}: {what} dtype {t.dtype} != oracle dtype {oracle.dtype}")
        _check(t.device.type == oracle.device.type, f"{name}: {what} on {t.device}, oracle on {oracle.device}")
        _check(bool(torch.isfinite(t).all()), f"{name}: non-finite {what} on reasonable configurations")

    # forces == -autograd gradient
    xg = x.clone().requires_grad_(True)
    e = oracle.energy(xg)
    _check(e.requires_grad, f"{name}: energy(x) of an x that requires grad is not differentiable")
    (grad,) = torch.autograd.grad(e.sum(), xg)
    err = float((grad + forces).abs().max())
    report.max_autograd_error = err
    scale = float(forces.abs().max()) + 1.0
    _check(err <= 1e-10 * scale + 1e-12, f"{name}: forces differ from -autograd gradient by {err:.3e}")

    # finite differences of the energy along random directions
    gen = torch.Generator(device="cpu").manual_seed(seed)
    worst = 0.0
    for _ in range(fd_directions):
        d = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
        d = d / d.reshape(b, -1).norm(dim=1).reshape((-1,) + (1,) * (x.dim() - 1))
        e_plus = oracle.energy(x + fd_step * d)
        e_minus = oracle.energy(x - fd_step * d)
        fd = (e_plus - e_minus) / (2 * fd_step)
        analytic = -(forces * d).reshape(b, -1).sum(dim=1)
        rel = (fd - analytic).abs() / torch.clamp(analytic.abs(), min=1.0)
        worst = max(worst, float(rel.max()))
    report.max_fd_rel_error = worst
    _check(worst <= fd_rtol, f"{name}: finite differences disagree with forces (relative error {worst:.3e} > {fd_rtol})")

    # batch equals loop
    loop_e = torch.cat([oracle.energy_and_forces(x[i : i + 1])[0] for i in range(b)])
    loop_f = torch.cat([oracle.energy_and_forces(x[i : i + 1])[1] for i in range(b)])
    be = float(((loop_e - energy).abs() - batch_rtol * energy.abs()).max())
    bf = float(((loop_f - forces).abs() - batch_rtol * forces.abs()).max())
    report.max_batch_loop_error = max(float((loop_e - energy).abs().max()), float((loop_f - forces).abs().max()))
    _check(be <= batch_atol and bf <= batch_atol, f"{name}: batch and loop differ by {report.max_batch_loop_error:.3e}")

    # NaN input is an error, not a NaN output
    bad = x[:1].clone()
    bad.reshape(-1)[0] = float("nan")
    try:
        oracle.energy(bad)
    except ValueError as exc:
        _check("non-finite" in str(exc), f"{name}: NaN input raised an unclear error: {exc}")
    else:
        raise AssertionError(f"{name}: NaN input did not raise")

    if random_x is not None:
        tf = finite_transform or FiniteEnergy()
        re, rf = oracle.energy_and_forces(random_x, transform=tf)
        _check(bool(torch.isfinite(re).all()), f"{name}: non-finite transformed energy on random configurations")
        _check(bool(torch.isfinite(rf).all()), f"{name}: non-finite transformed forces on random configurations")
        report.n_random_checked = int(re.shape[0])
    return report
