"""Synthetic benchmark functions with known global minima, as shiftable oracles.

The 14 continuous, multi-minimum functions that the action-functional paper
picked from Plevris & Solorzano, "A Collection of 30 Multidimensional Functions
for Global Optimization Benchmarking", Data 7(4):46 (2022). Every function is a
torch expression, batched ``x [B, D] -> U [B]``, differentiable by autograd, and
dimensionless.

Sources of the definitions. Each :class:`FunctionSpec` names its source in
``source``. Unless stated otherwise the formula, search range and minimum were
checked against the MATLAB files distributed with Plevris & Solorzano (file
headers "F05 Drop-Wave" ... "F30 Modified Xin-She Yang's 5", seen in a public
mirror of that code). Two deliberate differences from that collection:

* **Alpine 1** and **Schaffer F7** use exactly the forms of the action paper
  ("Discovering global minimum of high dimensional energy landscapes"; see
  ``docs/method.md``). Alpine 1 is identical in both. Schaffer F7 differs: the
  collection computes ``((1/(D-1)) sum_i (sqrt(r_i) + sqrt(r_i) sin^2(50 r_i^0.2)))^2``
  with ``r_i = sqrt(x_i^2 + x_{i+1}^2)``; the action paper (and this module)
  uses ``(1/D) sum_{i=1}^{D-1} s_i^0.25 (1 + sin^2(50 s_i^0.1))`` with
  ``s_i = x_i^2 + x_{i+1}^2``: no outer square and ``1/D``, not ``1/(D-1)``.
  The minimum (0 at the origin) is the same.
* Boxes: ``default_half_width`` is the collection's search range. The action
  paper ran Alpine 1 and Schaffer F7 in ``[-100, 100]^D``; that value is in
  ``FunctionSpec.action_paper_half_width`` (Alpine 1's collection range is
  ``[-10, 10]^D``).

Non-differentiable points. The functions are evaluated exactly as written;
no ``sqrt(s + tiny)`` smoothing changes a value. Where the derivative does not
exist the gradient is defined explicitly:

* ``|t|`` (Alpine 1, Xin-She Yang 1): torch's convention ``d|t|/dt = sign(t)``
  with ``sign(0) = 0``, a valid subgradient.
* Fractional powers ``s**p`` (``0 < p < 1``) of a non-negative ``s``
  (``sqrt(sum x^2)`` in Drop-Wave, Ackley, Salomon, Expanded Schaffer F6;
  ``s^0.25`` and ``s^0.1`` in Schaffer F7; ``|.|^0.25`` and ``|.|^0.5`` in
  HappyCat and HGBat; ``sqrt(|x_i|)`` in Modified Xin-She Yang 5): the gradient
  through ``s**p`` is set to **zero** wherever ``s`` is below the smallest
  normal number of the dtype (which includes ``s == 0`` exactly), instead of the
  ``inf`` or ``0 * inf = NaN`` that autograd would give. Values there are
  unchanged. At the global minima this zero is the natural choice (it is a
  subgradient of these cone- or cusp-shaped minima, and the true gradient for
  Drop-Wave and Expanded Schaffer F6, which are smooth in ``s``).

Shifts. :class:`SyntheticOracle` evaluates ``U(x - shift)``, so its global
minimum is ``minimum_location = x*_U + shift``. Benchmarks should use shifted
functions too: an untrained model with zero biases has its minimiser at the
origin, which is the unshifted minimum of most of these functions.

Rotations. Alpine 1 is separable and Schaffer F7 couples only neighbouring
coordinates, so a method may profit from the coordinate axes. With a
``rotation`` ``R`` (an orthogonal ``[D, D]`` matrix, :func:`random_rotation`)
the oracle evaluates ``U(x*_U + R (x - o))`` with ``o = x*_U + shift`` the
shifted minimiser: the same box, the same minimum location and value, no axis
structure left. The name prefix ``rotated_`` (``"rotated_alpine1"``) asks
:func:`make_function` for a seeded rotation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Dict, Optional, Tuple, Union

import torch

from ..spaces import Box
from .base import DIMENSIONLESS, OracleError, TorchOracle

Tensor = torch.Tensor


# --------------------------------------------------------------------- helpers
def _pow_nonneg(s: Tensor, p: float) -> Tensor:
    """``s ** p`` for ``s >= 0`` and ``0 < p < 1`` with a finite gradient.

    The value is exactly ``s ** p``. The gradient is ``p s^(p-1)`` where ``s`` is
    at least the smallest normal number of its dtype and **zero** below (which
    includes ``s == 0``), where autograd would give ``inf`` or ``NaN``.

    Args:
        s: Non-negative tensor, any shape.
        p: Exponent in ``(0, 1)``.

    Returns:
        ``s ** p``, same shape as ``s``.
    """
    small = s < torch.finfo(s.dtype).tiny
    safe = torch.where(small, torch.ones_like(s), s)
    return torch.where(small, s.detach() ** p, safe**p)


def _sum_sq(x: Tensor) -> Tensor:
    return (x * x).sum(dim=-1)


# ------------------------------------------------------------------ functions
def drop_wave(x: Tensor) -> Tensor:
    """Drop-Wave (F05): ``1 - (1 + cos(12 sqrt(s))) / (0.5 s + 2)``, ``s = sum x_i^2``.

    Minimum 0 at the origin; range ``[-5.12, 5.12]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    s = _sum_sq(x)
    return 1.0 - (1.0 + torch.cos(12.0 * _pow_nonneg(s, 0.5))) / (0.5 * s + 2.0)


