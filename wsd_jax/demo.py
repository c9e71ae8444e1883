"""The main job (``make demo``): a WSD trunk, cooldown branches and a cosine baseline on a Flax model.

A small Flax NNX network learns a noisy synthetic regression (data made here, no downloads). The WSD
trunk is checkpointed with Orbax; cooldowns are branched from two of its stable checkpoints into
their own folders (the trunk's are left untouched) and compared with the trunk's own final cooldown
and with a cosine schedule of the same length. Prints progress and a results table, and writes PNG
plots of the learning rates and the evaluation losses.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from wsd_core import WSDSpec
from wsd_core._plot import plot_series
from wsd_jax._checkpoint import WSDCheckpointManager
from wsd_jax._hyperparams import learning_rate_from_state
from wsd_jax._schedule import wsd_schedule

PEAK = 3e-3
IN, HIDDEN, BATCH, NOISE = 16, 64, 32, 0.5


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.l1 = nnx.Linear(IN, HIDDEN, rngs=rngs)
        self.l2 = nnx.Linear(HIDDEN, HIDDEN, rngs=rngs)
        self.out = nnx.Linear(HIDDEN, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.gelu(self.l2(nnx.gelu(self.l1(x)))))[:, 0]


def _teacher(x: jax.Array) -> jax.Array:
    w = jax.random.normal(jax.random.key(7), (IN,)) / IN**0.5
    return jnp.sin(3 * x @ w) + 0.5 * jnp.cos(x[:, 0] * x[:, 1])


def _batch(step: jax.Array) -> tuple[jax.Array, jax.Array]:
    k = jax.random.fold_in(jax.random.key(1), step)  # data depends on the step: branches resumable
    x = jax.random.normal(k, (BATCH, IN))
    return x, _teacher(x) + NOISE * jax.random.normal(jax.random.fold_in(k, 1), (BATCH,))


EVAL_X = jax.random.normal(jax.random.key(2), (2048, IN))
EVAL_Y = _teacher(EVAL_X)


def _make(schedule: Any) -> tuple[MLP, nnx.Optimizer]:
    model = MLP(nnx.Rngs(0))
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=schedule, weight_decay=1e-4
    )
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def _train_step(model: MLP, optimizer: nnx.Optimizer, step: jax.Array) -> None:
    x, y = _batch(step)
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)


@nnx.jit
def _eval_loss(model: MLP) -> jax.Array:
    return jnp.mean((model(EVAL_X) - EVAL_Y) ** 2)


def _train(name: str, model: MLP, optimizer: nnx.Optimizer, start: int, stop: int, every: int,
           manager: WSDCheckpointManager | None = None, extra_saves: Sequence[int] = ()
           ) -> dict[str, list[float]]:  # fmt: skip
    """Trains updates start..stop-1, logging the rate each used and the eval loss every `every`.

    With a manager, saves on its plan and at `extra_saves` (e.g. the steps branches start from).
    """
    log: dict[str, list[float]] = {"step": [], "lr": [], "loss_step": [], "loss": []}
    if start > 0:  # a branch's curve starts at its branch point, from the restored state
        log["loss_step"].append(start)
        log["loss"].append(float(_eval_loss(model)))
    t0 = time.perf_counter()
    for s in range(start, stop):
        _train_step(model, optimizer, jnp.asarray(s, jnp.int32))
        log["step"].append(s)
        log["lr"].append(float(learning_rate_from_state(optimizer.opt_state)))
        done = s + 1
        if done % every == 0 or done == stop:
            log["loss_step"].append(done)
            log["loss"].append(float(_eval_loss(model)))
        if manager is not None and (manager.should_save(done) or done in extra_saves):
            manager.save(done, nnx.to_pure_dict(nnx.state((model, optimizer))), force=True)
        if done % max(1, (stop - start) // 4) == 0 or done == stop:
            print(f"  [{name}] step {done:>6}/{stop}  lr {log['lr'][-1]:.2e}  eval loss "
                  f"{log['loss'][-1]:.4f}  ({time.perf_counter() - t0:.1f}s)", flush=True)  # fmt: skip
    if manager is not None:
        manager.wait_until_finished()
    return log


def _restore(trunk_dir: Path, spec: WSDSpec, step: int, schedule: Any) -> tuple[MLP, nnx.Optimizer]:
    """The trunk's checkpoint at `step`, restored into a model and an optimizer on `schedule`."""
    model, optimizer = _make(schedule)
    state = nnx.state((model, optimizer))
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), nnx.to_pure_dict(state))
    with WSDCheckpointManager(trunk_dir, spec, read_only=True) as manager:  # a reader: never deletes
        restored = manager.restore(abstract, step, allow_spec_change=True)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update((model, optimizer), state)
    return model, optimizer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output", help="folder for checkpoints and PNG plots")
    parser.add_argument("--total-steps", type=int, default=3000, help="trunk and cosine length")
    args = parser.parse_args(argv)
    out, total = Path(args.out).absolute(), args.total_steps
    _fresh_checkpoint_folder(out / "checkpoints")
    warmup, cooldown, every = total // 30, total // 5, max(1, total // 60)
    trunk_spec = WSDSpec(total, warmup_steps=warmup, decay_steps=cooldown, decay_shape="1-sqrt")
    branch_points = [total // 3, (2 * total) // 3 - cooldown // 2]
    print(f"WSD trunk:\n{trunk_spec.phase_table()}\n")

    trunk_dir = out / "checkpoints" / "trunk"
    print(f"Training the trunk ({total} steps, checkpoints in {trunk_dir})", flush=True)
    model, optimizer = _make(wsd_schedule(PEAK, spec=trunk_spec))
    # keep every trunk checkpoint: any of them may become a branch point later
    with WSDCheckpointManager(trunk_dir, trunk_spec, interval=every * 5, max_to_keep=None) as manager:
        logs = {"WSD trunk": _train("trunk", model, optimizer, 0, total, every, manager, branch_points)}

    rows = [("WSD trunk", 0, total, logs["WSD trunk"]["loss"][-1])]
    marks = [(float(at), f"branch at {at}") for at in branch_points]
    for at in branch_points:
        spec = trunk_spec.branch_cooldown(at, cooldown)
        name = f"cooldown from {at}"
        print(f"Branching a {cooldown}-step cooldown from the trunk's step-{at} checkpoint", flush=True)
        schedule = wsd_schedule(PEAK, spec=spec)
        model, optimizer = _restore(trunk_dir, trunk_spec, at, schedule)
        with WSDCheckpointManager(out / "checkpoints" / f"cooldown-{at}", spec) as manager:
            logs[name] = _train(name, model, optimizer, at, at + cooldown, every, manager)
        rows.append((name, at, at + cooldown, logs[name]["loss"][-1]))

    print("Training the cosine baseline", flush=True)
    cosine = optax.warmup_cosine_decay_schedule(0.0, PEAK, warmup, total, end_value=0.0)
    model, optimizer = _make(cosine)
    logs["cosine"] = _train("cosine", model, optimizer, 0, total, every)
    rows.append(("cosine", 0, total, logs["cosine"]["loss"][-1]))

    print(f"\n{'run':<24}{'from step':>10}{'to step':>10}{'updates':>9}{'final eval loss':>18}")
    for name, start, stop, loss in rows:
        print(f"{name:<24}{start:>10}{stop:>10}{stop - start:>9}{loss:>18.4f}")
    print(_takeaway(rows))
    rates = plot_series({k: (v["step"], v["lr"]) for k, v in logs.items()}, out / "learning_rates.png",
                        title="Learning rate per update", ylabel="learning rate", marks=marks)  # fmt: skip
    losses = plot_series({k: (v["loss_step"], v["loss"]) for k, v in logs.items()}, out / "eval_losses.png",
                         title="Evaluation loss", ylabel="eval MSE", log_y=True, marks=marks)  # fmt: skip
    print(f"\nwrote {rates}\nwrote {losses}")


def _takeaway(rows: list[tuple[str, int, int, float]]) -> str:
    """One line: how the finished models compare, in updates and loss."""
    trunk, cosine = rows[0], rows[-1]
    branches = ", ".join(f"{r[3]:.4f} after {r[2]} updates" for r in rows[1:-1])
    change = 100.0 * (trunk[3] - cosine[3]) / cosine[3]
    side = "below" if change < 0 else "above"
    return (
        f"Takeaway: one WSD trunk gave a finished model at every cooldown ({branches}) without retraining; "
        f"at the full {trunk[2]} updates WSD ends {abs(change):.1f}% {side} cosine "
        f"({trunk[3]:.4f} vs {cosine[3]:.4f})."
    )


_MARKER = ".wsd-demo"


def _fresh_checkpoint_folder(folder: Path) -> None:
    """Replaces the demo's own checkpoints from an earlier run (never a folder it did not create)."""
    if folder.exists():
        if not (folder / _MARKER).exists():
            raise SystemExit(f"{folder} exists and was not written by the demo; choose another --out")
        shutil.rmtree(folder)
        print(f"(replacing the previous demo run's checkpoints in {folder})")
    folder.mkdir(parents=True)
    (folder / _MARKER).write_text("written by python -m wsd_jax.demo; replaced on every run\n")


if __name__ == "__main__":
    main()
