"""Neural models: the PLNet surrogate (BiLipNet composed with a quadratic potential)."""

from .plnet import (
    BiLipNet,
    CayleyOrthogonal,
    HouseholderOrthogonal,
    MonotoneLayer,
    PLNet,
    PLNetConfig,
    PLNetInverseError,
    box_penalty,
    cayley,
    default_inverse_tol,
)

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
