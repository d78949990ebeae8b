"""Ready-made systems: clusters, peptides and synthetic functions.

Each builder returns a :class:`System` holding the oracle, the natural search
space and the reference answer where one is known.
"""

from .base import System

__all__ = ["System"]