def alpine1(x: Tensor) -> Tensor:
    """Alpine 1 (F07, and the action paper's form): ``sum_i |x_i sin(x_i) + 0.1 x_i|``.

    Minimum 0 at the origin; range ``[-10, 10]^D`` (the action paper used
    ``[-100, 100]^D``). Note every ``x_i`` with ``sin(x_i) = -0.1`` also gives a
    zero term: energy alone does not say "near the origin".

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    return torch.abs(x * torch.sin(x) + 0.1 * x).sum(dim=-1)


def ackley(x: Tensor) -> Tensor:
    """Ackley (F08): ``-20 exp(-0.2 sqrt(s / D)) - exp(mean cos(2 pi x_i)) + e + 20``.

    Minimum 0 at the origin (up to rounding, about 4e-16); range
    ``[-32.768, 32.768]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    d = x.shape[-1]
    root = _pow_nonneg(_sum_sq(x) / d, 0.5)
    return -20.0 * torch.exp(-0.2 * root) - torch.exp(torch.cos(2.0 * math.pi * x).mean(dim=-1)) + math.e + 20.0


def griewank(x: Tensor) -> Tensor:
    """Griewank (F09): ``sum x_i^2 / 4000 - prod cos(x_i / sqrt(i)) + 1``, ``i = 1..D``.

    Minimum 0 at the origin; range ``[-100, 100]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    i = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    return _sum_sq(x) / 4000.0 - torch.cos(x / torch.sqrt(i)).prod(dim=-1) + 1.0


def rastrigin(x: Tensor) -> Tensor:
    """Rastrigin (F10): ``10 D + sum (x_i^2 - 10 cos(2 pi x_i))``.

    Minimum 0 at the origin; range ``[-5.12, 5.12]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    return 10.0 * x.shape[-1] + (x * x - 10.0 * torch.cos(2.0 * math.pi * x)).sum(dim=-1)


def happycat(x: Tensor) -> Tensor:
    """HappyCat (F11): ``|s - D|^(1/4) + (0.5 s + sum x_i) / D + 0.5``, ``s = sum x_i^2``.

    Minimum 0 at ``(-1, ..., -1)``; range ``[-20, 20]^D``. The minimum lies on
    the cusp ``s = D`` (zero gradient there, see the module notes).

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    d = x.shape[-1]
    s = _sum_sq(x)
    return _pow_nonneg(torch.abs(s - d), 0.25) + (0.5 * s + x.sum(dim=-1)) / d + 0.5


def hgbat(x: Tensor) -> Tensor:
    """HGBat (F12): ``|s^2 - (sum x_i)^2|^(1/2) + (0.5 s + sum x_i) / D + 0.5``.

    Minimum 0 at ``(-1, ..., -1)``; range ``[-15, 15]^D``. The minimum lies on
    the cusp ``s^2 = (sum x_i)^2``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    d = x.shape[-1]
    s = _sum_sq(x)
    t = x.sum(dim=-1)
    return _pow_nonneg(torch.abs(s * s - t * t), 0.5) + (0.5 * s + t) / d + 0.5


