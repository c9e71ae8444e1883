"""Hypothesis profiles: random exploration locally, a fixed derandomized search in CI; and a GPU
shared fairly between jax and torch in one test process."""

from __future__ import annotations

import os

from hypothesis import settings

# jax takes 75% of a GPU's memory when it first touches it, leaving torch's CUDA tests the rest; in a
# test process that runs both, each allocates what it uses. Set before any test imports jax.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
