"""The check every scheduler makes of its first argument."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer


def check_optimizer(owner: str, optimizer: Any) -> Optimizer:
    """Refuses anything but a ``torch.optim.Optimizer``, saying what was given and what to pass."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    given = type(optimizer).__name__
    if callable(optimizer) and hasattr(optimizer, "spec"):
        hint = " (that is a JAX schedule; a torch scheduler wraps the optimizer: WSDLR(optimizer, spec=...))"
    elif hasattr(optimizer, "__next__") or given in ("generator", "list", "tuple"):
        hint = " (model parameters? build the optimizer first: WSDLR(torch.optim.AdamW(params, lr=...), ...))"
    else:
        hint = ""
    raise TypeError(
        f"{owner} needs an optimizer (a torch.optim.Optimizer) as its first argument, got {given}{hint}"
    )