def rosenbrock(x: Tensor) -> Tensor:
    """Rosenbrock (F13): ``sum_{i<D} 100 (x_{i+1} - x_i^2)^2 + (x_i - 1)^2`` (D >= 2).

    Minimum 0 at ``(1, ..., 1)``; range ``[-10, 10]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    a, b = x[..., :-1], x[..., 1:]
    return (100.0 * (b - a * a) ** 2 + (a - 1.0) ** 2).sum(dim=-1)


def schaffer_f7(x: Tensor) -> Tensor:
    """Schaffer F7 in the action paper's form (D >= 2).

    ``U = (1/D) sum_{i=1}^{D-1} s_i^0.25 (1 + sin^2(50 s_i^0.1))``,
    ``s_i = x_i^2 + x_{i+1}^2``. Note ``1/D`` (not ``1/(D-1)``) and no outer
    square; Plevris & Solorzano's F18 differs in both (see the module notes).
    Minimum 0 at the origin; range ``[-100, 100]^D`` in both sources.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    d = x.shape[-1]
    s = x[..., :-1] ** 2 + x[..., 1:] ** 2
    terms = _pow_nonneg(s, 0.25) * (1.0 + torch.sin(50.0 * _pow_nonneg(s, 0.1)) ** 2)
    return terms.sum(dim=-1) / d


def expanded_schaffer_f6(x: Tensor) -> Tensor:
    """Expanded Schaffer F6 (F19): ``sum_{i=1}^{D} g(x_i, x_{i+1})`` with ``x_{D+1} = x_1``.

    ``g(a, b) = 0.5 + (sin^2(sqrt(a^2 + b^2)) - 0.5) / (1 + 0.001 (a^2 + b^2))^2``.
    Minimum 0 at the origin; range ``[-100, 100]^D``. The wrap-around pair
    ``(x_D, x_1)`` is part of the collection's definition.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    t = x**2 + torch.roll(x, shifts=-1, dims=-1) ** 2
    g = 0.5 + (torch.sin(_pow_nonneg(t, 0.5)) ** 2 - 0.5) / (1.0 + 0.001 * t) ** 2
    return g.sum(dim=-1)


def salomon(x: Tensor) -> Tensor:
    """Salomon (F26): ``1 - cos(2 pi sqrt(s)) + 0.1 sqrt(s)``, ``s = sum x_i^2``.

    Minimum 0 at the origin; range ``[-20, 20]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    r = _pow_nonneg(_sum_sq(x), 0.5)
    return 1.0 - torch.cos(2.0 * math.pi * r) + 0.1 * r


def xin_she_yang1(x: Tensor) -> Tensor:
    """Xin-She Yang 1 (F23 of the collection): ``(sum |x_i|) exp(-sum sin(x_i^2))``.

    This is the collection's "Xin-She Yang's 1", not the random-coefficient
    function of the same name in other surveys. Minimum 0 at the origin; range
    ``[-2 pi, 2 pi]^D``.

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    return torch.abs(x).sum(dim=-1) * torch.exp(-torch.sin(x * x).sum(dim=-1))


def modified_xin_she_yang3(x: Tensor) -> Tensor:
    """Modified Xin-She Yang 3 (F29): ``1e4 (1 + (exp(-sum (x_i/15)^10) - 2 exp(-sum x_i^2)) prod cos^2 x_i)``.

    Minimum 0 at the origin; range ``[-20, 20]^D``. Values are of order 1e4
    almost everywhere (a needle in a haystack).

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    e1 = torch.exp(-((x / 15.0) ** 10).sum(dim=-1))
    e2 = torch.exp(-_sum_sq(x))
    return 1.0e4 * (1.0 + (e1 - 2.0 * e2) * (torch.cos(x) ** 2).prod(dim=-1))


