"""Structure geometry: centring, Kabsch superposition, RMSD and fingerprints.

RMSD (:func:`kabsch_rmsd`, :func:`kabsch_rmsd_batch`): root-mean-square
deviation after optimal superposition by the Kabsch algorithm, which
removes translation and proper rotation (no reflection). Atom ``i`` of one
structure is matched with atom ``i`` of the other, so RMSD is *not*
permutation invariant; an optional atom subset is superposed and compared.
Computed in float64 numpy in the length units of the input.

Fingerprints (:func:`fingerprint`, :func:`fingerprint_batch`,
:func:`same_structure`): the sorted list of all pair distances (per type
pair for multi-component clusters) is invariant under rotation,
translation, reflection and permutation of like atoms. It is not a
complete invariant (rare homometric structures share it), so
:class:`~openmm_actionmin.search.steps.MinimaDatabase` also compares
energies.

Inputs are ``[N, 3]`` positions as numpy arrays, torch tensors (detached
and copied to the CPU) or nested sequences.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "align",
    "centre",
    "fingerprint",
    "fingerprint_batch",
    "kabsch_rmsd",
    "kabsch_rmsd_batch",
    "kabsch_rotation",
    "positions_array",
    "same_structure",
]


def positions_array(x: Any, *, batch: bool = False) -> np.ndarray:
    """Positions as a float64 numpy array of shape ``[N, 3]`` (or ``[B, N, 3]`` with ``batch``).

    Args:
        x: Array, torch tensor or nested sequence.
        batch: Expect a batch ``[B, N, 3]`` instead of one structure.

    Returns:
        The positions (a new array when a conversion was needed).

    Raises:
        ValueError: wrong shape, or a NaN/inf coordinate.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    ndim = 3 if batch else 2
    if arr.ndim != ndim or arr.shape[-1] != 3 or arr.shape[-2] < 1:
        want = "[B, N, 3]" if batch else "[N, 3]"
        raise ValueError(f"positions must have shape {want} with N >= 1, got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        atom = int(np.argwhere(~np.isfinite(arr))[0, -2])
        raise ValueError(f"positions contain NaN/inf (first at atom {atom})")
    return arr


def _subset(x: np.ndarray, atom_indices: Optional[Sequence[int]]) -> np.ndarray:
    if atom_indices is None:
        return x
    idx = np.asarray(atom_indices, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError("atom_indices must be a non-empty 1-D sequence of atom indices")
    return x[..., idx, :]


def centre(x: Any) -> np.ndarray:
    """``x [..., N, 3]`` translated so that its centroid is at the origin (a new array)."""
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    return arr - arr.mean(axis=-2, keepdims=True)


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Optimal proper rotation ``R [..., 3, 3]`` with ``a @ R ~ b`` for centred ``a``, ``b [..., N, 3]``."""
    u, _, vt = np.linalg.svd(np.swapaxes(a, -1, -2) @ b)
    sign = np.where(np.linalg.det(u @ vt) < 0.0, -1.0, 1.0)
    u = u.copy()
    u[..., :, -1] *= sign[..., None]
    return u @ vt


def kabsch_rotation(mobile: Any, target: Any, atom_indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """The proper rotation ``R [3, 3]`` that best superposes centred ``mobile`` onto centred ``target``.

    ``centre(mobile) @ R`` is the least-squares fit to ``centre(target)``
    (centroids and fit taken over ``atom_indices`` when given).

    Args:
        mobile: Positions ``[N, 3]``.
        target: Positions ``[N, 3]``.
        atom_indices: Atoms used for the fit (default: all).

    Returns:
        ``[3, 3]`` rotation matrix (determinant +1).
    """
    a, b = _pair(mobile, target, "kabsch_rotation")
    rot = _kabsch(centre(_subset(a, atom_indices)), centre(_subset(b, atom_indices)))
    return rot


def align(mobile: Any, target: Any, atom_indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """``mobile`` rigidly moved onto ``target`` (Kabsch over ``atom_indices``, all atoms moved).

    Args:
        mobile: Positions ``[N, 3]``.
        target: Positions ``[N, 3]``.
        atom_indices: Atoms whose fit defines the superposition (default: all).

    Returns:
        ``[N, 3]`` float64 array: ``mobile`` rotated and translated.
    """
    a, b = _pair(mobile, target, "align")
    sa, sb = _subset(a, atom_indices), _subset(b, atom_indices)
    ca, cb = sa.mean(axis=0), sb.mean(axis=0)
    rot = _kabsch(sa - ca, sb - cb)
    return (a - ca) @ rot + cb


def _pair(a: Any, b: Any, name: str) -> Tuple[np.ndarray, np.ndarray]:
    pa, pb = positions_array(a), positions_array(b)
    if pa.shape != pb.shape:
        raise ValueError(f"{name} needs the same number of atoms, got {pa.shape[0]} and {pb.shape[0]}")
    return pa, pb


def kabsch_rmsd_batch(frames: Any, reference: Any, atom_indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """Kabsch RMSD of every structure of a batch to one reference.

    Args:
        frames: Positions ``[B, N, 3]``.
        reference: Positions ``[N, 3]``, same units.
        atom_indices: Atoms superposed and compared (default: all).

    Returns:
        ``[B]`` float64 RMSD in the length units of the input.
    """
    fa = positions_array(frames, batch=True)
    ref = positions_array(reference)
    if fa.shape[1:] != ref.shape:
        raise ValueError(f"kabsch_rmsd needs the same number of atoms, got {fa.shape[1]} and {ref.shape[0]}")
    pa = centre(_subset(fa, atom_indices))
    pb = centre(_subset(ref, atom_indices))
    rot = _kabsch(pa, np.broadcast_to(pb, pa.shape))
    diff = pa @ rot - pb
    return np.sqrt((diff * diff).sum(axis=(-2, -1)) / pa.shape[-2])


def kabsch_rmsd(a: Any, b: Any, atom_indices: Optional[Sequence[int]] = None) -> float:
    """RMSD between two structures after optimal superposition (Kabsch).

    Removes translation and proper rotation (no reflection). It is *not*
    permutation invariant: atom ``i`` of ``a`` is matched with atom ``i`` of
    ``b``. Use :func:`same_structure` to compare clusters of identical atoms.

    Args:
        a: Positions ``[N, 3]``.
        b: Positions ``[N, 3]``, same units as ``a``.
        atom_indices: Atoms superposed and compared (default: all).

    Returns:
        RMSD in the length units of the input.
    """
    pa, pb = _pair(a, b, "kabsch_rmsd")
    return float(kabsch_rmsd_batch(pa[None], pb, atom_indices)[0])


# ------------------------------------------------------------ fingerprints
def _pair_distances(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt((diff * diff).sum(-1))


def fingerprint(x: Any, types: Optional[Sequence[int]] = None, decimals: Optional[int] = 4) -> np.ndarray:
    """Rotation-, translation-, reflection- and permutation-invariant fingerprint.

    The sorted pair distances, grouped by unordered type pair ``(a, b)``
    with ``a <= b`` in increasing order (so like atoms may be permuted, unlike
    atoms may not be swapped).

    Args:
        x: Positions ``[N, 3]``.
        types: Type index per atom ``[N]`` (``None``: one type).
        decimals: Round to this many decimals (``None``: no rounding). Rounding
            makes fingerprints hashable-equal for identical minima but can split
            values near a rounding boundary; use :func:`same_structure` for a
            tolerance comparison.

    Returns:
        ``[N (N - 1) / 2]`` float64 array.
    """
    x = positions_array(x)
    n = x.shape[0]
    d = _pair_distances(x)
    i, j = np.triu_indices(n, 1)
    if types is None:
        out = np.sort(d[i, j])
    else:
        t = np.asarray(types, dtype=np.int64)
        if t.shape != (n,):
            raise ValueError(f"types must have shape [{n}], got {t.shape}")
        lo = np.minimum(t[i], t[j])
        hi = np.maximum(t[i], t[j])
        key = lo * (int(t.max()) + 1) + hi
        dij = d[i, j]
        out = np.concatenate([np.sort(dij[key == k]) for k in np.unique(key)])
    return np.round(out, decimals) if decimals is not None else out


def fingerprint_batch(x: Any, types: Optional[Sequence[int]] = None):
    """Unrounded fingerprints of a batch in torch (same ordering as :func:`fingerprint`).

    Args:
        x: Positions ``[B, N, 3]`` (torch tensor or array).
        types: Type index per atom ``[N]`` (``None``: one type).

    Returns:
        ``torch.Tensor [B, N (N - 1) / 2]``.
    """
    import torch

    x = torch.as_tensor(x)
    n = x.shape[1]
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    d = torch.linalg.vector_norm(x[:, i] - x[:, j], dim=-1)
    if types is None:
        return torch.sort(d, dim=1).values
    t = torch.as_tensor(list(types), dtype=torch.long, device=x.device)
    lo = torch.minimum(t[i], t[j])
    hi = torch.maximum(t[i], t[j])
    key = lo * (int(t.max()) + 1) + hi
    parts = [torch.sort(d[:, key == k], dim=1).values for k in torch.unique(key)]
    return torch.cat(parts, dim=1)


def same_structure(a: Any, b: Any, tol: float = 1e-3, types: Optional[Sequence[int]] = None) -> bool:
    """Whether two structures are the same up to rotation, translation, reflection and permutation.

    Compares unrounded fingerprints: the largest difference between matching
    sorted pair distances must be below ``tol`` (length units of ``a``).

    Args:
        a: Positions ``[N, 3]``.
        b: Positions ``[N, 3]``.
        tol: Tolerance on pair distances.
        types: Type index per atom ``[N]``, shared by both.

    Returns:
        ``True`` if the fingerprints agree within ``tol``.
    """
    fa = fingerprint(a, types, decimals=None)
    fb = fingerprint(b, types, decimals=None)
    if fa.shape != fb.shape:
        return False
    return bool(np.max(np.abs(fa - fb), initial=0.0) < tol)
