"""Orthogonal layers of the BiLipNet: Cayley and Householder, and the semi-orthogonal helpers.

``O(x) = R x + b`` with R orthogonal, so ``||O(x1) - O(x2)|| = ||x1 - x2||`` and the inverse is
exact (``R^T (y - b)``). Two parametrisations of R:

* :class:`CayleyOrthogonal`: the Cayley transform of a free D x D matrix (one dense D x D solve
  per evaluation, shared by the batch);
* :class:`HouseholderOrthogonal`: a product of k Householder reflections (O(k D) per point, no
  solve), used above :data:`AUTO_HOUSEHOLDER_DIM` with ``orthogonal="auto"``.

The monotone layers need tall matrices with spectral norm 1: :func:`_semi_orthogonal` makes them
from a free matrix by a Cayley transform or a QR factorisation.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "AUTO_HOUSEHOLDER_DIM",
    "CayleyOrthogonal",
    "HouseholderOrthogonal",
    "ORTHOGONAL_KINDS",
    "SEMI_ORTHOGONAL_KINDS",
    "cayley",
    "inverse_cayley",
    "isotropic_tall_init",
    "qr_orthonormal",
]


ORTHOGONAL_KINDS = ("cayley", "householder", "auto")
SEMI_ORTHOGONAL_KINDS = ("cayley", "qr")
# With orthogonal="auto", dense Cayley is used up to this dimension, Householder above it.
AUTO_HOUSEHOLDER_DIM = 256


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
