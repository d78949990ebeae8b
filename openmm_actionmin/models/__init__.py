"""Neural models: the PLNet surrogate (BiLipNet composed with a quadratic potential).

Modules: ``orthogonal`` (Cayley and Householder layers), ``monotone`` (monotone Lipschitz
layers), ``bilipnet`` (the invertible network g), ``plnet`` (the PLNet f and its config).
"""

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
