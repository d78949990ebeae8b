"""Torch devices asked for by name: parsed once, refused clearly when absent here."""

from __future__ import annotations

from typing import Optional, Union

import torch


def check_device(device: Optional[Union[str, torch.device]]) -> Optional[torch.device]:
    """The torch device named by ``device`` (``None`` stays ``None``).

    Args:
        device: A device name such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``, a
            ``torch.device``, or ``None``.

    Returns:
        The ``torch.device``, or ``None``.

    Raises:
        ValueError: a name torch does not know, or a CUDA device on a machine
            where torch sees none; the message says what to use instead.
    """
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA device here; use device='cpu'")
    return dev


def same_device(asked: torch.device, actual: torch.device) -> bool:
    """Whether ``actual`` is the device ``asked`` names (``"cuda"`` without an index matches any GPU)."""
    return asked.type == actual.type and (asked.index is None or actual.index is None or asked.index == actual.index)
