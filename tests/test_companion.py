"""Companion hyperparameters (``beta2``, ``weight_decay`` moving with the cooldown): the contract's
h(step) on every backend against a 340-digit reference, and the jax and torch companions in use."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.reference import reference_stable_fraction, reference_tops
from tests.strategies import examples, probe_steps, spec_fields
from wsd_core import WSDSpec

SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tolerance(fields: dict, eps: float) -> float:
    # h = (m - r) / (top - r): an error of a few ulps of the peak P in m grows by P / (top - r) as the
    # floor nears the value the decay starts from (a period's peak, or below it under a power stable
    # phase: a floor of 0.146 under a decay from 1 / sqrt(45) = 0.149 amplifies 300 times)
    peaks = fields.get("period_peaks") or [1.0]
    tops = [t for t in reference_tops(**fields) if t > fields["min_ratio"]]
    spread = min(t - fields["min_ratio"] for t in tops) if tops else 1.0
    return min(1.0, 16 * eps * max(*peaks, 1.0) / max(spread, 1e-300))


@given(fields=spec_fields())
@example(fields={"total_steps": 46, "checkpoints": [2, 46], "decay_steps": 2, "warmup_steps": 0,
                 "decay_shape": "linear", "warmup_shape": "linear", "init_ratio": 0.0,
                 "min_ratio": 0.14586499149789456, "start_step": 0, "stable_power": -0.5})  # fmt: skip
@SETTINGS
def test_stable_fraction_of_python_floats_matches_the_reference(fields):
    spec = WSDSpec(**fields)
    steps = probe_steps(fields)
    got = np.array([spec.stable_fraction(s) for s in steps])
    want = np.array([reference_stable_fraction(s, **fields) for s in steps])
    np.testing.assert_allclose(got, want, rtol=0, atol=_tolerance(fields, 2.2e-16))
    assert ((got >= 0) & (got <= 1)).all()


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@given(fields=spec_fields(max_total=600))
@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_jax_companion_matches_the_reference(x64, fields):
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from tests.backends import enable_x64
    from wsd_jax import wsd_companion

    steps = [s for s in probe_steps(fields) if s < 2**31 - 1]
    want = 0.999 + (0.95 - 0.999) * np.array([reference_stable_fraction(s, **fields) for s in steps])
    if x64:
        with enable_x64():
            got = np.asarray(
                wsd_companion(0.95, 0.999, spec=WSDSpec(**fields), dtype=jnp.float64)(jnp.asarray(steps))
            )
        eps = 2.2e-16
    else:
        got = np.asarray(wsd_companion(0.95, 0.999, spec=WSDSpec(**fields))(jnp.asarray(steps, jnp.int32)))
        eps = 1.2e-7
    np.testing.assert_allclose(got, want, rtol=0, atol=0.049 * _tolerance(fields, eps) + 2 * eps)


def test_jax_companion_drives_adamw_b2_under_inject_hyperparams():
    pytest.importorskip("optax")
    import jax
    import jax.numpy as jnp
    import optax

    from wsd_jax import wsd_companion, wsd_schedule

    spec = WSDSpec(40, warmup_steps=4, decay_steps=10, decay_shape="linear", min_ratio=0.1)
    b2 = wsd_companion(0.95, 0.999, spec=spec)
    opt = optax.inject_hyperparams(optax.adamw)(learning_rate=wsd_schedule(1e-3, spec=spec), b2=b2)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    step = jax.jit(lambda p, s: opt.update(jax.tree.map(jnp.ones_like, p), s, p))
    seen = []
    for _ in range(40):
        seen.append(float(state.hyperparams["b2"]))
        _, state = step(params, state)
    # inject_hyperparams holds the value of the last update: b2(n - 1) after n updates, b2(0) at init
    want = [
        0.999 + (0.95 - 0.999) * reference_stable_fraction(max(n - 1, 0), **spec.to_dict()) for n in range(40)
    ]
    np.testing.assert_allclose(seen, want, atol=1e-6)
    assert seen[1] == pytest.approx(0.95) and seen[31] == pytest.approx(0.95)  # warmup and stable
    assert seen[36] == pytest.approx(0.95 + (0.999 - 0.95) * 5 / 10, abs=1e-6)  # halfway down the decay


def test_jax_companion_refuses_bad_values():
    pytest.importorskip("jax")
    from wsd_jax import wsd_companion

    with pytest.raises(ValueError, match="stable_value must be finite"):
        wsd_companion(float("nan"), 0.999, total_steps=10)
    with pytest.raises(TypeError, match="cooled_value must be a real number"):
        wsd_companion(0.95, "0.999", total_steps=10)  # type: ignore[arg-type]


def _torch_setup():
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.zeros(2))]
    groups = [{"params": params}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-4}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    return torch, opt


def test_torch_companions_beside_wsdlr_follow_the_reference_and_resume(tmp_path):
    from wsd_torch import WSDLR, WSDCompanion

    torch, opt = _torch_setup()
    spec = WSDSpec(60, warmup_steps=5, decay_steps=20, decay_shape="cosine", min_ratio=0.05)
    lr = WSDLR(opt, spec=spec)
    beta2 = WSDCompanion(opt, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=spec)
    wd = WSDCompanion(opt, key="weight_decay", stable_value=0.1, cooled_value=0.0, spec=spec)
    for t in range(45):
        h = reference_stable_fraction(t, **spec.to_dict())
        for group in opt.param_groups:
            assert group["betas"][0] == 0.9 and group["betas"][1] == pytest.approx(
                0.999 - 0.049 * h, abs=1e-12
            )
            assert group["weight_decay"] == pytest.approx(0.1 * h, abs=1e-12)
        opt.step()
        lr.step()
        beta2.step()
        wd.step()
    path = tmp_path / "companion.pt"
    torch.save(beta2.state_dict(), path)
    _, opt2 = _torch_setup()
    resumed = WSDCompanion(opt2, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=spec)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.last_epoch == 45 and opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert resumed.get_last_value() == beta2.get_last_value()
    # another hyperparameter's state, or another spec, is refused; a deliberate spec change is not
    other = WSDCompanion(opt2, key="weight_decay", stable_value=0.1, cooled_value=0.0, spec=spec)
    with pytest.raises(ValueError, match="the saved companion sets key='betas', this one 'weight_decay'"):
        other.load_state_dict(beta2.state_dict())
    longer = WSDSpec(120, warmup_steps=5, decay_steps=20, decay_shape="cosine", min_ratio=0.05)
    moved = WSDCompanion(opt2, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=longer)
    with pytest.raises(ValueError, match="the saved state was made with a different spec"):
        moved.load_state_dict(beta2.state_dict())
    moved.load_state_dict(beta2.state_dict(), allow_spec_change=True)
    assert moved.last_epoch == 45


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(key="momentum"), ValueError, r"param group 0 has no 'momentum' entry; its entries are \["),
        (dict(key="betas"), ValueError, r"'betas' is a tuple: give index="),
        (dict(key="betas", index=2), ValueError, r"'betas' is \(0.9, 0.95\): it has no element 2"),
        (dict(key="weight_decay", index=0), ValueError, r"'weight_decay' is 0.1: it has no element 0"),
        (dict(key="weight_decay", stable_value=float("inf")), ValueError, "stable_value must be finite"),
        (dict(key=3), TypeError, "key must be a param-group entry name"),
    ],
)
def test_torch_companion_refuses_bad_arguments(kwargs, error, match):
    from wsd_torch import WSDCompanion

    _, opt = _torch_setup()
    args = dict(stable_value=0.95, cooled_value=0.999, total_steps=10) | kwargs
    with pytest.raises(error, match=match):
        WSDCompanion(opt, **args)


def test_a_container_steps_saves_and_loads_its_companions_all_or_none():
    from wsd_torch import WSDLR, WSDCompanion, WSDSchedulersContainer

    spec = WSDSpec(50, warmup_steps=5, decay_steps=20, decay_shape="linear", min_ratio=0.0)

    def build():
        _, opt = _torch_setup()
        beta2 = WSDCompanion(opt, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=spec)
        wd = WSDCompanion(opt, key="weight_decay", stable_value=0.1, cooled_value=0.0, spec=spec)
        return opt, WSDSchedulersContainer([WSDLR(opt, spec=spec)], companions=[beta2, wd])

    opt, container = build()
    for _ in range(40):
        opt.step()
        container.step()
    assert opt.param_groups[1]["betas"][1] == pytest.approx(0.95 + 0.049 * 10 / 20)
    state = container.state_dict()
    assert state["last_epoch"] == 40 and [c["key"] for c in state["companions"]] == ["betas", "weight_decay"]
    opt2, resumed = build()
    resumed.load_state_dict(state)
    assert [g["betas"] for g in opt2.param_groups] == [g["betas"] for g in opt.param_groups]
    assert [g["weight_decay"] for g in opt2.param_groups] == [g["weight_decay"] for g in opt.param_groups]
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    # a bad companion state changes nothing, the rates included
    opt3, fresh = build()
    broken = {**state, "companions": [state["companions"][0], {**state["companions"][1], "key": "momentum"}]}
    with pytest.raises(ValueError, match="companion 1: the saved companion sets key='momentum'"):
        fresh.load_state_dict(broken)
    assert fresh.schedulers[0].last_epoch == 0 and [c.last_epoch for c in fresh.companions] == [0, 0]
    with pytest.raises(ValueError, match=r"holds 1 companion state\(s\), this one has 2"):
        fresh.load_state_dict({**state, "companions": state["companions"][:1]})
    with pytest.raises(TypeError, match="companions\\[0\\] must be a WSDCompanion"):
        WSDSchedulersContainer([WSDLR(opt3, spec=spec)], companions=["beta2"])  # type: ignore[list-item]
