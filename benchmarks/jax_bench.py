"""JAX benchmarks: whole-array evaluation, an adamw update, and compile time against checkpoints."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._timing import Row, interleaved_medians
from wsd_jax import wsd_schedule

PEAK = 3e-4


def _join_schedules_equivalent(total: int, warmup: int, decay: int) -> optax.Schedule:
    """The same curve (linear warmup from 0, constant, linear decay to 0) composed the usual way."""
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, PEAK, warmup),
            optax.constant_schedule(PEAK),
            optax.linear_schedule(PEAK, 0.0, decay),
        ],
        boundaries=[warmup, total - decay],
    )


def copy_bandwidth(nbytes: int = 400 * 2**20, repeats: int = 7) -> float:
    """Bytes per second moved by a plain copy (read + write counted) in the memory jax computes in:
    host memory through numpy on a CPU, the device's memory through a jitted copy on a GPU."""
    if jax.default_backend() == "cpu":
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        t = interleaved_medians({"copy": lambda: np.copyto(dst, src)}, repeats)["copy"]
        return 2 * nbytes / t
    x = jnp.ones(nbytes // 4, jnp.float32)
    copy = jax.jit(lambda a: a + 0.0)  # one read, one write; XLA cannot elide it (a fresh output)
    copy(x).block_until_ready()
    inner = 20  # many copies per timing: one launch on a GPU is shorter than the timer's overhead
    t = interleaved_medians({"copy": lambda: [copy(x) for _ in range(inner)][-1].block_until_ready()},
                            repeats)["copy"]  # fmt: skip
    return 2 * nbytes * inner / t


def whole_array(n_steps: int, repeats: int) -> list[Row]:
    total, warmup, decay = n_steps, n_steps // 100, n_steps // 10
    ours = jax.jit(wsd_schedule(PEAK, total_steps=total, warmup_steps=warmup, decay_steps=decay,
                                decay_shape="linear"))  # fmt: skip
    join = jax.jit(_join_schedules_equivalent(total, warmup, decay))
    steps = jnp.arange(n_steps, dtype=jnp.int32)
    # Same curve (at the peak's scale: near the floor optax's linear schedule loses relative
    # precision to cancellation in float32, ours does not).
    np.testing.assert_allclose(np.asarray(ours(steps[::997])), np.asarray(join(steps[::997])),
                               rtol=1e-5, atol=1e-6 * PEAK)  # fmt: skip
    # The cheapest kernel with the same inputs and outputs: what XLA reaches on this machine for an
    # element-wise int32 -> float32 map (fresh output buffer included), whatever the arithmetic.
    trivial = jax.jit(lambda c: c.astype(jnp.float32) * PEAK)
    for f in (ours, join, trivial):
        f(steps).block_until_ready()
    t = interleaved_medians(
        {
            "ours": lambda: ours(steps).block_until_ready(),
            "join": lambda: join(steps).block_until_ready(),
            "trivial": lambda: trivial(steps).block_until_ready(),
        },
        repeats,
    )
    bandwidth = copy_bandwidth()
    floor = (4 * n_steps + 4 * n_steps) / bandwidth  # int32 steps in, float32 rates out
    speedup, over_floor = t["join"] / t["ours"], t["ours"] / floor
    return [
        Row("1 whole array", f"ours, {n_steps:,} steps under jit", f"{t['ours'] * 1e3:.2f} ms"),
        Row("1 whole array", "optax.join_schedules, same curve", f"{t['join'] * 1e3:.2f} ms"),
        Row("1 whole array", "speed-up over join_schedules", f"{speedup:.2f}x"),
        Row("1 whole array", f"memory floor ({bandwidth / 1e9:.1f} GB/s copy, {jax.default_backend()})",
            f"{floor * 1e3:.2f} ms"),
        Row("1 whole array", "ours / memory floor", f"{over_floor:.2f}x"),
        Row("1 whole array", "XLA's cheapest int32->float32 map, same sizes", f"{t['trivial'] * 1e3:.2f} ms"),
        Row("1 whole array", "ours / cheapest XLA map", f"{t['ours'] / t['trivial']:.2f}x"),
        Row("1 whole array", "join_schedules / cheapest XLA map", f"{t['join'] / t['trivial']:.2f}x"),
    ]  # fmt: skip


def adamw_update(repeats: int, n_params: int = 1 << 20, inner: int = 50) -> list[Row]:
    total = 100_000
    params = {"w": jnp.ones((n_params // 1024, 1024), jnp.float32)}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    variants = {
        "constant": optax.adamw(PEAK),
        "ours": optax.adamw(wsd_schedule(PEAK, total_steps=total, warmup_steps=1000, decay_ratio=0.2)),
        "join": optax.adamw(_join_schedules_equivalent(total, 1000, total // 5)),
        # the same run counted in tokens, its batch growing from 1/4 to the full 1024 over 2000 steps
        "tokens": optax.adamw(
            wsd_schedule(
                PEAK,
                total_steps=256 * 1000 + 512 * 1000 + 1024 * (total - 2000),
                units="tokens",
                warmup_steps=256 * 1000,
                decay_ratio=0.2,
                tokens_per_step=[(0, 256), (1000, 512), (2000, 1024)],  # the spec's clock
            )
        ),
    }
    runners = {}
    for name, tx in variants.items():
        # Donated, as in a real training loop: each update writes into the old state's buffers, so
        # the timing is the update's and not the allocator's (fresh 4 MB outputs page-fault).
        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(p, s, tx=tx):
            updates, s = tx.update(grads, s, p)
            return optax.apply_updates(p, updates), s

        state = [jax.tree.map(jnp.copy, params), tx.init(params)]  # donated: one copy each
        state[:] = step(*state)
        jax.block_until_ready(state)

        def run(step=step, state=state):
            for _ in range(inner):
                state[:] = step(*state)
            jax.block_until_ready(state)

        runners[name] = run
    t = interleaved_medians(runners, repeats)
    ratio, vs_join, tokens = t["ours"] / t["constant"], t["ours"] / t["join"], t["tokens"] / t["ours"]
    per = {k: v / inner * 1e6 for k, v in t.items()}
    return [
        Row("2 adamw update", f"constant rate, {n_params:,} params", f"{per['constant']:.0f} us"),
        Row("2 adamw update", "WSD schedule", f"{per['ours']:.0f} us"),
        Row("2 adamw update", "join_schedules", f"{per['join']:.0f} us"),
        Row("2 adamw update", "ours / constant", f"{ratio:.3f}", "<= 1.01",
            "met" if ratio <= 1.01 else f"missed by {ratio - 1:.1%}",
            why="the schedule is one scalar a step: an optimizer update must not notice it"),
        Row("2 adamw update", "ours / join_schedules", f"{vs_join:.3f}"),
        Row("2 adamw update", "in tokens with a batch ramp / in steps", f"{tokens:.3f}", "<= 1.02",
            "met" if tokens <= 1.02 else f"missed by {tokens - 1:.1%}",
            why="counting tokens is a few integer ops a step, inside the same jitted update"),
    ]  # fmt: skip


def compile_time(repeats: int) -> list[Row]:
    x = jnp.arange(4096, dtype=jnp.int32)
    times = {}
    for k in (1, 2, 4, 8):
        samples = []
        for r in range(repeats):
            # A new schedule object each time: jax caches compiled functions by identity.
            sched = wsd_schedule(PEAK + r * 1e-9, total_steps=1 << 20, warmup_steps=100, checkpoints=k)
            start = time.perf_counter()
            jax.jit(sched).lower(x).compile()
            samples.append(time.perf_counter() - start)
        times[k] = float(np.median(samples))
    ratio = times[8] / times[1]
    rows = [Row("3 compile", f"{k} period(s)", f"{times[k] * 1e3:.1f} ms") for k in times]
    why = "WSD-S runs have many periods; the lookup is branch-free, so compile time must not grow with them"
    rows.append(Row("3 compile", "8 periods / 1 period", f"{ratio:.2f}", "<= 1.5",
                    "met" if ratio <= 1.5 else f"missed by {ratio / 1.5:.2f}x", why))  # fmt: skip
    return rows


def gpu_update(repeats: int) -> list[Row]:
    """The jitted adamw update on a GPU, schedule against constant; skipped without one."""
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        return [Row("5 jax GPU", "skipped: jax sees no GPU on this machine", "-")]
    with jax.default_device(gpus[0]):
        rows = adamw_update(repeats, n_params=1 << 24)
    return [Row("5 jax GPU", r.what, r.value, r.target, r.verdict, r.why) for r in rows]