def modified_xin_she_yang5(x: Tensor) -> Tensor:
    """Modified Xin-She Yang 5 (F30): ``1e4 (1 + (sum sin^2 x_i - exp(-sum x_i^2)) exp(-sum sin^2 sqrt|x_i|))``.

    Minimum 0 at the origin; range ``[-100, 100]^D``. ``sqrt|x_i|`` has a cusp
    at ``x_i = 0``; its gradient there is 0 (see the module notes).

    Args:
        x: Points ``[B, D]``.

    Returns:
        Values ``[B]``.
    """
    a = (torch.sin(x) ** 2).sum(dim=-1)
    b = torch.exp(-_sum_sq(x))
    c = (torch.sin(_pow_nonneg(torch.abs(x), 0.5)) ** 2).sum(dim=-1)
    return 1.0e4 * (1.0 + (a - b) * torch.exp(-c))


# -------------------------------------------------------------------- registry
_PLEVRIS = "Plevris & Solorzano, Data 7(4):46 (2022)"


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """A benchmark function and what is known about it.

    Attributes:
        name: Registry key, e.g. ``"alpine1"``.
        fn: The function, ``x [B, D] -> [B]``.
        minimum_coordinate: Every coordinate of the (unshifted) global minimum
            (all 14 functions have a constant minimiser: 0, 1 or -1).
        minimum_value: Value at the global minimum.
        default_half_width: Half-width ``h`` of the search range ``[-h, h]^D``
            of Plevris & Solorzano.
        source: Where the definition comes from and how it was checked.
        min_dim: Smallest dimension the function is defined for.
        action_paper_half_width: Half-width used by the action paper, where it
            benchmarked this function; ``None`` otherwise.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    minimum_coordinate: float
    minimum_value: float
    default_half_width: float
    source: str
    min_dim: int = 1
    action_paper_half_width: Optional[float] = None

    def minimum_location(
        self, dim: int, *, dtype: torch.dtype = torch.float64, device: Union[str, torch.device] = "cpu"
    ) -> Tensor:
        """The unshifted global minimiser ``[dim]``."""
        return torch.full((int(dim),), float(self.minimum_coordinate), dtype=dtype, device=device)

    def __call__(self, x: Tensor) -> Tensor:
        """Evaluate ``fn`` on ``x [B, D]``; returns ``[B]``."""
        return self.fn(x)


def _spec(name, fn, coord, h, note, min_dim=1, paper_h=None) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        fn=fn,
        minimum_coordinate=coord,
        minimum_value=0.0,
        default_half_width=h,
        source=note,
        min_dim=min_dim,
        action_paper_half_width=paper_h,
    )


_CHECKED = f"{_PLEVRIS}; formula, range and minimum checked against the collection's MATLAB code"

#: The 14 functions, keyed by canonical name.
SYNTHETIC_FUNCTIONS: Dict[str, FunctionSpec] = {
    s.name: s
    for s in (
        _spec("drop_wave", drop_wave, 0.0, 5.12, f"F05, {_CHECKED} (the 1 - ... form with minimum 0)"),
        _spec("alpine1", alpine1, 0.0, 10.0, f"F07, {_CHECKED}; identical to the action paper's form", paper_h=100.0),
        _spec("ackley", ackley, 0.0, 32.768, f"F08, {_CHECKED}"),
        _spec("griewank", griewank, 0.0, 100.0, f"F09, {_CHECKED}"),
        _spec("rastrigin", rastrigin, 0.0, 5.12, f"F10, {_CHECKED}"),
        _spec("happycat", happycat, -1.0, 20.0, f"F11, {_CHECKED} (alpha = 1/4 on |s - D|)"),
        _spec("hgbat", hgbat, -1.0, 15.0, f"F12, {_CHECKED}"),
        _spec("rosenbrock", rosenbrock, 1.0, 10.0, f"F13, {_CHECKED}", min_dim=2),
        _spec(
            "schaffer_f7",
            schaffer_f7,
            0.0,
            100.0,
            "the action paper's form, which differs from F18 of "
            f"{_PLEVRIS} (no outer square, 1/D instead of 1/(D-1)); same minimum and range",
            min_dim=2,
            paper_h=100.0,
        ),
        _spec(
            "expanded_schaffer_f6", expanded_schaffer_f6, 0.0, 100.0, f"F19, {_CHECKED} (cyclic pair x_D, x_1 included)"
        ),
        _spec("salomon", salomon, 0.0, 20.0, f"F26, {_CHECKED}"),
        _spec("xin_she_yang1", xin_she_yang1, 0.0, 2.0 * math.pi, f"F23, {_CHECKED}"),
        _spec("modified_xin_she_yang3", modified_xin_she_yang3, 0.0, 20.0, f"F29, {_CHECKED}"),
        _spec("modified_xin_she_yang5", modified_xin_she_yang5, 0.0, 100.0, f"F30, {_CHECKED}"),
    )
}

_ALIASES: Dict[str, str] = {re.sub(r"[^a-z0-9]", "", key): key for key in SYNTHETIC_FUNCTIONS}


#: Name prefix of the rotated variants (``"rotated_alpine1"``).
ROTATED_PREFIX = "rotated_"


def parse_name(name: str) -> Tuple[FunctionSpec, bool]:
    """Split a function name into its spec and whether it asks for a rotation.

    ``"rotated_alpine1"`` (any case and separators, like :func:`get_spec`)
    gives ``(alpine1's spec, True)``; ``"alpine1"`` gives ``(..., False)``.

    Args:
        name: Function name, optionally with the :data:`ROTATED_PREFIX`.

    Returns:
        ``(spec, rotated)``.

    Raises:
        OracleError: unknown function name.
    """
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    prefix = re.sub(r"[^a-z0-9]", "", ROTATED_PREFIX)
    if key not in _ALIASES and key.startswith(prefix) and key[len(prefix) :] in _ALIASES:
        return SYNTHETIC_FUNCTIONS[_ALIASES[key[len(prefix) :]]], True
    return get_spec(name), False


def random_rotation(
    dim: int,
    generator: Optional[torch.Generator] = None,
    *,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A uniformly random orthogonal matrix ``[dim, dim]`` (Haar measure).

    The Q factor of a standard Gaussian matrix, with each column's sign fixed
    so that the diagonal of R is positive (without the fix Q is not uniformly
    distributed). Drawn in float64 on the CPU, so a seed gives the same matrix
    in every dtype and on every device.

    Args:
        dim: Dimension D.
        generator: Torch generator (CPU) for reproducibility.
        dtype: Dtype of the result.

    Returns:
        ``R [dim, dim]`` with ``R^T R = I`` (CPU).
    """
    a = torch.randn(int(dim), int(dim), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs).to(dtype)


def get_spec(name: str) -> FunctionSpec:
    """Look up a function by name.

    Case, spaces, hyphens and underscores are ignored: ``"Alpine 1"``,
    ``"alpine-1"`` and ``"alpine1"`` are the same function.

    Args:
        name: Function name.

    Returns:
        Its :class:`FunctionSpec`.

    Raises:
        OracleError: unknown name (the message lists the known ones).
    """
    key = _ALIASES.get(re.sub(r"[^a-z0-9]", "", str(name).lower()))
    if key is None:
        raise OracleError(f"unknown synthetic function {name!r}; known: {', '.join(SYNTHETIC_FUNCTIONS)}")
    return SYNTHETIC_FUNCTIONS[key]


# ---------------------------------------------------------------------- oracle
class SyntheticOracle(TorchOracle):
    """A benchmark function ``U(x - shift)``, optionally rotated, as a dimensionless oracle.

    Args:
        name: Function name (see :data:`SYNTHETIC_FUNCTIONS`; case and
            separators ignored; no ``rotated_`` prefix here, pass ``rotation``).
        dim: Dimension D.
        shift: Optional shift ``[D]``; the oracle evaluates ``U(x - shift)``.
            Default: no shift.
        rotation: Optional orthogonal matrix ``R [D, D]`` (:func:`random_rotation`);
            the oracle evaluates ``U(x*_U + R (x - o))`` with ``o`` the shifted
            minimiser, so the minimum keeps its location and value.
        dtype: Floating dtype (float64 by default).
        device: Torch device.
        **kwargs: Passed to :class:`~.base.EnergyOracle` (``transform``,
            ``nonfinite_energy``).

    Attributes:
        spec: The :class:`FunctionSpec`.
        name: Canonical function name (``"rotated_"`` + it when rotated).
        shift: The shift ``[D]``.
        rotation: ``R [D, D]`` in the oracle's dtype, or ``None``.
        minimum_location: Global minimiser of the shifted function ``[D]``.
        minimum_value: Global minimum value.
        default_box: Half-width ``h`` of the default search box ``[-h, h]^D``
            (centred at the origin, not at the shift).

    Raises:
        OracleError: unknown name, ``dim`` below the function's minimum, a
            shift of the wrong shape or with non-finite values, or a rotation
            that is not an orthogonal ``[D, D]`` matrix.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        *,
        shift: Optional[Union[Tensor, "list[float]"]] = None,
        rotation: Optional[Tensor] = None,
        dtype: torch.dtype = torch.float64,
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> None:
        spec = get_spec(name)
        if int(dim) < spec.min_dim:
            raise OracleError(f"{spec.name} needs dim >= {spec.min_dim}, got {dim}")
        super().__init__(dim=int(dim), units=DIMENSIONLESS, dtype=dtype, device=device, **kwargs)
        self.spec = spec
        self.name = spec.name
        if shift is None:
            shift_t = torch.zeros(self.dim, dtype=dtype, device=self.device)
        else:
            shift_t = torch.as_tensor(shift, dtype=torch.float64).to(device=self.device, dtype=dtype)
            if tuple(shift_t.shape) != (self.dim,):
                raise OracleError(f"shift for {spec.name} must have shape [{self.dim}], got {tuple(shift_t.shape)}")
            if not bool(torch.isfinite(shift_t).all()):
                raise OracleError(f"shift for {spec.name} contains NaN/inf; pass a finite shift")
        self.shift = shift_t
        self.minimum_location = spec.minimum_location(self.dim, dtype=dtype, device=self.device) + shift_t
        self.minimum_value = spec.minimum_value
        self.default_box = spec.default_half_width
        self.rotation: Optional[Tensor] = None
        if rotation is not None:
            rot = torch.as_tensor(rotation, dtype=torch.float64).cpu()
            if tuple(rot.shape) != (self.dim, self.dim):
                raise OracleError(
                    f"rotation for {spec.name} must have shape [{self.dim}, {self.dim}], got {tuple(rot.shape)}"
                )
            error = float((rot.T @ rot - torch.eye(self.dim, dtype=torch.float64)).abs().max())
            if not error < 1e-4:
                raise OracleError(
                    f"rotation for {spec.name} is not orthogonal (max |R^T R - I| = {error:.3g}); use random_rotation()"
                )
            self.rotation = rot.to(device=self.device, dtype=dtype)
            # x*_U + R (x - o) = x*_U + (x - o) @ R^T: one batched product; exactly x*_U at x = o
            self._rotation_t = self.rotation.T.contiguous()
            self._unshifted_minimum = spec.minimum_location(self.dim, dtype=dtype, device=self.device)
            self.name = ROTATED_PREFIX + spec.name

    def energy_fn(self, x: Tensor) -> Tensor:
        """``U(x - shift)``, or ``U(x*_U + R (x - o))`` when rotated, ``[B]`` of ``x [B, D]``."""
        if self.rotation is None:
            return self.spec.fn(x - self.shift)
        return self.spec.fn(torch.addmm(self._unshifted_minimum, x - self.minimum_location, self._rotation_t))

    def space(self, half_width: Optional[float] = None) -> Box:
        """The search box ``[-h, h]^D`` (``h = default_box`` unless given)."""
        h = self.default_box if half_width is None else float(half_width)
        return Box.cube(h, (self.dim,), dtype=self.dtype, device=self.device)

    def distance_to_minimum(self, x: Tensor) -> Tensor:
        """Euclidean distance ``[B]`` of points ``x [B, D]`` to :attr:`minimum_location`."""
        x = torch.as_tensor(x).to(device=self.device, dtype=self.dtype)
        return (x - self.minimum_location).norm(dim=-1)

    def __repr__(self) -> str:
        shifted = bool((self.shift != 0).any())
        return (
            f"SyntheticOracle({self.name!r}, dim={self.dim}, shifted={shifted}, "
            f"dtype={self.dtype}, device={self.device})"
        )


#: Seed of the rotation that :func:`make_function` draws for a ``rotated_`` name by default.
DEFAULT_ROTATION_SEED = 0


def make_function(
    name: str,
    dim: int,
    shift: Optional[Union[Tensor, "list[float]"]] = None,
    *,
    rotation_seed: Optional[int] = None,
    **kwargs,
) -> SyntheticOracle:
    """Build a :class:`SyntheticOracle`; ``kwargs`` go to its constructor.

    A name with the ``rotated_`` prefix (``"rotated_alpine1"``) gets the
    rotation :func:`random_rotation` draws from ``rotation_seed``
    (:data:`DEFAULT_ROTATION_SEED` unless given), so the same name and seed
    always give the same function.

    Args:
        name: Function name, optionally with the ``rotated_`` prefix.
        dim: Dimension D.
        shift: Optional shift ``[D]``.
        rotation_seed: Seed of the rotation of a ``rotated_`` name; giving it
            for a plain name is an error.
        **kwargs: Passed to :class:`SyntheticOracle` (``dtype``, ``device``,
            ``rotation``, ...).

    Returns:
        The oracle.
    """
    spec, rotated = parse_name(name)
    if rotated:
        if "rotation" in kwargs:
            raise OracleError(f"{name!r} draws its own rotation; pass rotation_seed, or the plain name with rotation=")
        seed = DEFAULT_ROTATION_SEED if rotation_seed is None else int(rotation_seed)
        kwargs["rotation"] = random_rotation(dim, torch.Generator().manual_seed(seed))
    elif rotation_seed is not None:
        raise OracleError(f"rotation_seed needs a rotated function name ({ROTATED_PREFIX}{spec.name}), got {name!r}")
    return SyntheticOracle(spec.name, dim, shift=shift, **kwargs)


def random_shift(
    name: str,
    dim: int,
    generator: Optional[torch.Generator] = None,
    fraction: float = 0.8,
    *,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A random shift that puts the minimum uniformly inside ``fraction`` of the box.

    The shifted minimiser ``x*_U + shift`` is drawn uniformly from
    ``[-fraction * h, fraction * h]^D`` (``h`` the default half-width) and the
    shift returned. For functions with their minimum at the origin this is a
    shift drawn uniformly inside that box; for Rosenbrock (minimum at 1) and
    HappyCat / HGBat (minimum at -1) the *minimum* lands uniformly in it, so it
    always lies inside the search box.

    Args:
        name: Function name.
        dim: Dimension D.
        generator: Torch generator (CPU) for reproducibility.
        fraction: Fraction of the half-width, in ``(0, 1]``.
        dtype: Dtype of the result.

    Returns:
        ``shift [D]`` (CPU).
    """
    spec = get_spec(name)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h = fraction * spec.default_half_width
    u = torch.rand(int(dim), generator=generator, dtype=torch.float64)
    location = -h + 2.0 * h * u
    return (location - spec.minimum_coordinate).to(dtype)


__all__ = [
    "DEFAULT_ROTATION_SEED",
    "ROTATED_PREFIX",
    "SYNTHETIC_FUNCTIONS",
    "FunctionSpec",
    "SyntheticOracle",
    "ackley",
    "alpine1",
    "drop_wave",
    "expanded_schaffer_f6",
    "get_spec",
    "griewank",
    "happycat",
    "hgbat",
    "make_function",
    "modified_xin_she_yang3",
    "modified_xin_she_yang5",
    "parse_name",
    "random_rotation",
    "random_shift",
    "rastrigin",
    "rosenbrock",
    "salomon",
    "schaffer_f7",
    "xin_she_yang1",
]
