"""``make bench`` / ``python -m benchmarks``: every figure is a ratio of ours against an alternative,
measured side by side in this process; prints a table and writes benchmarks/RESULTS.md.

Options: --quick (fewer repeats and 1M steps, for a smoke run), --out PATH, --only SECTION[,...]
with sections whole-array, adamw, compile, torch-step, cuda, integrity, planner.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from benchmarks._timing import Row


def _versions() -> str:
    names = ["jax", "jaxlib", "optax", "orbax-checkpoint", "torch", "transformers", "pytorch-accelerated"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}{_gpus()}"


def _gpus() -> str:
    """The GPUs the frameworks see (looked up only in frameworks the run already imported)."""
    found = []
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        found.append(f"torch: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    jax = sys.modules.get("jax")
    if jax is not None and jax.default_backend() != "cpu":
        found.append(f"jax: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    return "; GPU " + ", ".join(found) if found else ""


def _table(rows: list[Row]) -> str:
    head = ("section", "measurement", "value", "target", "verdict")
    body = [(r.section, r.what, r.value, r.target, r.verdict) for r in rows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _targets(rows: list[Row]) -> str:
    """Each live target once, with the reason it was chosen."""
    seen: dict[str, str] = {}
    for r in rows:
        if r.target:
            seen.setdefault(f"{r.section}: {r.what} {r.target}", r.why)
    lines = [f"- {target}: {why}." for target, why in seen.items()]
    return "Targets, and why each was chosen:\n\n" + "\n".join(lines) if lines else "No targets in this run."


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument(
        "--only", default="whole-array,adamw,compile,torch-step,cuda,integrity,planner,forecast"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    repeats = 5 if args.quick else 15
    rows: list[Row] = []
    if only & {"whole-array", "adamw", "compile", "cuda"}:
        from benchmarks import jax_bench

        if "whole-array" in only:
            rows += jax_bench.whole_array(1_000_000 if args.quick else 10_000_000, repeats)
        if "adamw" in only:
            rows += jax_bench.adamw_update(repeats)
        if "compile" in only:
            rows += jax_bench.compile_time(3 if args.quick else 7)
        if "cuda" in only:
            rows += jax_bench.gpu_update(repeats)
    if only & {"torch-step", "cuda"}:
        from benchmarks import torch_bench

        if "torch-step" in only:
            rows += torch_bench.scheduler_step(repeats)
        if "cuda" in only:
            rows += torch_bench.cuda_training_step(repeats)
    if "integrity" in only:
        from benchmarks import checkpoint_bench

        rows += checkpoint_bench.integrity(3 if args.quick else 7, 20 if args.quick else 100)
    if "planner" in only:
        from benchmarks import planner_bench

        rows += planner_bench.prediction_speed(3 if args.quick else 7)
        rows += planner_bench.fit_speed()
        rows += planner_bench.optimizer_speed()
        rows += planner_bench.accuracy()
        rows += planner_bench.interval_calibration()
        from benchmarks import planner_calibration

        rows += planner_calibration.rows(2 if args.quick else 4)
    if "forecast" in only:
        from benchmarks import forecast_bench, forecast_validation

        rows += forecast_validation.rows()
        rows += forecast_bench.callback_overhead(5 if args.quick else 11)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"# Benchmark results\n\nRun: `make bench` ({'--quick' if args.quick else 'full'}), {stamp}\n\n"
        f"Machine: {_machine()}\n\nVersions: {_versions()}\n\n"
        "Each figure is measured side by side in one process, candidates interleaved, median of "
        f"{repeats} repeats.\n\n{_table(rows)}\n\n{_targets(rows)}\n\n"
        "Why a target is missed and what would close it: [ANALYSIS.md](ANALYSIS.md).\n"
    )
    print(report)
    out = Path(args.out)
    out.write_text(report + _kept_gpu_results(out))
    print(f"wrote {args.out}")


# Section 5 needs a GPU, which a CI or developer machine has not: its figures are measured on a lent
# one by .ci/gpu-check and kept in RESULTS.md below this line, which a run rewriting the file keeps.
GPU_RESULTS_MARK = "<!-- GPU results (.ci/gpu-check on a lent GPU): kept when the file is rewritten -->"


def _kept_gpu_results(out: Path) -> str:
    """The GPU block of the report being replaced, if any, to append to the new one."""
    try:
        previous = out.read_text()
    except FileNotFoundError:
        return ""
    start = previous.find(GPU_RESULTS_MARK)
    return "" if start < 0 else "\n" + previous[start:]


if __name__ == "__main__":
    main()
