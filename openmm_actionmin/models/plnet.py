"""BiLipNet and PLNet: an invertible bi-Lipschitz network and the PL surrogate built on it.

Written from the equations of Wang, Dvijotham and Manchester, "Monotone, Bi-Lipschitz, and
Polyak-Lojasiewicz Networks" (ICML 2024); see ``shared/docs/METHOD.md``.

The model::

    f(x) = 1/2 ||g(x)||^2 + c                      PLNet, scalar output [B]
    g    = O_L o M_L o ... o O_1 o M_1 o O_0        BiLipNet, [B, D] -> [B, D]

with orthogonal layers ``O_i(x) = R_i x + b_i`` and monotone Lipschitz layers ``M_i``. Every
``M_i`` satisfies, for all x1, x2,

    <M(x1) - M(x2), x1 - x2> >= mu_i ||x1 - x2||^2,   ||M(x1) - M(x2)|| <= nu_i ||x1 - x2||,

with ``mu_i = mu^(1/L)`` and ``nu_i = nu^(1/L)``; orthogonal layers preserve distances, so

    mu ||x1 - x2|| <= ||g(x1) - g(x2)|| <= nu ||x1 - x2||.

Consequently f is Polyak-Lojasiewicz with constant mu^2, its only stationary point is its
minimiser ``x* = g^{-1}(0)``, and ``||grad f(x)|| >= mu^2 ||x - x*||`` everywhere.

Monotone layer (hidden blocks k = 1..m of widths n_k, n = sum n_k, gamma = nu_i - mu_i)::

    z_k = relu(V_k z_{k-1} + sqrt(2 gamma) S_k x + b_k)                      [B, n_k]
    y   = mu_i x + b_y + sqrt(gamma / 2) sum_k S_k^T z_k                     [B, D]
    S_k = A_k Q_k - B_k Q_{k-1},   V_k = 2 B_k A_{k-1}^T

where ``Q = [Q_1; ...; Q_m]`` (n x D) has ``||Q|| <= 1`` (orthonormal rows or columns, from a
Cayley transform) and each ``[A_k  B_k]`` (n_k x (n_k + n_{k-1})) has orthonormal rows
(``A_k A_k^T + B_k B_k^T = I``; ``B_1`` is empty). Why this is certified (our derivation, the
paper's argument in short): write the stacked blocks as ``S = (A - B) Q`` with A block-diagonal
and B block-subdiagonal, so ``V = 2 B A^T``. The ReLU increment obeys
``<dz, dv - dz> >= 0`` (dv the pre-activation increment), which gives
``<dH, dx> >= 1/2 dz^T (I - V) dz``; and ``S S^T <= (A - B)(A - B)^T = I - A B^T - B A^T =
sym(I - V)``, so ``<dH, dx> >= ||dH||^2 / gamma`` for ``H = y - mu_i x``: H is
(1/gamma)-cocoercive, hence ``mu_i x + H`` is mu_i-strongly monotone and (mu_i + gamma)-Lipschitz.

Inverse of a monotone layer: eliminating x from the output equation leaves a fixed point in z,
``z = relu(V z - (gamma/mu_i) S S^T z + c(y))``, i.e. ``0 in N_+(z) + (I - V) z - c(y) +
(gamma/mu_i) S S^T z`` (normal cone of the orthant + a monotone affine operator + a
(mu_i/gamma)-cocoercive one). Davis-Yin three-operator splitting with step
``alpha = mu_i / gamma`` solves it; ``x`` then follows in closed form and its residual
``||M(x) - y||`` is checked. Orthogonal layers invert exactly.

Dtype: the default is ``torch.float64`` (the oracles' dtype; the inverse reaches 1e-6 there).
float32 works too; its inverse tolerance defaults to 1e-4 absolute + 1e-5 relative to |x|.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BiLipNet",
    "CayleyOrthogonal",
    "HouseholderOrthogonal",
    "MonotoneLayer",
    "PLNet",
    "PLNetConfig",
    "PLNetInverseError",
    "box_penalty",
    "cayley",
    "default_inverse_tol",
]

ORTHOGONAL_KINDS = ("cayley", "householder", "auto")
SEMI_ORTHOGONAL_KINDS = ("cayley", "qr")
# With orthogonal="auto", dense Cayley is used up to this dimension, Householder above it.
AUTO_HOUSEHOLDER_DIM = 256


class PLNetInverseError(RuntimeError):
    """The iterative inverse of a BiLipNet did not reach its tolerance.

    Attributes:
        residual: Largest residual ``||layer(x) - y||`` over the batch when the solver stopped.
        tol: The tolerance that was asked for.
        iterations: Iterations spent.
    """

    def __init__(self, message: str, *, residual: float, tol: float, iterations: int) -> None:
        super().__init__(message)
        self.residual = residual
        self.tol = tol
        self.iterations = iterations


def default_inverse_tol(dtype: torch.dtype) -> Tuple[float, float]:
    """(tol, rtol) used by the inverses when ``tol=None``.

    float64: (1e-6, 0), a purely absolute criterion. float32: (1e-4, 1e-5); its rounding floor
    grows with the size of the numbers involved (measured: ~1e-3 absolute at |x| ~ 3000), so the
    allowance grows with ``max(||x||, ||y||)``.
    """
    return (1.0e-6, 0.0) if dtype == torch.float64 else (1.0e-4, 1.0e-5)


def _row_residual(out: Tensor, y: Tensor, x: Tensor, tol: float, rtol: float) -> Tuple[float, bool]:
    """(max_b ||out_b - y_b||, every row within ``tol + rtol max(||x_b||, ||y_b||)``)."""
    if out.shape[0] == 0:
        return 0.0, True
    res = (out - y).norm(dim=1)
    allowed = tol + rtol * torch.maximum(x.norm(dim=1), y.norm(dim=1))
    return float(res.max()), bool((res <= allowed).all())


def cayley(weight: Tensor) -> Tensor:
    """Cayley transform of a free matrix into one with orthonormal columns.

    For ``weight = [U; W]`` with ``U`` [q, q] and ``W`` [p - q, q], and ``Z = U - U^T + W^T W``,
    returns ``[(I + Z)^{-1} (I - Z); -2 W (I + Z)^{-1}]``, which satisfies ``R^T R = I`` exactly
    (up to rounding). ``I + Z`` is always invertible because ``sym(Z) = W^T W >= 0``. For a
    square input this is the classic ``(I + A)^{-1}(I - A)``, ``A = U - U^T``.

    Args:
        weight: Free parameter [p, q] with p >= q.

    Returns:
        R [p, q] with orthonormal columns.
    """
    p, q = weight.shape
    if p < q:
        raise ValueError(f"cayley needs a tall or square matrix, got shape {tuple(weight.shape)}")
    u, w = weight[:q], weight[q:]
    eye = torch.eye(q, dtype=weight.dtype, device=weight.device)
    z = u - u.T + w.T @ w
    i_plus_z = eye + z
    top = torch.linalg.solve(i_plus_z, eye - z)
    if p == q:
        return top
    bottom = -2.0 * torch.linalg.solve(i_plus_z.T, w.T).T
    return torch.cat([top, bottom], dim=0)


def inverse_cayley(r: Tensor) -> Tensor:
    """A free parameter [p, q] that :func:`cayley` maps to ``r`` [p, q] (orthonormal columns, p > q).

    Only needs ``I + r[:q]`` invertible; the result has ``U = 0`` when ``r[:q]`` is symmetric.
    """
    p, q = r.shape
    if p <= q:
        raise ValueError(f"inverse_cayley needs a tall matrix, got shape {tuple(r.shape)}")
    eye = torch.eye(q, dtype=r.dtype, device=r.device)
    r1, r2 = r[:q], r[q:]
    z = torch.linalg.solve(eye + r1, eye - r1)  # (I + R1)^-1 (I - R1): R1 and Z commute
    w = -0.5 * r2 @ (eye + z)
    k = z - w.T @ w  # the skew part U - U^T
    u = torch.triu(0.5 * (k - k.T), diagonal=1)
    return torch.cat([u, w], dim=0)


def isotropic_tall_init(p: int, q: int, generator: Optional[torch.Generator], dtype: torch.dtype, device) -> Tensor:
    """Free parameter [p, q] (p > q) whose Cayley image spans a uniformly random q-dim subspace.

    A Gaussian free matrix ``[U; W]`` does not: at init ``W^T W ~ (p - q) / q I`` dominates
    ``Z`` and the Cayley image puts ~87 % of its weight on its first q rows (D = 1000,
    q = 32). When the rows are input coordinates (a monotone layer narrower than D), the
    network then acts almost only on the first q coordinates and treats the others as nearly
    linear. Here the image is ``R O``: R from the QR of a Gaussian [p, q] (Haar-random column
    span, so every row gets the same weight in distribution), rotated by an orthogonal
    ``O`` [q, q] that makes its top block symmetric positive semi-definite, so that
    ``I + R_1`` is well conditioned and the inverse exists.
    """
    r = qr_orthonormal(torch.randn(p, q, generator=generator, dtype=torch.float64))
    a, _, bt = torch.linalg.svd(r[:q])
    r = r @ (bt.T @ a.T)  # top block becomes A S A^T
    return inverse_cayley(r).to(dtype=dtype, device=device)


def qr_orthonormal(weight: Tensor) -> Tensor:
    """Orthonormal columns [p, q] spanning the columns of a free ``weight`` [p, q] (p >= q).

    The Q factor of the QR decomposition with the signs fixed so that R has a positive
    diagonal (unique, and smooth in ``weight`` where it has full rank). Permuting the rows of
    ``weight`` permutes the rows of the result, so no row is special.
    """
    q, r = torch.linalg.qr(weight, mode="reduced")
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs.reshape(1, -1)


def _semi_orthogonal(weight: Tensor, rows: int, cols: int, kind: str = "cayley") -> Tensor:
    """Matrix [rows, cols] with spectral norm 1 (orthonormal rows or columns) from a free one.

    ``weight`` has shape [max(rows, cols), min(rows, cols)]; ``kind`` is ``"cayley"``
    (:func:`cayley`) or ``"qr"`` (:func:`qr_orthonormal`).
    """
    r = cayley(weight) if kind == "cayley" else qr_orthonormal(weight)
    return r if rows >= cols else r.T


def box_penalty(x: Tensor, low: Union[Tensor, float], high: Union[Tensor, float]) -> Tensor:
    """Squared distance of points to an axis-aligned box, zero inside.

    The PLNet minimiser is unconstrained and can leave the search box when the network is
    nearly flat; a trainer can add ``weight * box_penalty(points, low, high).mean()`` to its loss
    (for points that carry gradients to the parameters, e.g. descent paths), or clip
    ``minimizer()`` into the box before evaluating the true energy.

    Args:
        x: Points [B, D].
        low: Lower corner, scalar or [D].
        high: Upper corner, scalar or [D].

    Returns:
        penalty [B]: ``sum_i relu(low_i - x_i)^2 + relu(x_i - high_i)^2``.
    """
    low_t = torch.as_tensor(low, dtype=x.dtype, device=x.device)
    high_t = torch.as_tensor(high, dtype=x.dtype, device=x.device)
    if bool((low_t > high_t).any()):
        raise ValueError("box_penalty: low must be <= high in every coordinate")
    return (F.relu(low_t - x) ** 2 + F.relu(x - high_t) ** 2).sum(dim=-1)


#: Output heads of a PLNet (see :class:`PLNet`).
GROWTH_KINDS = ("quadratic", "learned")


@dataclass
class PLNetConfig:
    """Configuration of a PLNet (and of the BiLipNet inside it).

    Attributes:
        dim: Input dimension D.
        depth: Number L of monotone layers (>= 1).
        hidden: Hidden block widths of every monotone layer: one int (a single block) or a
            tuple of block sizes, e.g. ``(128, 128)`` for two blocks. Total width n = sum.
        mu: Lower Lipschitz bound of g at initialisation (network level), > 0.
        nu: Upper Lipschitz bound of g at initialisation, > mu.
        orthogonal: ``"cayley"`` (dense D x D Cayley transform, one D x D solve per forward),
            ``"householder"`` (product of ``householder_reflections`` reflections, O(k D) per
            vector) or ``"auto"`` (Cayley up to D = 256, Householder above).
        householder_reflections: Number k of reflections per Householder layer.
        learn_bounds: Train ``log nu`` and ``log(tau - 1)`` with ``mu = nu / tau``; if False
            the bounds stay fixed at ``mu``, ``nu``.
        init_center: [D] where the minimiser ``x* = g^{-1}(0)`` sits at initialisation. None:
            drawn from N(0, init_scale^2) (with ``seed`` if given), so an untrained model does
            NOT sit at the origin (the global minimum of every unshifted benchmark).
        init_scale: Typical coordinate scale of the inputs; sets the random ``init_center`` and
            the spread of the hidden biases.
        seed: Seed for every random initial value; None uses torch's global generator.
        dtype: Parameter dtype (float64 default; float32 works, with looser inverse tolerance).
        device: Parameter device.
        growth: ``"quadratic"``: ``f = 1/2 ||g||^2 + c`` (the PLNet of Wang et al.).
            ``"learned"``: ``f = h(1/2 ||g||^2) + c`` with the strictly increasing head
            ``h(u) = (2 s / q) ((1 + u / s)^(q/2) - 1)``, ``q`` and ``s`` trained; see
            :class:`PLNet`. At initialisation ``q = 2`` and ``h(u) = u``.
        semi_orthogonal: How each monotone layer's ``Q`` [n, D] (``||Q|| = 1``) is
            parametrised: ``"cayley"`` (Cayley transform of a tall free matrix, the default)
            or ``"qr"`` (Q factor of a free matrix). With ``n < D`` the tall Cayley map
            treats the first n input coordinates differently (they come from the square
            block): after training at D = 1000 (n = 32) they still held 19-47 % of the
            remaining squared distance; QR treats every coordinate alike (the synthetic
            functions' round bowl uses it: ``search.action.BOWL_MODEL``).
        growth_min: Floor of the learned exponent, ``0 <= growth_min < 2``:
            ``q = growth_min + (2 - growth_min) exp(log_q)``. ``0`` (default) is the
            unconstrained head. Without a floor, training on a small region drove
            ``q`` to ~1e-3 (a logarithmic far field that barely pins the minimiser)
            and the candidate diverged (``bench/results/synthetic_d1000_1200s.md``).
    """

    dim: int
    depth: int = 2
    hidden: Union[Tuple[int, ...], int] = 256
    mu: float = 0.1
    nu: float = 2.0
    orthogonal: str = "auto"
    householder_reflections: int = 16
    learn_bounds: bool = True
    init_center: Optional[Tensor] = None
    init_scale: float = 1.0
    seed: Optional[int] = None
    dtype: torch.dtype = torch.float64
    device: Union[str, torch.device] = "cpu"
    growth: str = "quadratic"
    growth_min: float = 0.0
    semi_orthogonal: str = "cayley"

    def __post_init__(self) -> None:
        if self.semi_orthogonal not in SEMI_ORTHOGONAL_KINDS:
            raise ValueError(
                f"PLNetConfig.semi_orthogonal must be one of {SEMI_ORTHOGONAL_KINDS}, got {self.semi_orthogonal!r}"
            )
        if self.growth not in GROWTH_KINDS:
            raise ValueError(f"PLNetConfig.growth must be one of {GROWTH_KINDS}, got {self.growth!r}")
        if not 0.0 <= self.growth_min < 2.0:
            raise ValueError(f"PLNetConfig.growth_min must be in [0, 2), got {self.growth_min!r}")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"PLNetConfig.dim must be a positive int, got {self.dim!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"PLNetConfig.depth must be an int >= 1, got {self.depth!r}")
        blocks = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if len(blocks) == 0 or any((not isinstance(b, int)) or b < 1 for b in blocks):
            raise ValueError(
                f"PLNetConfig.hidden must be a positive int or a non-empty tuple of positive ints, got {self.hidden!r}"
            )
        if not isinstance(self.hidden, int):
            self.hidden = blocks
        if not (self.mu > 0 and self.nu > self.mu and math.isfinite(self.nu)):
            raise ValueError(
                f"PLNetConfig needs 0 < mu < nu < inf, got mu={self.mu}, nu={self.nu}; "
                "pick e.g. mu=0.1, nu=2.0"
            )
        if self.orthogonal not in ORTHOGONAL_KINDS:
            raise ValueError(
                f"PLNetConfig.orthogonal must be one of {ORTHOGONAL_KINDS}, got {self.orthogonal!r}"
            )
        if self.householder_reflections < 1:
            raise ValueError("PLNetConfig.householder_reflections must be >= 1")
        if self.init_scale <= 0:
            raise ValueError(f"PLNetConfig.init_scale must be > 0, got {self.init_scale}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"PLNetConfig.dtype must be torch.float32 or torch.float64, got {self.dtype}")
        if self.init_center is not None:
            center = torch.as_tensor(self.init_center)
            if center.shape != (self.dim,):
                raise ValueError(
                    f"PLNetConfig.init_center must have shape [{self.dim}], got {tuple(center.shape)}"
                )
            if not bool(torch.isfinite(center).all()):
                raise ValueError("PLNetConfig.init_center contains non-finite values")

    @property
    def blocks(self) -> Tuple[int, ...]:
        """Hidden block widths as a tuple."""
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)

    @property
    def orthogonal_kind(self) -> str:
        """The orthogonal layer actually used (resolves ``"auto"``)."""
        if self.orthogonal == "auto":
            return "cayley" if self.dim <= AUTO_HOUSEHOLDER_DIM else "householder"
        return self.orthogonal


def _randn(shape: Sequence[int], generator: Optional[torch.Generator], dtype: torch.dtype, device) -> Tensor:
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)


def _rand(shape: Sequence[int], generator: Optional[torch.Generator], dtype: torch.dtype, device) -> Tensor:
    return torch.rand(*shape, generator=generator, dtype=dtype).to(device)


class CayleyOrthogonal(nn.Module):
    """Orthogonal affine layer ``y = R x + b`` with R the Cayley transform of a free D x D matrix.

    Cost: one D x D solve per evaluation of R (shared by the batch), then a [B, D] x [D, D]
    product.
    """

    def __init__(self, dim: int, *, generator: Optional[torch.Generator], dtype: torch.dtype, device) -> None:
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(_randn((dim, dim), generator, dtype, device) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))

    def weights(self) -> Tensor:
        """R [D, D], exactly orthogonal."""
        return cayley(self.weight)

    def apply_weights(self, x: Tensor, r: Tensor) -> Tensor:
        """``x R^T + b``: [B, D] -> [B, D]."""
        return x @ r.T + self.bias

    def inverse_weights(self, y: Tensor, r: Tensor) -> Tensor:
        """``(y - b) R``: [B, D] -> [B, D]."""
        return (y - self.bias) @ r

    def rotate(self, x: Tensor, r: Tensor) -> Tensor:
        """``x R^T`` without bias: [B, D] -> [B, D]."""
        return x @ r.T


class HouseholderOrthogonal(nn.Module):
    """Orthogonal affine layer ``y = H_1 H_2 ... H_k x + b``, ``H_i = I - 2 v_i v_i^T / |v_i|^2``.

    Exactly orthogonal for any nonzero ``v_i``; no D x D solve, which makes it the cheap choice at
    large D. The product is applied in compact WY form ``H_1 ... H_k = I - V T V^T`` (V = [D, k]
    unit vectors, T [k, k] upper triangular from the Gram matrix ``V^T V``), i.e. two [B, D] x
    [D, k] products per apply: O(B D k). It represents only products of k reflections (orthogonal
    matrices that move at most a k-dimensional subspace).
    """

    def __init__(
        self, dim: int, reflections: int, *, generator: Optional[torch.Generator], dtype: torch.dtype, device
    ) -> None:
        super().__init__()
        self.dim = dim
        self.vectors = nn.Parameter(_randn((reflections, dim), generator, dtype, device))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))

    def weights(self) -> Tuple[Tensor, Tensor]:
        """(unit reflection vectors v [k, D], WY factor T [k, k] upper triangular)."""
        norms = self.vectors.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError(
                "HouseholderOrthogonal: a reflection vector is exactly zero (the reflection is "
                "undefined); re-initialise the layer's `vectors` parameter"
            )
        v = self.vectors / norms
        k = v.shape[0]
        gram = v @ v.T  # [k, k]
        # T_ii = 2, T[:i, i] = -2 T[:i, :i] G[:i, i]; built column by column without in-place ops.
        cols: List[Tensor] = []
        for i in range(k):
            if i == 0:
                head = v.new_zeros(0)
            else:
                t_prev = torch.stack(cols, dim=1)[:i]  # [i, i]
                head = -2.0 * t_prev @ gram[:i, i]
            col = torch.cat([head, v.new_full((1,), 2.0), v.new_zeros(k - i - 1)])
            cols.append(col)
        t = torch.stack(cols, dim=1)
        return v, t

    def rotate(self, x: Tensor, w: Tuple[Tensor, Tensor]) -> Tensor:
        """``H_1 ... H_k x`` for rows of x: ``x - x V T^T V^T``, [B, D] -> [B, D]."""
        v, t = w
        return x - ((x @ v.T) @ t.T) @ v

    def apply_weights(self, x: Tensor, w: Tuple[Tensor, Tensor]) -> Tensor:
        """``R x + b``: [B, D] -> [B, D]."""
        return self.rotate(x, w) + self.bias

    def inverse_weights(self, y: Tensor, w: Tuple[Tensor, Tensor]) -> Tensor:
        """``R^T (y - b)``: ``u - u V T V^T`` with ``u = y - b``, [B, D] -> [B, D]."""
        v, t = w
        u = y - self.bias
        return u - ((u @ v.T) @ t) @ v


@dataclass
class _MonotoneWeights:
    """Derived weights of a monotone layer (see MonotoneLayer)."""

    mu: Tensor  # scalar
    gamma: Tensor  # scalar
    s: Tensor  # [n, D]
    a: List[Tensor] = field(default_factory=list)  # A_k [n_k, n_k] (A_1 omitted for one block)
    b: List[Tensor] = field(default_factory=list)  # B_k [n_k, n_{k-1}], k >= 2


class MonotoneLayer(nn.Module):
    """Strongly monotone, Lipschitz residual layer with certified bounds (mu_i, nu_i).

    See the module docstring for the equations. The bounds are not stored here: the owner
    (BiLipNet) passes the current per-layer ``mu_i`` and ``gamma_i = nu_i - mu_i``.

    Args:
        dim: D.
        blocks: Hidden block widths (n_1, ..., n_m).
        init_scale: Spread of the initial hidden biases, U(-init_scale, init_scale).
        semi_orthogonal: ``"cayley"`` or ``"qr"`` (see :class:`PLNetConfig`).
    """

    def __init__(
        self,
        dim: int,
        blocks: Tuple[int, ...],
        *,
        init_scale: float,
        generator: Optional[torch.Generator],
        dtype: torch.dtype,
        device,
        semi_orthogonal: str = "cayley",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.semi_orthogonal = semi_orthogonal
        self.blocks = tuple(blocks)
        n = sum(self.blocks)
        self.width = n
        big, small = max(n, dim), min(n, dim)
        if dim > n and semi_orthogonal == "cayley":
            # The tall side is the input coordinates: spread the layer's weight over all of them.
            self.q_weight = nn.Parameter(isotropic_tall_init(dim, n, generator, dtype, device))
        else:
            # The tall side is the hidden units (exchangeable), or the QR map (Haar at a Gaussian
            # init): the Gaussian init is kept.
            self.q_weight = nn.Parameter(_randn((big, small), generator, dtype, device) / math.sqrt(small))
        # [A_k B_k] from the Cayley transform of a [(n_k + n_{k-1}), n_k] free matrix (transposed).
        # For a single block, A_1 is redundant with Q and is left out.
        self.ab_weights = nn.ParameterList()
        if len(self.blocks) > 1:
            prev = 0
            for nk in self.blocks:
                self.ab_weights.append(
                    nn.Parameter(_randn((nk + prev, nk), generator, dtype, device) / math.sqrt(nk))
                )
                prev = nk
        self.bias_hidden = nn.Parameter((2.0 * _rand((n,), generator, dtype, device) - 1.0) * init_scale)
        self.bias_out = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))

    def weights(self, mu: Tensor, gamma: Tensor) -> _MonotoneWeights:
        """Derived weights for the given per-layer bounds."""
        q = _semi_orthogonal(self.q_weight, self.width, self.dim, self.semi_orthogonal)  # [n, D], ||Q|| = 1
        if len(self.blocks) == 1:
            return _MonotoneWeights(mu=mu, gamma=gamma, s=q)
        a_list: List[Tensor] = []
        b_list: List[Tensor] = []
        s_rows: List[Tensor] = []
        offsets = [0]
        for nk in self.blocks:
            offsets.append(offsets[-1] + nk)
        for k, nk in enumerate(self.blocks):
            ab = cayley(self.ab_weights[k]).T  # [n_k, n_k + n_{k-1}], orthonormal rows
            a_k, b_k = ab[:, :nk], ab[:, nk:]
            q_k = q[offsets[k] : offsets[k + 1]]
            s_k = a_k @ q_k
            if k > 0:
                s_k = s_k - b_k @ q[offsets[k - 1] : offsets[k]]
            a_list.append(a_k)
            b_list.append(b_k)
            s_rows.append(s_k)
        return _MonotoneWeights(mu=mu, gamma=gamma, s=torch.cat(s_rows, dim=0), a=a_list, b=b_list)

    def hidden(self, x: Tensor, w: _MonotoneWeights) -> Tensor:
        """Hidden activations z [B, n] for inputs x [B, D]."""
        pre = math.sqrt(2.0) * torch.sqrt(w.gamma) * (x @ w.s.T) + self.bias_hidden  # [B, n]
        if len(self.blocks) == 1:
            return F.relu(pre)
        zs: List[Tensor] = []
        start = 0
        for k, nk in enumerate(self.blocks):
            pk = pre[:, start : start + nk]
            if k > 0:
                pk = pk + self._v_block(zs[-1], w, k)
            zs.append(F.relu(pk))
            start += nk
        return torch.cat(zs, dim=1)

    @staticmethod
    def _v_block(z_prev: Tensor, w: _MonotoneWeights, k: int) -> Tensor:
        """``V_k z_{k-1} = 2 B_k A_{k-1}^T z_{k-1}`` for rows: [B, n_{k-1}] -> [B, n_k]."""
        return 2.0 * (z_prev @ w.a[k - 1]) @ w.b[k].T

    def _v_apply(self, z: Tensor, w: _MonotoneWeights) -> Tensor:
        """``V z`` for rows of z: [B, n] -> [B, n] (zero for a single block)."""
        if len(self.blocks) == 1:
            return torch.zeros_like(z)
        out = [torch.zeros_like(z[:, : self.blocks[0]])]
        start = 0
        for k in range(1, len(self.blocks)):
            prev = z[:, start : start + self.blocks[k - 1]]
            out.append(self._v_block(prev, w, k))
            start += self.blocks[k - 1]
        return torch.cat(out, dim=1)

    def apply_weights(self, x: Tensor, w: _MonotoneWeights) -> Tensor:
        """Layer output y [B, D] for inputs x [B, D]."""
        z = self.hidden(x, w)
        return w.mu * x + self.bias_out + torch.sqrt(w.gamma / 2.0) * (z @ w.s)

    def _resolvent(self, rhs: Tensor, w: _MonotoneWeights, alpha: Tensor) -> Tensor:
        """Solve ``((1 + alpha) I - alpha V) z = rhs`` by block forward substitution: [B, n] -> [B, n]."""
        scale = 1.0 / (1.0 + alpha)
        if len(self.blocks) == 1:
            return rhs * scale
        zs: List[Tensor] = []
        start = 0
        for k, nk in enumerate(self.blocks):
            rk = rhs[:, start : start + nk]
            if k > 0:
                rk = rk + alpha * self._v_block(zs[-1], w, k)
            zs.append(rk * scale)
            start += nk
        return torch.cat(zs, dim=1)

    def inverse_weights(
        self,
        y: Tensor,
        w: _MonotoneWeights,
        *,
        tol: float,
        max_iter: int,
        rtol: float = 0.0,
        x0: Optional[Tensor] = None,
        check_every: int = 10,
    ) -> Tuple[Tensor, float, int]:
        """Solve ``layer(x) = y`` for x by Davis-Yin splitting (no autograd).

        Args:
            y: Targets [B, D].
            w: Derived weights (detached).
            tol: Absolute tolerance on ``||layer(x_b) - y_b||``.
            max_iter: Iteration cap.
            rtol: Relative allowance: row b stops at ``tol + rtol max(||x_b||, ||y_b||)``.
            x0: Optional warm start [B, D] (a guess of the solution); the splitting state is set
                to the fixed point it would have if x0 were exact.
            check_every: Residual check period.

        Returns:
            (x [B, D], final max residual, iterations used). The caller decides what a residual
            above ``tol`` means.
        """
        mu, gamma = w.mu, w.gamma
        s = w.s
        alpha = mu / gamma
        c = (torch.sqrt(2.0 * gamma) / mu) * ((y - self.bias_out) @ s.T) + self.bias_hidden  # [B, n]
        coef = gamma / mu
        half = torch.sqrt(gamma / 2.0)

        def recover(z: Tensor) -> Tensor:
            return (y - self.bias_out - half * (z @ s)) / mu

        def residual(x: Tensor) -> Tuple[float, bool]:
            return _row_residual(self.apply_weights(x, w), y, x, tol, rtol)

        if x0 is None:
            w_state = torch.zeros_like(c)
            x = recover(F.relu(c))
        else:
            # DYS fixed point: w = z + alpha ((I - V) z - c) with z the hidden state at x0.
            z0 = self.hidden(x0, w)
            w_state = z0 + alpha * (z0 - self._v_apply(z0, w) - c)
            x = x0
        res, ok = residual(x)
        it = 0
        while it < max_iter and not ok:
            steps = min(check_every, max_iter - it)
            for _ in range(steps):
                rhs = w_state + alpha * c
                z_b = self._resolvent(rhs, w, alpha)
                z_a = F.relu(2.0 * z_b - w_state - alpha * coef * ((z_b @ s) @ s.T))
                w_state = w_state + z_a - z_b
            it += steps
            x = recover(z_a)
            res, ok = residual(x)
        return x, res, it


class BiLipNet(nn.Module):
    """Invertible network g with ``mu ||dx|| <= ||dg|| <= nu ||dx||``.

    Structure: orthogonal layer, then ``depth`` times (monotone layer, orthogonal layer).
    ``bounds()`` gives the (mu, nu) currently guaranteed; with ``learn_bounds`` they are trained
    through ``log nu`` and ``log(tau - 1)``, ``mu = nu / tau``.

    Args:
        config: The PLNetConfig (dim, depth, hidden, bounds, orthogonal kind, dtype, seed).
        generator: Random generator for the initial values (None: torch's global one).
    """

    def __init__(self, config: PLNetConfig, *, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.config = config
        self.dim = config.dim
        self.depth = config.depth
        dtype, device = config.dtype, torch.device(config.device)
        kind = config.orthogonal_kind

        def make_orth() -> nn.Module:
            if kind == "cayley":
                return CayleyOrthogonal(config.dim, generator=generator, dtype=dtype, device=device)
            return HouseholderOrthogonal(
                config.dim, config.householder_reflections, generator=generator, dtype=dtype, device=device
            )

        self.orthogonal = nn.ModuleList([make_orth() for _ in range(config.depth + 1)])
        self.monotone = nn.ModuleList(
            [
                MonotoneLayer(
                    config.dim,
                    config.blocks,
                    init_scale=config.init_scale,
                    semi_orthogonal=config.semi_orthogonal,
                    generator=generator,
                    dtype=dtype,
                    device=device,
                )
                for _ in range(config.depth)
            ]
        )
        log_nu = torch.tensor(math.log(config.nu), dtype=dtype, device=device)
        log_tau_m1 = torch.tensor(math.log(config.nu / config.mu - 1.0), dtype=dtype, device=device)
        if config.learn_bounds:
            self.log_nu = nn.Parameter(log_nu)
            self.log_tau_minus_one = nn.Parameter(log_tau_m1)
        else:
            self.register_buffer("log_nu", log_nu)
            self.register_buffer("log_tau_minus_one", log_tau_m1)
        self._frozen: Optional[list] = None
        self.last_inverse_iterations: List[int] = []
        """Davis-Yin iterations per monotone layer (first layer first) of the latest inverse."""

    # ----------------------------------------------------------------------------- bounds
    def _bound_tensors(self) -> Tuple[Tensor, Tensor]:
        """Network-level (mu, nu) as tensors (differentiable in the bound parameters)."""
        nu = torch.exp(self.log_nu)
        tau = 1.0 + torch.exp(self.log_tau_minus_one)
        return nu / tau, nu

    def bounds(self) -> Tuple[float, float]:
        """(mu, nu) currently guaranteed for g: ``mu ||dx|| <= ||dg|| <= nu ||dx||``."""
        mu, nu = self._bound_tensors()
        return float(mu.detach()), float(nu.detach())

    def _layer_bounds(self) -> Tuple[Tensor, Tensor]:
        """Per-monotone-layer (mu_i, gamma_i = nu_i - mu_i)."""
        mu, nu = self._bound_tensors()
        mu_i = mu ** (1.0 / self.depth)
        nu_i = nu ** (1.0 / self.depth)
        return mu_i, nu_i - mu_i

    # ---------------------------------------------------------------------------- weights
    def _weights(self) -> list:
        mu_i, gamma_i = self._layer_bounds()
        ws: list = [orth.weights() for orth in self.orthogonal]
        ws += [mono.weights(mu_i, gamma_i) for mono in self.monotone]
        return ws

    def _current_weights(self) -> list:
        return self._frozen if self._frozen is not None else self._weights()

    @contextlib.contextmanager
    def frozen(self) -> Iterator["BiLipNet"]:
        """Compute the derived weights once (detached) and reuse them inside the block.

        Inside, forward passes skip the Cayley solves (the dominant cost at large D). Gradients
        flow to the inputs and to the biases (and c), but NOT to the matrix parameters or the
        bounds. Use it for inner descent loops that only need ``grad_x f``; do not change
        parameters inside (the cached matrices would go stale).
        """
        with torch.no_grad():
            ws = self._weights()
        previous = self._frozen
        self._frozen = ws
        try:
            yield self
        finally:
            self._frozen = previous

    def _check_input(self, x: Tensor, name: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"BiLipNet.{name}: expected a torch.Tensor [B, {self.dim}], got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"BiLipNet.{name}: expected shape [B, {self.dim}], got {tuple(x.shape)}; "
                "add a batch dimension with x.unsqueeze(0) for a single point"
            )
        if x.dtype != self.config.dtype:
            raise TypeError(
                f"BiLipNet.{name}: input dtype {x.dtype} != model dtype {self.config.dtype}; "
                f"convert with x.to({self.config.dtype}) or build the model with PLNetConfig(dtype=...)"
            )

    # ---------------------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """g(x): [B, D] -> [B, D]."""
        self._check_input(x, "forward")
        ws = self._current_weights()
        n_orth = len(self.orthogonal)
        h = self.orthogonal[0].apply_weights(x, ws[0])
        for i in range(self.depth):
            h = self.monotone[i].apply_weights(h, ws[n_orth + i])
            h = self.orthogonal[i + 1].apply_weights(h, ws[i + 1])
        return h

    def inverse(
        self,
        y: Tensor,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """g^{-1}(y): [B, D] -> [B, D], detached.

        Orthogonal layers invert exactly; each monotone layer by Davis-Yin splitting, to a
        per-layer tolerance ``tol / (depth * nu)`` so that errors propagated through the later
        layers stay below ``tol``. The final residual ``max_b ||g(x_b) - y_b||`` is checked.

        Args:
            y: Targets [B, D].
            tol: Absolute tolerance: every row must satisfy
                ``||g(x_b) - y_b|| <= tol + rtol max(||x_b||, ||y_b||)``. None: the dtype
                defaults of ``default_inverse_tol`` (float64: 1e-6 absolute; float32: 1e-4 plus
                1e-5 relative, since float32 rounding cannot reach 1e-6).
            max_iter: Iteration cap per monotone layer.
            x0: Optional warm start [B, D], e.g. the previous solution after a small parameter
                update; cuts the iterations when it is close. ``last_inverse_iterations`` tells
                how many each layer used.
            rtol: Relative allowance (see tol); None: 0 when tol is given, else the dtype default.

        Returns:
            x [B, D] with ``||g(x_b) - y_b|| <= tol + rtol max(||x_b||, ||y_b||)`` for every row.

        Raises:
            PLNetInverseError: if the residual is above ``tol`` (message and ``.residual`` give
                the value reached).
        """
        self._check_input(y, "inverse")
        default_tol, default_rtol = default_inverse_tol(self.config.dtype)
        if rtol is None:
            rtol = default_rtol if tol is None else 0.0
        if tol is None:
            tol = default_tol
        if tol < 0 or rtol < 0:
            raise ValueError(f"BiLipNet.inverse: tol and rtol must be >= 0, got tol={tol}, rtol={rtol}")
        if max_iter < 1:
            raise ValueError(f"BiLipNet.inverse: max_iter must be >= 1, got {max_iter}")
        with torch.no_grad():
            ws = self._weights() if self._frozen is None else self._frozen
            _, nu = self.bounds()
            layer_tol = tol / (self.depth * max(nu, 1.0))
            layer_rtol = rtol / self.depth
            n_orth = len(self.orthogonal)
            guesses: List[Optional[Tensor]] = [None] * self.depth
            if x0 is not None:
                self._check_input(x0, "inverse(x0=...)")
                if x0.shape != y.shape:
                    raise ValueError(f"BiLipNet.inverse: x0 shape {tuple(x0.shape)} != y shape {tuple(y.shape)}")
                h0 = self.orthogonal[0].apply_weights(x0.detach(), ws[0])
                for i in range(self.depth):
                    guesses[i] = h0
                    h0 = self.monotone[i].apply_weights(h0, ws[n_orth + i])
                    h0 = self.orthogonal[i + 1].apply_weights(h0, ws[i + 1])
            h = y.detach()
            iterations = [0] * self.depth
            for i in range(self.depth - 1, -1, -1):
                h = self.orthogonal[i + 1].inverse_weights(h, ws[i + 1])
                h, _, iterations[i] = self.monotone[i].inverse_weights(
                    h, ws[n_orth + i], tol=layer_tol, rtol=layer_rtol, max_iter=max_iter, x0=guesses[i]
                )
            self.last_inverse_iterations = iterations
            total_iter = sum(iterations)
            x = self.orthogonal[0].inverse_weights(h, ws[0])
            residual, ok = _row_residual(self.forward(x), y, x, tol, rtol)
        if not ok:
            allowed = f"tol = {tol:.1e}" + (f" + rtol = {rtol:.1e} x max(|x|, |y|)" if rtol > 0 else "")
            raise PLNetInverseError(
                f"BiLipNet.inverse did not converge: max residual ||g(x) - y|| = {residual:.3e} > {allowed} "
                f"after {total_iter} Davis-Yin iterations over {self.depth} monotone layers "
                f"(max_iter={max_iter} per layer, dtype={self.config.dtype}); raise max_iter or loosen tol",
                residual=residual,
                tol=tol,
                iterations=total_iter,
            )
        return x


class PLNet(nn.Module):
    """Polyak-Lojasiewicz network ``f(x) = 1/2 ||g(x)||^2 + c`` with g a BiLipNet.

    f has exactly one stationary point, its global minimiser ``x* = g^{-1}(0)``, and
    ``||grad f(x)|| >= mu ||g(x)|| >= mu^2 ||x - x*||``. At initialisation ``x*`` sits at
    ``config.init_center`` (random if not given), never at the origin by construction.

    With ``config.growth = "learned"`` the output goes through a strictly increasing head,
    ``f(x) = h(u) + c`` with ``u = 1/2 ||g(x)||^2`` and
    ``h(u) = (2 s / q) ((1 + u / s)^(q/2) - 1)`` (``q = q_min + (2 - q_min) exp(log_q)`` with
    ``q_min = config.growth_min``, ``s = exp(log_s)``, both trained). ``h(0) = 0`` and
    ``h'(u) = (1 + u / s)^(q/2 - 1) > 0``, so
    ``grad f = h'(u) J_g^T g`` still vanishes only at ``x*``, the minimum value is still
    ``c`` and :meth:`minimizer` is unchanged; near ``x*`` f is PL as before, far away it
    grows like ``||g||^q`` instead of ``||g||^2`` (the PL constant then decays by ``h'``).
    Why: an energy whose envelope grows linearly (Alpine 1) or like ``|x|^(1/2)``
    (Schaffer F7) is fitted by a quadratic bowl only with its bottom dragged towards the
    middle of the sampled region; a learned exponent removes that bias.

    Args:
        config: PLNetConfig.
    """

    def __init__(self, config: PLNetConfig) -> None:
        super().__init__()
        self.config = config
        generator: Optional[torch.Generator] = None
        if config.seed is not None:
            generator = torch.Generator()
            generator.manual_seed(int(config.seed))
        self.bilipnet = BiLipNet(config, generator=generator)
        self.c = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
        if config.growth == "learned":
            self.log_q = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
            self.log_s = nn.Parameter(torch.zeros((), dtype=config.dtype, device=torch.device(config.device)))
        if config.init_center is not None:
            center = torch.as_tensor(config.init_center).to(dtype=config.dtype, device=torch.device(config.device))
        else:
            center = _randn((config.dim,), generator, config.dtype, torch.device(config.device)) * config.init_scale
        self._place_minimizer(center)

    @torch.no_grad()
    def _place_minimizer(self, center: Tensor) -> None:
        """Shift the biases so that g(center) = 0: first layer maps center to 0, last absorbs the rest."""
        net = self.bilipnet
        first, last = net.orthogonal[0], net.orthogonal[-1]
        first.bias.zero_()
        first.bias.sub_(first.rotate(center.unsqueeze(0), first.weights()).squeeze(0))
        residual = net(center.unsqueeze(0)).squeeze(0)
        last.bias.sub_(residual)

    @property
    def g_net(self) -> BiLipNet:
        """The BiLipNet inside."""
        return self.bilipnet

    @property
    def mu(self) -> float:
        """Current guaranteed lower Lipschitz bound of g (f is PL with constant mu^2)."""
        return self.bilipnet.bounds()[0]

    @property
    def nu(self) -> float:
        """Current guaranteed upper Lipschitz bound of g (grad f is locally ~nu^2-smooth)."""
        return self.bilipnet.bounds()[1]

    def g(self, x: Tensor) -> Tensor:
        """g(x): [B, D] -> [B, D]."""
        return self.bilipnet(x)

    def forward(self, x: Tensor) -> Tensor:
        """f(x) = h(1/2 ||g(x)||^2) + c: [B, D] -> [B] (h the identity for quadratic growth)."""
        gx = self.bilipnet(x)
        return self.head(0.5 * (gx * gx).sum(dim=1)) + self.c

    def head(self, u: Tensor) -> Tensor:
        """The strictly increasing head h(u) [B] of u [B] >= 0 (identity for quadratic growth)."""
        if self.config.growth == "quadratic":
            return u
        q = self._exponent()
        s = torch.exp(self.log_s)
        return (2.0 * s / q) * torch.expm1(0.5 * q * torch.log1p(u / s))

    def _exponent(self) -> Tensor:
        """The learned exponent q (a 0-dim tensor), never below ``config.growth_min``."""
        q_min = self.config.growth_min
        return q_min + (2.0 - q_min) * torch.exp(self.log_q)

    @property
    def growth_exponent(self) -> float:
        """The exponent q of the far-field growth ``f ~ ||g||^q`` (2 for quadratic growth)."""
        return 2.0 if self.config.growth == "quadratic" else float(self._exponent().detach())

    def minimum_value(self) -> Tensor:
        """c = min_x f(x), a 0-dim tensor (the parameter itself)."""
        return self.c

    def frozen(self) -> contextlib.AbstractContextManager:
        """Context manager: reuse detached derived weights; see ``BiLipNet.frozen``."""
        return self.bilipnet.frozen()

    def minimizer(
        self,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """x* = g^{-1}(0) [D], detached; unconstrained (may lie outside any search box).

        Args:
            tol: Absolute tolerance on ``||g(x*)||`` (None: dtype defaults, see BiLipNet.inverse).
            max_iter: Davis-Yin iteration cap per monotone layer.
            x0: Optional warm start [D], e.g. the previous minimiser after a training step.
            rtol: Relative allowance ``||g(x*)|| <= tol + rtol ||x*||`` (see BiLipNet.inverse).

        Raises:
            PLNetInverseError: if ``||g(x*)||`` is above the tolerance.
        """
        zero = torch.zeros(1, self.config.dim, dtype=self.config.dtype, device=self.c.device)
        guess = None if x0 is None else x0.detach().reshape(1, self.config.dim)
        return self.bilipnet.inverse(zero, tol=tol, max_iter=max_iter, x0=guess, rtol=rtol).squeeze(0)

    def minimizer_with_grad(
        self,
        *,
        tol: Optional[float] = None,
        max_iter: int = 1000,
        x0: Optional[Tensor] = None,
        rtol: Optional[float] = None,
    ) -> Tensor:
        """x* [D] carrying the implicit gradient ``dx*/dtheta = -J^{-1} dg/dtheta`` (J = dg/dx at x*).

        The value is one Newton step from ``minimizer()``: ``x* - J^{-1} g(x*)`` with J detached
        and ``g(x*)`` differentiable in the parameters, so it equals x* to within
        ``tol / mu`` (usually better) and backpropagates exactly the implicit-function
        gradient. Use it to penalise a minimiser that leaves the search box, e.g.
        ``box_penalty(model.minimizer_with_grad()[None], low, high)``.
        Cost: one Jacobian (D vector-Jacobian products, batched) and one D x D solve.

        Raises:
            PLNetInverseError: if the inverse does not converge.
        """
        x_star = self.minimizer(tol=tol, max_iter=max_iter, x0=x0, rtol=rtol)
        with self.frozen():
            jac = torch.autograd.functional.jacobian(
                lambda x: self.bilipnet(x.unsqueeze(0)).squeeze(0), x_star, vectorize=True
            ).detach()
        gx = self.bilipnet(x_star.unsqueeze(0)).squeeze(0)
        return x_star - torch.linalg.solve(jac, gx)
