"""Conformance kit: the checks every oracle adapter must pass.

Usage in an adapter's tests::

    from openmm_actionmin.oracles.testing import validate_oracle
    report = validate_oracle(oracle, x)   # raises AssertionError on failure

``x`` should hold a few *physically reasonable* configurations (finite
differences need a smooth neighbourhood); ``random_x`` optionally holds absurd
ones (overlaps, random boxes) that must still give finite outputs. For atomic
oracles the kit also closes a pair of atoms of ``x[0]`` in, down to 1e-6 length
units, and checks that every energy is finite and at most the oracle's cap
(:attr:`~.base.EnergyOracle.nonfinite_energy`), with zero forces at the cap;
given ``closing_pair``, it also checks that the energy and its
:class:`~.base.FiniteEnergy` transform never decrease along that path.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

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
        n_closing_checked: Configurations of the closing-pair path checked
            against the cap (0 for non-atomic oracles).
    """

    max_autograd_error: float = 0.0
    max_fd_rel_error: float = 0.0
    max_batch_loop_error: float = 0.0
    n_random_checked: int = 0
    n_closing_checked: int = 0


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def closing_pair_path(
    x: torch.Tensor, i: int, j: int, *, start: Optional[float] = None, stop: float = 1e-6, steps: int = 13
) -> torch.Tensor:
    """Configurations in which atom ``j`` approaches atom ``i`` along their line.

    Args:
        x: One configuration ``[N, 3]``.
        i: The atom that stays.
        j: The atom that moves (``j != i``); it keeps its direction from ``i``
            (the x axis if the two coincide).
        start: First separation (default: the separation in ``x``).
        stop: Last separation.
        steps: Number of separations, geometrically spaced from ``start`` to
            ``stop``.

    Returns:
        ``[steps, N, 3]``, separations decreasing; other atoms unchanged.
    """
    if i == j:
        raise ValueError("closing_pair_path needs two different atoms")
    x = x.detach()
    diff = x[j] - x[i]
    r = float(diff.norm())
    u = diff / r if r > 0 else torch.tensor([1.0, 0.0, 0.0], dtype=x.dtype, device=x.device)
    first = r if start is None else float(start)
    if not (first > stop > 0):
        raise ValueError(f"closing_pair_path needs start > stop > 0, got {first} and {stop}")
    d = torch.logspace(torch.log10(torch.tensor(first)), torch.log10(torch.tensor(stop)), steps, dtype=torch.float64)
    path = x.unsqueeze(0).repeat(steps, 1, 1)
    path[:, j] = x[i] + d.to(device=x.device, dtype=x.dtype)[:, None] * u
    return path


def _nearest_pair(x: torch.Tensor) -> Tuple[int, int]:
    n = x.shape[0]
    dist = torch.cdist(x.detach().double(), x.detach().double())
    dist.fill_diagonal_(float("inf"))
    k = int(torch.argmin(dist))
    return k // n, k % n


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
    closing_pair: Optional[Tuple[int, int]] = None,
    closing_start: Optional[float] = None,
    seed: int = 0,
) -> ConformanceReport:
    """Check an oracle against the protocol.

    Checks: output shapes ``energy [B]`` and ``forces [B, *event_shape]``; dtype
    and device; forces equal minus the autograd gradient of :meth:`energy`;
    central finite differences of the energy along random directions match
    ``-forces . direction``; a batch equals a loop over single configurations;
    NaN input raises; if ``random_x`` is given, transformed energies and
    forces of those configurations are all finite; every energy is at most the
    cap ``oracle.nonfinite_energy``; and, for atomic oracles, along a path on
    which a pair of atoms of ``x[0]`` closes in to 1e-6 length units (the
    nearest pair, or ``closing_pair``), energies are finite and at most the
    cap, rows at the cap have zero forces, and :class:`FiniteEnergy` values
    are finite and at most the transform of the cap. Given ``closing_pair``,
    energies and transformed energies must also never decrease along the
    path: a property of repulsive cores, which learned potentials need not
    have, hence opt-in.

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
        finite_transform: Transform used for the ``random_x`` and closing-pair
            checks (default ``FiniteEnergy()``).
        closing_pair: Atoms ``(i, j)`` of ``x[0]``; ``j`` approaches ``i`` and
            the energy must never decrease on the way.
        closing_start: First separation of the closing path, in oracle length
            units (default: the pair's separation in ``x[0]``).
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
    _check(
        worst <= fd_rtol, f"{name}: finite differences disagree with forces (relative error {worst:.3e} > {fd_rtol})"
    )

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

    cap = oracle.nonfinite_energy
    tf = finite_transform or FiniteEnergy()
    _check(bool((energy <= cap).all()), f"{name}: energy above the cap {cap:g} on reasonable configurations")
    if random_x is not None:
        re, rf = oracle.energy_and_forces(random_x, transform=tf)
        _check(bool(torch.isfinite(re).all()), f"{name}: non-finite transformed energy on random configurations")
        _check(bool(torch.isfinite(rf).all()), f"{name}: non-finite transformed forces on random configurations")
        raw = oracle.energy(random_x, transform=None)
        _check(
            bool((raw <= cap).all()),
            f"{name}: raw energy {float(raw.max()):.3e} above the cap {cap:g} on random configurations",
        )
        report.n_random_checked = int(re.shape[0])

    # a pair of atoms closing in: finite, capped, and (for a given pair) never decreasing
    if oracle.n_atoms is not None and oracle.n_atoms >= 2:
        i, j = closing_pair if closing_pair is not None else _nearest_pair(x[0])
        path = closing_pair_path(x[0], i, j, start=closing_start)
        pe, pf = oracle.energy_and_forces(path, transform=None)
        where = f"{name}: atoms {i} and {j} closing in"
        _check(bool(torch.isfinite(pe).all() and torch.isfinite(pf).all()), f"{where}: non-finite output")
        _check(bool((pe <= cap).all()), f"{where}: energy {float(pe.max()):.3e} above the cap {cap:g}")
        at_cap = pe == cap
        _check(bool((pf[at_cap] == 0).all()), f"{where}: nonzero forces at the cap")
        te = tf(pe)[0]
        _check(bool(torch.isfinite(te).all()), f"{where}: non-finite transformed energy")
        top = float(tf(torch.tensor([cap], dtype=torch.float64))[0])
        _check(float(te.max()) <= top * (1 + 1e-12), f"{where}: transformed energy above the transform of the cap")
        if closing_pair is not None:
            _check(bool((torch.diff(pe) >= 0).all()), f"{where}: energy decreases ({pe.tolist()})")
            _check(bool((torch.diff(te) >= 0).all()), f"{where}: transformed energy decreases ({te.tolist()})")
        report.n_closing_checked = int(pe.shape[0])
    return report
