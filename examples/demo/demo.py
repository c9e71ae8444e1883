"""The main job (``make demo``): train a small language model on a WSD trunk, branch cooldowns off it,
and predict the runs not yet trained from the ones that were.

A byte-level transformer (``charlm.py``, beside this file) learns the Python standard library's own source
files (no downloads). The WSD trunk is checkpointed with Orbax; a cooldown is branched from one of
its stable checkpoints (restored read-only: the trunk's folder is never touched). Then the planner
(``wsd_plan``) fits the Multi-Power Law to the trunk and that branch, predicts a second
cooldown and a cosine baseline *before* they are trained, trains them, and prints predicted beside
measured. While the trunk trains, a ``Forecast`` (the trunk alone, and a prior from the published
curves of another model) says what cooling down at each branch step would give; the cooldowns run
later are compared with it. Writes PNG plots of the learning rates and of the measured and predicted losses.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import charlm as lm  # beside this file (run as a script, its folder is on sys.path)
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from wsd_core import WSDSpec
from wsd_core.plot import plot_series
from wsd_jax import WSDCheckpointManager, learning_rate_from_state, wsd_schedule
from wsd_plan import (
    CooldownCandidate,
    CooldownPlan,
    Forecast,
    LossLawFit,
    LossRun,
    branch_rates,
    fit_loss_law,
    learning_rates,
    plan_cooldown,
    published_runs,
)

PEAK = 3e-3
BATCH, EVAL_WINDOWS, EVAL_BYTES = 32, 128, 200_000

TEXT = lm.stdlib_text()
TRAIN = jnp.asarray(TEXT[:-EVAL_BYTES])
# A fixed held-out set (the last files read), so every run's loss is measured on the same bytes.
EVAL = lm.windows(
    jnp.asarray(TEXT[-EVAL_BYTES:]), jnp.linspace(0, EVAL_BYTES - lm.CONTEXT - 2, EVAL_WINDOWS).astype(int)
)


def _make(schedule: Any) -> tuple[lm.CharLM, nnx.Optimizer]:
    model = lm.CharLM(nnx.Rngs(0))
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=schedule, weight_decay=0.01
    )
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def _train_step(model: lm.CharLM, optimizer: nnx.Optimizer, step: jax.Array) -> None:
    key = jax.random.fold_in(jax.random.key(1), step)  # data depends on the step: branches resumable
    batch = lm.windows(TRAIN, jax.random.randint(key, (BATCH,), 0, TRAIN.size - lm.CONTEXT - 1))
    grads = nnx.grad(lm.next_byte_loss)(model, batch)
    optimizer.update(model, grads)


@nnx.jit
def _eval_loss(model: lm.CharLM) -> jax.Array:
    return lm.next_byte_loss(model, EVAL)


def _train(name: str, model: lm.CharLM, optimizer: nnx.Optimizer, start: int, stop: int, every: int,
           manager: WSDCheckpointManager | None = None, extra_saves: Sequence[int] = (),
           watch: Callable[[int, float], None] | None = None) -> dict[str, list[float]]:  # fmt: skip
    """Trains updates start..stop-1, logging the rate each used and the eval loss every `every`.

    With a manager, saves on its plan and at `extra_saves` (e.g. the steps branches start from);
    `watch(updates, loss)` sees every eval loss as it is measured (the forecast's feed).
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
            if watch is not None:
                watch(done, log["loss"][-1])
        if manager is not None and (manager.should_save(done) or done in extra_saves):
            manager.save(done, nnx.to_pure_dict(nnx.state((model, optimizer))), force=True)
        if done % max(1, (stop - start) // 4) == 0 or done == stop:
            print(f"  [{name}] step {done:>6}/{stop}  lr {log['lr'][-1]:.2e}  eval loss "
                  f"{log['loss'][-1]:.4f}  ({time.perf_counter() - t0:.1f}s)", flush=True)  # fmt: skip
    if manager is not None:
        manager.wait_until_finished()
    return log


def _restore(trunk_dir: Path, spec: WSDSpec, step: int, schedule: Any) -> tuple[lm.CharLM, nnx.Optimizer]:
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
    parser.add_argument("--total-steps", type=int, default=1000, help="trunk and cosine length")
    parser.add_argument("--peak", type=float, default=PEAK, help="the stable learning rate")
    args = parser.parse_args(argv)
    peak = args.peak
    out, total = Path(args.out).absolute(), args.total_steps
    _fresh_checkpoint_folder(out / "checkpoints")
    warmup, cooldown, every = total // 30, total // 5, max(1, total // 50)
    trunk_spec = WSDSpec(total, warmup_steps=warmup, decay_steps=cooldown, decay_shape="1-sqrt")
    first, second = total // 3, (2 * total) // 3 - cooldown // 2
    print(
        f"A {lm.LAYERS}-layer byte-level transformer on {TEXT.size:,} bytes of the Python standard library."
    )
    print(f"WSD trunk:\n{trunk_spec.phase_table()}\n")

    # Cool down now? A forecast from the trunk alone, with a prior from another model: the published
    # 25M LM's runs (other data, size and peak rate), asked at each step a branch will start from
    forecast = Forecast(trunk_spec, peak=peak, prior=_published_prior())
    forecasts: dict[str, CooldownCandidate] = {}

    def watch(done: int, loss: float) -> None:
        forecast.observe(done - 1, loss)  # the planner's convention: the last update's index
        for at in (first, second):  # at the last eval before a branch step: a cooldown from there
            if done <= at < done + every:
                (c,) = forecast.plan(at_steps=[at], lengths=[cooldown]).candidates  # 1-sqrt to 0, as branches
                forecasts[f"cooldown from {at}"] = c
                ends = f"ends at {c.final_loss:.4f} [{c.low:.4f}, {c.high:.4f}]"
                print(f"  [trunk] step {done:>6}: forecast, trunk alone: a {cooldown}-update cooldown from "
                      f"step {at} {ends}", flush=True)  # fmt: skip
                if at == second:  # the decision a run faces: which cooldown for the full budget
                    # (the trunk's own decay starts at total - cooldown: branches may not start later)
                    choice = forecast.plan(budgets=[total], lengths=[cooldown],
                                           shapes=["linear", "1-sqrt", "cosine"])  # fmt: skip
                    print(_decision(choice, total, done), flush=True)

    trunk_dir = out / "checkpoints" / "trunk"
    print(f"Training the trunk ({total} steps, checkpoints in {trunk_dir})", flush=True)
    model, optimizer = _make(wsd_schedule(peak, spec=trunk_spec))
    # keep every trunk checkpoint: any of them may become a branch point later
    with WSDCheckpointManager(trunk_dir, trunk_spec, interval=every * 10, max_to_keep=None) as manager:
        trunk_log = _train("trunk", model, optimizer, 0, total, every, manager, [first, second], watch)
    logs = {"WSD trunk": trunk_log}

    branches = {f"cooldown from {at}": trunk_spec.branch_cooldown(at, cooldown) for at in (first, second)}
    name = f"cooldown from {first}"
    logs[name] = _branch(name, trunk_dir, trunk_spec, branches[name], out, every, peak)

    # --- predict the runs not trained yet, from the two that were --------------------------------
    rates = {"WSD trunk": learning_rates(trunk_spec, total, peak=peak)}
    rates.update({k: branch_rates(rates["WSD trunk"], spec, peak) for k, spec in branches.items()})
    cosine = optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.0)
    rates["cosine"] = np.asarray(jax.vmap(cosine)(jnp.arange(total)), np.float64)
    with warnings.catch_warnings():  # what the runs leave undetermined is printed with the fit, below
        warnings.simplefilter("ignore", UserWarning)
        fit = fit_loss_law([_loss_run(k, logs[k], rates[k], warmup) for k in logs], "multi-power")
    print(f"\nMulti-Power Law fit on the trunk and the first cooldown (PredE {fit.fit_error['PredE']:.4f}):")
    print("  " + ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items()))
    for note in fit.notes:
        print(f"  note: {note}")
    predicted, intervals = {}, {}
    for k in ("WSD trunk", name, f"cooldown from {second}", "cosine"):
        steps = np.arange(
            max(warmup, 1 if k not in branches else branches[k].start_step), len(rates[k]) + 1, every
        )
        predicted[k] = (steps, fit.predict(rates[k], steps - 1, warmup_steps=warmup))
        low, high = fit.predict_interval(rates[k], steps[-1:] - 1, warmup_steps=warmup)
        intervals[k] = (float(low[0]), float(high[0]))
    ahead = {k: float(predicted[k][1][-1]) for k in (f"cooldown from {second}", "cosine")}
    print(
        "Predicted before training (90% intervals): "
        + ", ".join(
            f"{k} ends at {v:.4f} [{intervals[k][0]:.4f}, {intervals[k][1]:.4f}]" for k, v in ahead.items()
        ),
        flush=True,
    )
    # Which cooldown for which budget: every run of 2/3 or all of the trunk's length, ranked per budget
    # (a run that ends later always ends lower, so runs of different lengths are never ranked together)
    stable = WSDSpec(total, warmup_steps=warmup, decay_steps=0)  # the trunk continued at the peak
    plan = plan_cooldown(fit, stable, peak=peak, budgets=[(2 * total) // 3, total],
                         lengths=[cooldown // 2, cooldown], shapes=["linear", "1-sqrt"])  # fmt: skip
    print(f"\nThe budget plan off the trunk (law fit on two runs):\n{plan.table()}", flush=True)

    name = f"cooldown from {second}"
    logs[name] = _branch(name, trunk_dir, trunk_spec, branches[name], out, every, peak)
    print("Training the cosine baseline", flush=True)
    model, optimizer = _make(cosine)
    logs["cosine"] = _train("cosine", model, optimizer, 0, total, every)

    rows = [(k, int(logs[k]["loss_step"][0]) if k in branches else 0, len(rates[k]), logs[k]["loss"][-1],
             float(predicted[k][1][-1]), k in ahead) for k in predicted]  # fmt: skip
    head = f"{'run':<22}{'from':>6}{'to':>6}{'measured final':>16}{'predicted':>11}{'error':>8}"
    print(f"\n{head}{'90% interval':>20}")
    for k, start, stop, measured, guess, is_ahead in rows:
        note = "  predicted before training" if is_ahead else "  (fit on)"
        error = (guess - measured) / measured
        lo, hi = intervals[k]
        inside = "" if lo <= measured <= hi else " (missed)"
        span = f"[{lo:.4f}, {hi:.4f}]"
        print(
            f"{k:<22}{start:>6}{stop:>6}{measured:>16.4f}{guess:>11.4f}{error:>8.2%}{span:>20}{inside}{note}"
        )
    print(_takeaway(rows))
    print(
        "\nThe forecasts made from the trunk alone, before any cooldown was run (prior: the published "
        "25M LM):"
    )
    for k, c in forecasts.items():
        measured = logs[k]["loss"][-1]
        inside = "inside" if c.low <= measured <= c.high else "OUTSIDE"
        print(f"  {k}: forecast {c.final_loss:.4f} [{c.low:.4f}, {c.high:.4f}], measured {measured:.4f} "
              f"({(c.final_loss - measured) / measured:+.2%}, {inside} its 90% interval)")  # fmt: skip
    marks = [(float(at), f"branch at {at}") for at in (first, second)]
    lr_plot = plot_series({k: (v["step"], v["lr"]) for k, v in logs.items()}, out / "learning_rates.png",
                          title="Learning rate per update", ylabel="learning rate", marks=marks)  # fmt: skip
    series = {k: (v["loss_step"], v["loss"]) for k, v in logs.items()}
    series.update({f"{k} (predicted)": (p[0].tolist(), p[1].tolist()) for k, p in predicted.items()})
    styles: dict[str, dict[str, Any]] = {f"{k} (predicted)": {"linestyle": "--"} for k in predicted}
    bands = _plan_bands(plan, series, styles)
    bands.update(_forecast_bands(forecasts, series, styles))
    trunk_losses = logs["WSD trunk"]["loss"]
    ylim = (min(min(v["loss"]) for v in logs.values()) - 0.05, trunk_losses[len(trunk_losses) // 5])
    loss_plot = plot_series(series, out / "eval_losses.png", title="Held-out loss: measured and predicted",
                            ylabel="nats per byte", marks=marks, styles=styles, ylim=ylim,
                            bands=bands)  # fmt: skip
    log_dir = _write_logs(out / "logs", logs, rates)
    print(f"\nwrote {lr_plot}\nwrote {loss_plot}\nwrote the runs' logs and rates to {log_dir}")
    print(
        f"Rank more cooldowns off this trunk with the law: wsd plan --run {log_dir}/trunk.csv "
        f"{log_dir}/trunk.rates --run {log_dir}/cooldown-{first}.csv {log_dir}/cooldown-{first}.rates "
        f"--trunk {log_dir}/trunk.rates --at {first} {second} --lengths {cooldown // 2} {cooldown} "
        f"--shapes linear 1-sqrt --warmup-steps {warmup}"
    )


def _bands(
    labelled: dict[str, CooldownCandidate],
    style: dict[str, Any],
    series: dict[str, Any],
    styles: dict[str, Any],
) -> dict[str, Any]:
    """Adds each labelled cooldown's predicted curve from its branch step on to the loss plot's
    series (drawn in ``style``); returns its 90% interval there, to shade."""
    bands = {}
    for label, c in labelled.items():
        assert c.predicted_low is not None and c.predicted_high is not None  # (a plan's always has them)
        shown = c.steps >= c.at_step - 1
        steps = (c.steps[shown] + 1).tolist()  # the x axis counts updates done: a step's loss is after it
        series[label] = (steps, c.predicted[shown].tolist())
        styles[label] = style
        bands[label] = (steps, c.predicted_low[shown].tolist(), c.predicted_high[shown].tolist())
    return bands


def _plan_bands(plan: CooldownPlan, series: dict[str, Any], styles: dict[str, Any]) -> dict[str, Any]:
    """Each budget's best cooldown of the plan, with its 90% interval from the branch on."""
    best = {end: plan.best_for(end) for end in plan.end_steps}
    labelled = {f"plan: best of {end} updates, {c.shape} {c.length} from {c.at_step} (90% interval)": c
                for end, c in best.items()}  # fmt: skip
    return _bands(labelled, {"linestyle": ":", "linewidth": 1.8}, series, styles)


def _forecast_bands(
    forecasts: dict[str, CooldownCandidate], series: dict[str, Any], styles: dict[str, Any]
) -> dict[str, Any]:
    """Each forecast made from the trunk alone, with its 90% interval from the branch step on."""
    labelled = {f"forecast of the {name}, trunk alone (90% interval)": c for name, c in forecasts.items()}
    return _bands(labelled, {"linestyle": "-.", "linewidth": 1.5}, series, styles)


def _decision(plan: CooldownPlan, budget: int, seen: int) -> str:
    """What the trunk alone decides for a run of ``budget`` updates: the best cooldown, and which
    others are distinguishably worse at 90%, or plainly that it cannot rank them yet."""
    best = plan.best_for(budget)
    others = [c for c in plan.candidates if c.end_step == budget and c is not best]
    worse = [c for c in others if c.distinguishable]
    head = (
        f"  [trunk] step {seen:>6}: deciding from the trunk alone, for a {budget}-update run: "
        f"{best.shape} {best.length} from step {best.at_step}, forecast {best.final_loss:.4f} "
        f"[{best.low:.4f}, {best.high:.4f}]"
    )
    if not others:
        return head
    if worse:
        return (f"{head};\n    {len(worse)} of the {len(others)} other cooldowns forecast distinguishably "
                f"worse (90%), {len(others) - len(worse)} within its uncertainty of it")  # fmt: skip
    spread = max(c.final_loss for c in others) - best.final_loss
    return (f"{head};\n    it cannot rank the {len(others) + 1} cooldowns yet: they differ by at most "
            f"{spread:.4f}, less than the uncertainty of their differences")  # fmt: skip


def _published_prior() -> LossLawFit:
    """The Multi-Power Law fitted to the published 25M LM's nine runs (shipped with the package)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fit_loss_law(list(published_runs("lm-25M").values()), "multi-power")


def _branch(
    name: str, trunk_dir: Path, trunk_spec: WSDSpec, spec: WSDSpec, out: Path, every: int, peak: float
) -> dict:
    at = spec.start_step
    print(f"Branching a {spec.total_steps}-step cooldown from the trunk's step-{at} checkpoint", flush=True)
    model, optimizer = _restore(trunk_dir, trunk_spec, at, wsd_schedule(peak, spec=spec))
    with WSDCheckpointManager(out / "checkpoints" / f"cooldown-{at}", spec) as manager:
        return _train(name, model, optimizer, at, spec.end_step, every, manager)


def _write_logs(folder: Path, logs: dict[str, dict[str, list[float]]], rates: dict[str, np.ndarray]) -> Path:
    """Each run as ``<run>.csv`` (``step,loss``: the loss after ``step + 1`` updates, the planner's
    convention) and ``<run>.rates`` (the rate of every update from 0): what ``wsd plan`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, log in logs.items():
        stem = "trunk" if name == "WSD trunk" else name.replace("cooldown from ", "cooldown-")
        lines = [f"{s - 1},{loss:.6f}" for s, loss in zip(log["loss_step"], log["loss"], strict=True)]
        (folder / f"{stem}.csv").write_text("step,loss\n" + "\n".join(lines) + "\n")
        np.savetxt(folder / f"{stem}.rates", rates[name])
    return folder


def _loss_run(name: str, log: dict[str, list[float]], rates: np.ndarray, warmup: int) -> LossRun:
    """The logged losses after the warmup; a loss logged at step s is after updates 0..s-1."""
    steps = np.asarray(log["loss_step"], dtype=np.int64)
    keep = steps > warmup
    return LossRun(rates, steps[keep] - 1, np.asarray(log["loss"])[keep], warmup, name)


def _takeaway(rows: list[tuple[str, int, int, float, float, bool]]) -> str:
    """Two lines: what the trunk gave, and how well the law predicted the runs it had not seen."""
    trunk = rows[0]
    cosine = next(r for r in rows if r[0] == "cosine")
    ahead = [r for r in rows if r[5]]
    change = 100.0 * (trunk[3] - cosine[3]) / cosine[3]
    side = "below" if change < 0 else "above"
    worst = max(abs(r[4] - r[3]) / r[3] for r in ahead)
    return (
        f"Takeaway: one WSD trunk gave a finished model at every cooldown without retraining, and at the "
        f"full {trunk[2]} updates it ends {abs(change):.1f}% {side} cosine ({trunk[3]:.4f} vs "
        f"{cosine[3]:.4f}).\nThe law fit on two runs predicted the final loss of the {len(ahead)} runs it "
        f"had not seen to within {worst:.2%}."
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
