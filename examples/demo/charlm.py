"""A small byte-level transformer language model and its data, for the demo (``make demo``).

The text is the Python standard library's own source files: every machine with Python has them, so
the demo downloads nothing. Its loss falls like LM pre-training's (a power law in the learning-rate
area, with a drop at each cooldown), which is what the planner's laws describe.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

VOCAB = 256  # bytes
CONTEXT, WIDTH, HEADS, LAYERS = 64, 64, 4, 2
TEXT_BYTES = 2_000_000


def stdlib_text(limit: int = TEXT_BYTES) -> np.ndarray:
    """The first ``limit`` bytes of the standard library's ``*.py`` files, in name order, as uint8."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, size = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        size += len(data)
        if size >= limit:
            break
    if size < 100 * CONTEXT:
        raise RuntimeError(
            f"found only {size} bytes of Python source under {root}; the demo needs its stdlib"
        )
    return np.frombuffer(b"".join(chunks)[:limit], dtype=np.uint8)


class Block(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.norm1 = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(HEADS, WIDTH, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.up = nnx.Linear(WIDTH, 4 * WIDTH, rngs=rngs)
        self.down = nnx.Linear(4 * WIDTH, WIDTH, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attention(self.norm1(x), mask=mask)
        return x + self.down(nnx.gelu(self.up(self.norm2(x))))


class CharLM(nnx.Module):
    """Embeddings, ``LAYERS`` pre-norm transformer blocks, a tied read-out."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.embed = nnx.Embed(VOCAB, WIDTH, rngs=rngs)
        self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (CONTEXT, WIDTH)))
        self.blocks = nnx.List([Block(rngs) for _ in range(LAYERS)])
        self.norm = nnx.LayerNorm(WIDTH, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.position[: tokens.shape[-1]]
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks:
            x = block(x, mask)
        return self.embed.attend(self.norm(x))


def next_byte_loss(model: CharLM, batch: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats per byte) of predicting each byte from the ones before it."""
    logits = model(batch[:, :-1])
    targets = batch[:, 1:].astype(jnp.int32)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def windows(text: jax.Array, starts: jax.Array) -> jax.Array:
    """``CONTEXT + 1`` bytes from each start (inputs and their next-byte targets)."""
    return jax.vmap(lambda s: jax.lax.dynamic_slice(text, (s,), (CONTEXT + 1,)))(starts).astype(jnp.int32)
