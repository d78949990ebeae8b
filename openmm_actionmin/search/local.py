"""Batched local minimisers in torch: L-BFGS and FIRE over any EnergyOracle.

Every walker of a batch ``x [B, N, 3]`` (or ``[B, D]``) is minimised
independently: per-walker L-BFGS history, step factors and FIRE time steps.
Walkers that have converged (or used up their steps) are frozen and are not
evaluated again, so the oracle's ``counters.force_calls`` counts exactly the
configurations a serial minimiser would have needed.

The minimisers are *stateful stepper* objects (:class:`BatchLBFGS`,
:class:`BatchFIRE`): one :meth:`~BatchMinimizer.step` is one batched oracle
call for all still-running walkers, and :meth:`~BatchMinimizer.reset` restarts
chosen walkers from new positions. Basin hopping uses this to refill a walker
as soon as its quench has finished, so the batch stays full.
:func:`minimize_batch` is the plain "minimise these configurations" call.

Robustness: random starts overlap and give forces of 1e10 and more. Every
step is capped so that no atom (coordinate, for non-atomic oracles) moves more
than ``max_step`` (0.2 length units by default). The L-BFGS step is accepted
only if the energy rises by at most ``max_rise`` (pele's rule); otherwise it is
shrunk tenfold, and after ``max_reductions`` shrinks the history is dropped and
the step accepted anyway. A walker whose energy is the oracle's non-finite cap
(zero forces: coincident atoms) is jittered by a seeded random displacement
instead of being reported converged.

Convergence: ``fmax`` is the largest per-atom force norm (largest absolute
force component for non-atomic oracles), in oracle force units. Energies are
raw oracle energies (``transform=None``) unless a transform is requested.
Computation is in float64.

Threads: the batched work per oracle call is small (a few thousand pair
terms per walker), and torch's OpenMP threading of small ``bmm`` calls was
measured 20 times *slower* than one thread on this project's shared 2-core
machine. :func:`minimize_batch` therefore runs with ``num_threads=1`` by
default (restored afterwards, see :func:`torch_threads`); pass ``None`` to
leave torch's setting alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Iterator, Optional, Union

import torch

from ..oracles.base import EnergyOracle, FiniteEnergy


#: Row selector meaning "every walker" (a view, not a gather).
_ALL = slice(None)


def _sub(rows, mask: torch.Tensor):
    """Rows of ``rows`` (a full slice or an index tensor) where ``mask`` holds.

    Returns ``rows`` itself when the mask is all true, else an index tensor.
    """
    if bool(mask.all()):
        return rows
    idx = torch.nonzero(mask).flatten()
    return idx if isinstance(rows, slice) else rows[idx]


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads(n)`` (``None``: leave it alone)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclasses.dataclass
class LocalResult:
    """Outcome of a batched local minimisation.

    Attributes:
        x: Final configurations ``[B, *event_shape]``.
        energy: Final energies ``[B]``.
        fmax: Final largest per-atom force norm ``[B]``.
        converged: Whether ``fmax <= fmax`` target ``[B]``.
        steps: Oracle evaluations used per walker ``[B]`` (long), the
            start evaluation included.
        force_calls: Configurations evaluated by the oracle in this call.
    """

    x: torch.Tensor
    energy: torch.Tensor
    fmax: torch.Tensor
    converged: torch.Tensor
    steps: torch.Tensor
    force_calls: int = 0


class BatchMinimizer:
    """Shared machinery of the batched steppers (state, freezing, reset).

    Args:
        oracle: The energy oracle.
        x: Start configurations ``[B, *event_shape]``.
        fmax: Convergence threshold on the largest per-atom force norm.
        max_steps: Iterations per walker before it is stopped unconverged.
        max_step: Largest displacement of any atom (coordinate) per step.
        transform: Energy transform passed to the oracle (``None``: raw).
        generator: Torch generator for the jitter of capped walkers.
    """

    def __init__(
        self,
        oracle: EnergyOracle,
        x: torch.Tensor,
        *,
        fmax: float = 1e-3,
        max_steps: int = 10000,
        max_step: float = 0.2,
        transform: Union[FiniteEnergy, None, str] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        if fmax <= 0 or max_step <= 0 or max_steps < 1:
            raise ValueError(f"need fmax > 0, max_step > 0 and max_steps >= 1, got {fmax}, {max_step}, {max_steps}")
        self.oracle = oracle
        self.fmax_target = float(fmax)
        self.max_steps = int(max_steps)
        self.max_step = float(max_step)
        self.transform = transform
        self.generator = generator
        x = oracle.as_batch(x).detach().to(torch.float64)
        self.event_shape = tuple(x.shape[1:])
        self.batch = int(x.shape[0])
        self.dim = int(x[0].numel())
        # atoms view [B, A, k]: per-atom norms for atomic oracles, per-coordinate otherwise
        self._atom_shape = (self.batch, oracle.n_atoms, 3) if oracle.n_atoms is not None else (self.batch, self.dim, 1)
        dev = x.device
        b = self.batch
        self.x = x.reshape(b, self.dim).clone()
        self.energy = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
        self.grad = torch.zeros_like(self.x)
        self.fmax = torch.full((b,), float("inf"), dtype=torch.float64, device=dev)
        self.steps = torch.zeros(b, dtype=torch.long, device=dev)
        self.converged = torch.zeros(b, dtype=torch.bool, device=dev)
        self.done = torch.zeros(b, dtype=torch.bool, device=dev)
        self.needs_init = torch.ones(b, dtype=torch.bool, device=dev)
        self.force_calls = 0
        self._init_state(torch.arange(b, device=dev))

    # --------------------------------------------------------------- helpers
    def _atom_norms(self, v: torch.Tensor) -> torch.Tensor:
        """Largest per-atom norm ``[k]`` of flat vectors ``v [k, D]``."""
        shape = (v.shape[0],) + self._atom_shape[1:]
        return torch.linalg.vector_norm(v.reshape(shape), dim=-1).amax(dim=-1)

    def _cap(self, dr: torch.Tensor) -> torch.Tensor:
        """Scale rows of ``dr [k, D]`` so no atom moves more than ``max_step``."""
        longest = self._atom_norms(dr)
        scale = torch.clamp(self.max_step / torch.clamp(longest, min=1e-300), max=1.0)
        return dr * scale[:, None]

    def _evaluate(self, xs: torch.Tensor):
        e, f = self.oracle.energy_and_forces(xs.reshape((xs.shape[0],) + self.event_shape), transform=self.transform)
        self.force_calls += int(xs.shape[0])
        return e.to(torch.float64), -f.to(torch.float64).reshape(xs.shape[0], self.dim)

    def _capped(self, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Rows at the non-finite cap with zero forces (coincident atoms)."""
        capped = e >= self.oracle.nonfinite_energy
        if bool(capped.any()):
            capped &= g.abs().amax(dim=1) == 0
        return capped

    def _jitter(self, rows) -> None:
        count = self.batch if isinstance(rows, slice) else rows.numel()
        noise = torch.randn((count, self.dim), generator=self.generator, dtype=torch.float64, device="cpu")
        self.x[rows] = self.x[rows] + 0.5 * self.max_step * noise.to(self.x.device)
        self.needs_init[rows] = True

    # ----------------------------------------------------------------- public
    @property
    def active(self) -> torch.Tensor:
        """Boolean ``[B]``: walkers still being minimised."""
        return ~self.done

    def reset(self, rows: torch.Tensor, x_new: torch.Tensor) -> None:
        """Restart walkers ``rows`` from ``x_new [k, *event_shape]``.

        Args:
            rows: Walker indices ``[k]`` (long) or a boolean mask ``[B]``.
            x_new: New start configurations.
        """
        rows = torch.as_tensor(rows, device=self.x.device)
        if rows.dtype == torch.bool:
            rows = torch.nonzero(rows).flatten()
        if rows.numel() == 0:
            return
        x_new = self.oracle.as_batch(x_new).detach().to(torch.float64).reshape(rows.numel(), self.dim)
        self.x[rows] = x_new
        self.energy[rows] = float("inf")
        self.fmax[rows] = float("inf")
        self.steps[rows] = 0
        self.converged[rows] = False
        self.done[rows] = False
        self.needs_init[rows] = True
        self._init_state(rows)

    def step(self) -> int:
        """One batched oracle call for every running walker.

        When every walker is running (the usual case in basin hopping), rows
        are addressed with a full slice, so the state is updated through
        views instead of gathers and scatters.

        Returns:
            The number of configurations evaluated (0 when all are done).
        """
        active = ~self.done
        if not bool(active.any()):
            return 0
        rows = _ALL if bool(active.all()) else torch.nonzero(active).flatten()
        init = self.needs_init[rows]
        trial = self.x[rows].clone()
        running = ~init
        if bool(running.any()):
            if bool(init.any()):
                trial[running] = self._propose(_sub(rows, running))
            else:
                trial = self._propose(rows)
        e, g = self._evaluate(trial)
        capped = self._capped(e, g)
        if bool(capped.any()):
            cap_rows = _sub(rows, capped)
            self.x[cap_rows] = trial[capped]
            self._jitter(cap_rows)
        ok = ~capped
        sel = init & ok
        if bool(sel.any()):
            init_rows = _sub(rows, sel)
            self.x[init_rows] = trial[sel]
            self.energy[init_rows] = e[sel]
            self.grad[init_rows] = g[sel]
            self.needs_init[init_rows] = False
            self._init_state(init_rows)
            self._after_move(init_rows)
        sel = running & ok
        if bool(sel.any()):
            if bool(sel.all()):
                self._accept(rows, trial, e, g)
            else:
                self._accept(_sub(rows, sel), trial[sel], e[sel], g[sel])
        self.steps[rows] += 1
        self.fmax[rows] = self._atom_norms(self.grad[rows])
        fresh = ~self.needs_init[rows]
        self.converged[rows] = fresh & (self.fmax[rows] <= self.fmax_target)
        self.done[rows] = self.converged[rows] | (self.steps[rows] >= self.max_steps)
        return self.batch if isinstance(rows, slice) else int(rows.numel())

    def run(self, deadline: Optional[float] = None) -> "LocalResult":
        """Step until every walker has converged or used ``max_steps``.

        Args:
            deadline: ``time.perf_counter()`` value at which stepping stops
                and the current state is returned (walkers not converged
                keep ``converged`` False).
        """
        while bool((~self.done).any()):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            self.step()
        return self.result()

    def result(self) -> LocalResult:
        """The current state as a :class:`LocalResult` (copies)."""
        return LocalResult(
            x=self.x.reshape((self.batch,) + self.event_shape).clone(),
            energy=self.energy.clone(),
            fmax=self.fmax.clone(),
            converged=self.converged.clone(),
            steps=self.steps.clone(),
            force_calls=self.force_calls,
        )

    # --------------------------------------------------- subclass interface
    def _init_state(self, rows: torch.Tensor) -> None:
        """Clear method state of ``rows`` (called on reset and after init)."""

    def _after_move(self, rows: torch.Tensor) -> None:
        """Hook after ``rows`` got a fresh energy/gradient at their position."""

    def _propose(self, rows: torch.Tensor) -> torch.Tensor:
        """Trial positions ``[k, D]`` for running walkers ``rows``."""
        raise NotImplementedError

    def _accept(self, rows: torch.Tensor, trial: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> None:
        """Update state of ``rows`` given trial energies/gradients."""
        raise NotImplementedError


class BatchLBFGS(BatchMinimizer):
    """Batched limited-memory BFGS with per-walker history (pele-style).

    No line search: the L-BFGS direction (compact form) is capped at ``max_step`` per atom
    and accepted if the energy rises by at most ``max_rise``; otherwise the
    step shrinks tenfold (at most ``max_reductions`` times). An uphill
    direction is reversed. Curvature pairs with ``s.y <= 0`` are skipped.

    Args:
        oracle: The energy oracle.
        x: Start configurations ``[B, *event_shape]``.
        memory: Number of stored ``(s, y)`` pairs per walker.
        max_rise: Largest energy rise accepted for a step (oracle units).
        max_reductions: Step shrinks before the history is dropped.
        initial_inverse_hessian: Inverse-Hessian scale before any pair is stored.
        **kwargs: See :class:`BatchMinimizer` (``fmax``, ``max_steps``,
            ``max_step``, ``transform``, ``generator``).
    """

    def __init__(
        self,
        oracle: EnergyOracle,
        x: torch.Tensor,
        *,
        memory: int = 10,
        max_rise: float = 1e-4,
        max_reductions: int = 10,
        initial_inverse_hessian: float = 0.1,
        **kwargs,
    ) -> None:
        if memory < 1:
            raise ValueError(f"L-BFGS memory must be >= 1, got {memory}")
        self.memory = int(memory)
        self.max_rise = float(max_rise)
        self.max_reductions = int(max_reductions)
        self.h0_init = float(initial_inverse_hessian)
        b = oracle.as_batch(x).shape[0]
        d = int(oracle.as_batch(x)[0].numel())
        dev = oracle.device
        self.S = torch.zeros((b, self.memory, d), dtype=torch.float64, device=dev)
        self.Y = torch.zeros_like(self.S)
        self.filled = torch.zeros((b, self.memory), dtype=torch.bool, device=dev)
        self.h0 = torch.full((b,), self.h0_init, dtype=torch.float64, device=dev)
        self.p = torch.zeros((b, d), dtype=torch.float64, device=dev)
        self.factor = torch.ones(b, dtype=torch.float64, device=dev)
        self.nred = torch.zeros(b, dtype=torch.long, device=dev)
        super().__init__(oracle, x, **kwargs)

    def _init_state(self, rows: torch.Tensor) -> None:
        self.S[rows] = 0.0
        self.Y[rows] = 0.0
        self.filled[rows] = False
        self.h0[rows] = self.h0_init
        self.factor[rows] = 1.0
        self.nred[rows] = 0

    def _after_move(self, rows: torch.Tensor) -> None:
        self.p[rows] = self._direction(rows)
        self.factor[rows] = 1.0
        self.nred[rows] = 0

    def _direction(self, rows: torch.Tensor) -> torch.Tensor:
        """Capped L-BFGS direction ``[k, D]``.

        Uses the compact representation of the L-BFGS inverse Hessian (Byrd,
        Nocedal and Schnabel 1994), identical to the two-loop recursion but a
        handful of batched matrix operations instead of ``2 m`` Python steps.
        Pairs are stored oldest first; empty slots are zero vectors whose
        diagonal entry of ``R`` is set to one, so they contribute nothing.
        """
        g = self.grad[rows]
        s, y = self.S[rows], self.Y[rows]
        gamma = self.h0[rows]
        sty = torch.bmm(s, y.transpose(1, 2))
        diag = torch.diagonal(sty, dim1=1, dim2=2)
        empty = ~self.filled[rows]
        r = torch.triu(sty) + torch.diag_embed(empty.to(sty.dtype))
        a = torch.bmm(s, g[:, :, None])
        b = torch.bmm(y, g[:, :, None])
        u = torch.linalg.solve_triangular(r, a, upper=True)
        yty = torch.bmm(y, y.transpose(1, 2))
        v = diag[:, :, None] * u + gamma[:, None, None] * (torch.bmm(yty, u) - b)
        w = torch.linalg.solve_triangular(r.transpose(1, 2), v, upper=False)
        hg = (
            gamma[:, None] * g
            + torch.bmm(s.transpose(1, 2), w)[:, :, 0]
            - gamma[:, None] * torch.bmm(y.transpose(1, 2), u)[:, :, 0]
        )
        p = -hg
        uphill = (p * g).sum(-1) > 0
        p = torch.where(uphill[:, None], -p, p)
        return self._cap(p)

    def _propose(self, rows: torch.Tensor) -> torch.Tensor:
        return self.x[rows] + self.factor[rows][:, None] * self.p[rows]

    def _accept(self, rows, trial: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> None:
        e_old = self.energy[rows]
        ok = e <= e_old + self.max_rise + 1e-12 * e_old.abs()
        give_up = ~ok & (self.nred[rows] >= self.max_reductions)
        take = ok | give_up
        if bool(give_up.any()):
            self._init_state(_sub(rows, give_up))
        if bool(take.any()):
            all_take = bool(take.all())
            r = rows if all_take else _sub(rows, take)
            trial_t, e_t, g_t = (trial, e, g) if all_take else (trial[take], e[take], g[take])
            s = trial_t - self.x[r]
            yv = g_t - self.grad[r]
            sy = (s * yv).sum(-1)
            yy = (yv * yv).sum(-1)
            good = sy > 1e-300
            if not all_take or bool(give_up.any()):
                good &= ~give_up[take]
            if bool(good.any()):
                all_good = bool(good.all())
                rg = r if all_good else _sub(r, good)
                s_g, y_g, sy_g, yy_g = (s, yv, sy, yy) if all_good else (s[good], yv[good], sy[good], yy[good])
                self.S[rg] = torch.cat([self.S[rg][:, 1:], s_g[:, None]], dim=1)
                self.Y[rg] = torch.cat([self.Y[rg][:, 1:], y_g[:, None]], dim=1)
                filled = self.filled[rg]
                self.filled[rg] = torch.cat([filled[:, 1:], torch.ones_like(filled[:, :1])], dim=1)
                self.h0[rg] = sy_g / yy_g
            self.x[r] = trial_t
            self.energy[r] = e_t
            self.grad[r] = g_t
            self._after_move(r)
        if bool((~take).any()):
            r = _sub(rows, ~take)
            self.factor[r] *= 0.1
            self.nred[r] += 1


class BatchFIRE(BatchMinimizer):
    """Batched FIRE (fast inertial relaxation engine), unit masses.

    Parameters follow the usual FIRE defaults (Bitzek et al. 2006), each walker
    with its own time step ``dt``, mixing ``a`` and positive-power counter.

    Args:
        oracle: The energy oracle.
        x: Start configurations ``[B, *event_shape]``.
        dt: Initial time step.
        dt_max: Largest time step.
        n_min: Positive-power steps before ``dt`` may grow.
        f_inc: Time-step growth factor.
        f_dec: Time-step shrink factor on uphill motion.
        a_start: Initial velocity-mixing parameter.
        f_a: Mixing decay factor.
        **kwargs: See :class:`BatchMinimizer`.
    """

    def __init__(
        self,
        oracle: EnergyOracle,
        x: torch.Tensor,
        *,
        dt: float = 0.1,
        dt_max: float = 1.0,
        n_min: int = 5,
        f_inc: float = 1.1,
        f_dec: float = 0.5,
        a_start: float = 0.1,
        f_a: float = 0.99,
        **kwargs,
    ) -> None:
        self.dt0, self.dt_max, self.n_min = float(dt), float(dt_max), int(n_min)
        self.f_inc, self.f_dec, self.a_start, self.f_a = float(f_inc), float(f_dec), float(a_start), float(f_a)
        xb = oracle.as_batch(x)
        b, d = xb.shape[0], int(xb[0].numel())
        dev = oracle.device
        self.v = torch.zeros((b, d), dtype=torch.float64, device=dev)
        self.dt = torch.full((b,), self.dt0, dtype=torch.float64, device=dev)
        self.a = torch.full((b,), self.a_start, dtype=torch.float64, device=dev)
        self.n_pos = torch.zeros(b, dtype=torch.long, device=dev)
        super().__init__(oracle, x, **kwargs)

    def _init_state(self, rows: torch.Tensor) -> None:
        self.v[rows] = 0.0
        self.dt[rows] = self.dt0
        self.a[rows] = self.a_start
        self.n_pos[rows] = 0

    def _propose(self, rows: torch.Tensor) -> torch.Tensor:
        f = -self.grad[rows]
        v = self.v[rows]
        dt, a, n_pos = self.dt[rows], self.a[rows], self.n_pos[rows]
        power = (f * v).sum(-1)
        up = power > 0
        fnorm = torch.linalg.vector_norm(f, dim=-1).clamp(min=1e-300)
        vnorm = torch.linalg.vector_norm(v, dim=-1)
        mixed = (1 - a)[:, None] * v + (a * vnorm / fnorm)[:, None] * f
        v = torch.where(up[:, None], mixed, torch.zeros_like(v))
        grow = up & (n_pos > self.n_min)
        dt = torch.where(grow, torch.clamp(dt * self.f_inc, max=self.dt_max), dt)
        a = torch.where(grow, a * self.f_a, a)
        n_pos = torch.where(up, n_pos + 1, torch.zeros_like(n_pos))
        dt = torch.where(up, dt, dt * self.f_dec)
        a = torch.where(up, a, torch.full_like(a, self.a_start))
        v = v + dt[:, None] * f
        self.v[rows], self.dt[rows], self.a[rows], self.n_pos[rows] = v, dt, a, n_pos
        return self.x[rows] + self._cap(dt[:, None] * v)

    def _accept(self, rows: torch.Tensor, trial: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> None:
        self.x[rows] = trial
        self.energy[rows] = e
        self.grad[rows] = g


METHODS = {"lbfgs": BatchLBFGS, "fire": BatchFIRE}


def make_minimizer(oracle: EnergyOracle, x: torch.Tensor, method: str = "lbfgs", **kwargs) -> BatchMinimizer:
    """Build a batched stepper by name.

    Args:
        oracle: The energy oracle.
        x: Start configurations ``[B, *event_shape]``.
        method: ``"lbfgs"`` or ``"fire"``.
        **kwargs: Options of the chosen class.

    Returns:
        A :class:`BatchLBFGS` or :class:`BatchFIRE`.
    """
    key = str(method).lower()
    if key not in METHODS:
        raise ValueError(f"unknown local minimiser {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[key](oracle, x, **kwargs)


def minimize_batch(
    oracle: EnergyOracle,
    x: torch.Tensor,
    method: str = "lbfgs",
    *,
    fmax: float = 1e-3,
    max_steps: int = 10000,
    max_step: float = 0.2,
    transform: Union[FiniteEnergy, None, str] = None,
    seed: Optional[int] = 0,
    num_threads: Optional[int] = 1,
    **kwargs,
) -> LocalResult:
    """Locally minimise every configuration of a batch independently.

    Args:
        oracle: The energy oracle (any backend).
        x: Start configurations ``[B, N, 3]`` or ``[B, D]``.
        method: ``"lbfgs"`` or ``"fire"``.
        fmax: Convergence threshold on the largest per-atom force norm
            (oracle force units).
        max_steps: Iterations per walker before giving up.
        max_step: Largest displacement of any atom per step (oracle length
            units), which tames the huge forces of overlapping starts.
        transform: Energy transform passed to the oracle (``None``: raw).
        seed: Seed of the jitter applied to walkers stuck at the non-finite
            cap.
        num_threads: Torch CPU threads during the run (``None``: unchanged).
        **kwargs: Method options (``memory``, ``max_rise``, ``dt``, ...).

    Returns:
        :class:`LocalResult` with ``x [B, ...]``, ``energy [B]``, ``fmax [B]``,
        ``converged [B]``, ``steps [B]`` and ``force_calls``.
    """
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    with torch_threads(num_threads):
        minimizer = make_minimizer(
            oracle,
            x,
            method,
            fmax=fmax,
            max_steps=max_steps,
            max_step=max_step,
            transform=transform,
            generator=gen,
            **kwargs,
        )
        return minimizer.run()
