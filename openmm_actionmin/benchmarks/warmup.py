"""One-time costs paid before any timed run, so that no method's budget is charged for them.

The first ``torch.optim`` optimizer built in a process imports ``torch._dynamo``
(2.7 s on the project's CPU machines, torch 2.13; later optimizers take ~50 us).
A benchmark that runs several methods in one process would charge that to
whichever PLNet or Adam method comes first.
"""

from __future__ import annotations

import torch


def warm_up() -> None:
    """Pay torch's one-time optimizer import now (idempotent, a few seconds the first time)."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
