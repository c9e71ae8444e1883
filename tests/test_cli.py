"""The ``wsd`` command: phase tables and plots with only the core, and usage errors (exit 2, no
traceback) for every bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _wsd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsd_core", *args], capture_output=True, text=True)


def test_help_lists_the_commands():
    done = _wsd("--help")
    assert done.returncode == 0 and "table" in done.stdout and "plot" in done.stdout


def test_help_is_plain_text_with_whole_example_lines():
    for args in (["--help"], ["plot", "--help"]):
        out = _wsd(*args).stdout
        assert "``" not in out and ":class:" not in out  # no reStructuredText
        assert not [line for line in out.splitlines() if line.rstrip().endswith("\\")]  # no continuations
    assert "wsd table --total-steps 200000" in _wsd("--help").stdout


def _wsd_without_jax(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.modules['jax'] = None\nfrom wsd_core.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_declaring_the_plan_plugin_imports_no_framework():
    # every wsd invocation declares `plan`; it once imported jax, optax and scipy for that (0.05 s ->
    # 1.3 s for `wsd table`). Only `wsd plan` itself may import the planner.
    pytest.importorskip("jax")
    code = (
        "import sys\nfrom wsd_core.cli import main\nmain(['table', '--total-steps', '10'])\n"
        "assert 'wsd_plan._cli' in sys.modules, 'the plan plugin was not declared'\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'optax', 'scipy', 'torch'})\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_plan_is_a_plugin_listed_when_installed_and_named_with_its_extra_when_not():
    pytest.importorskip("jax")
    assert "fit a loss-curve law" in _wsd("--help").stdout  # registered by wsd_plan's entry point
    listed = _wsd_without_jax("--help")
    assert listed.returncode == 0 and "plan" in listed.stdout and "[plan]" in listed.stdout
    run = _wsd_without_jax(
        "plan", "--run", "a.csv", "b.json", "--trunk", "b.json", "--at", "1", "--lengths", "1"
    )
    assert run.returncode == 2 and "pip install 'wsd-schedule[plan]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_table_prints_the_phase_table():
    done = _wsd("table", "--total-steps", "200000", "--warmup-steps", "2000", "--decay-ratio", "0.2",
                "--geometric-checkpoints", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "50000" in done.stdout and "100000" in done.stdout and "warmup" in done.stdout


def test_decay_steps_takes_one_length_or_one_per_period():
    def decay_rows(*decay_steps: str) -> list[list[str]]:
        done = _wsd("table", "--total-steps", "3000", "--checkpoints", "1000", "3000", "--min-ratio", "0.1",
                    "--decay-steps", *decay_steps)  # fmt: skip
        assert done.returncode == 0, done.stderr
        # the phase table's decay rows: first step, last step, length
        return [line.split()[2:5] for line in done.stdout.splitlines() if line.startswith("decay")]

    assert decay_rows("100", "400") == [["900", "999", "100"], ["2600", "2999", "400"]]
    assert decay_rows("100") == [["900", "999", "100"], ["2900", "2999", "100"]]


def test_table_shows_a_power_stable_phase_and_a_polynomial_decay():
    done = _wsd("table", "--total-steps", "1000", "--warmup-steps", "100", "--decay-steps", "200",
                "--decay-shape", "polynomial", "--decay-power", "2", "--stable-power", "-0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    stable = next(line.split() for line in done.stdout.splitlines() if line.startswith("stable"))
    assert stable[-3:] == ["1", "->", f"{(799 / 100) ** -0.5:g}"]  # (u / W) ** -0.5 at its last step


def test_plot_writes_png_and_prints_phase_tables(tmp_path):
    out = tmp_path / "s.png"
    done = _wsd("plot", "--total-steps", "1000", "--warmup-steps", "50", "--decay-ratio", "0.2",
                "--decay-shape", "1-sqrt", "linear", "--geometric-checkpoints", "3", "--peak", "3e-4",
                "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert done.stdout.count("phase   period") == 2  # one table per shape
    assert "== linear" in done.stdout and "250" in done.stdout  # geometric ends 250, 500, 1000


def test_plot_needs_no_jax_or_torch(tmp_path):
    code = (
        "import sys; sys.modules['jax'] = None; sys.modules['torch'] = None; sys.modules['optax'] = None\n"
        "from wsd_core.cli import main\n"
        f"sys.exit(main(['plot', '--total-steps', '100', '--out', {str(tmp_path / 'x.svg')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.svg").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--warmup-steps", "500"], "warmup_steps"),
        (["--checkpoints", "5000"], "checkpoints"),  # was a 16,654-character error
        (["--geometric-checkpoints", "5000"], "K <= 7"),
        (["--peak", "nan"], "--peak"),
        (["--peak", "-1"], "--peak"),
        (["--peak", "0"], "--peak"),
        (["--out", ""], "empty"),
        (["--out", "x.bmpx"], ".png"),
        (["--out", "/proc/forbidden/x.png"], "cannot write"),
        (["--decay-ratio", "20"], "--decay-ratio"),
        (["--total-steps", str(10**30)], "--total-steps"),
        (["--total-steps", "abc"], "--total-steps"),
        (["--decay-shape", "sqrt"], "invalid choice"),
        (["--decay-steps", "10", "20"], "--decay-steps"),  # two lengths, one period
        (["--decay-power", "2"], "--decay-power 2.0 is the exponent of --decay-shape polynomial"),
        (["--stable-power", "0.5"], "stable_power must be <= 0"),
    ],
)
def test_bad_values_are_usage_errors_without_a_traceback(tmp_path, args, message):
    base = ["plot", "--total-steps", "100", "--out", str(tmp_path / "x.png")]
    done = _wsd(*base, *args)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr) < 2000


def test_a_huge_valid_run_plots(tmp_path):
    done = _wsd("plot", "--total-steps", str(2**62), "--decay-ratio", "0.2", "--out", str(tmp_path / "h.png"))
    assert done.returncode == 0, done.stderr
