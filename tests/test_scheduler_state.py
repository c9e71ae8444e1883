"""load_state_dict validates everything first and changes nothing when it refuses."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from wsd_torch import WSDLR, WSDDeviceLR, WSDSchedulersContainer, WSDSpec  # noqa: E402

SPEC = WSDSpec(100, warmup_steps=10, decay_steps=20)


def _sched(cls, lr=0.1):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)
    return cls(opt, spec=SPEC)


def _stepped(cls, n=7):
    s = _sched(cls)
    for _ in range(n):
        s.optimizer.step()
        s.step()
    return s


def _snapshot(s):
    rates = [float(g["lr"]) for g in s.optimizer.param_groups]
    skip = ("optimizer", "lr_lambdas", "_backend_cache", "_rate_table", "_count", "_bases")  # derived
    inner = {k: v for k, v in vars(s).items() if k not in skip}
    assert s.__dict__.get("lr_lambdas", [s.spec.multiplier]) == [s.spec.multiplier]
    extra = (int(s.count), [float(b) for b in s._bases]) if isinstance(s, WSDDeviceLR) else ()
    return rates, copy.deepcopy(inner), extra


BAD = [
    ("last_epoch='abc'", lambda sd: sd.update(last_epoch="abc"), TypeError, "last_epoch"),
    ("last_epoch=15.7", lambda sd: sd.update(last_epoch=15.7), TypeError, "last_epoch"),
    ("last_epoch=True", lambda sd: sd.update(last_epoch=True), TypeError, "last_epoch"),
    ("last_epoch=-4", lambda sd: sd.update(last_epoch=-4), ValueError, "last_epoch"),
    ("only spec", lambda sd: [sd.pop(k) for k in list(sd) if k != "spec"], ValueError, "missing keys"),
    ("optimizer key", lambda sd: sd.update(optimizer=None), ValueError, "unknown keys.*optimizer"),
    ("lr_lambdas malformed", lambda sd: sd.update(lr_lambdas="abc"), ValueError, "lr_lambdas"),
    ("base_lrs too long", lambda sd: sd.update(base_lrs=[0.1, 0.2]), ValueError, "param groups"),
    ("base_lrs nan", lambda sd: sd.update(base_lrs=[float("nan")]), TypeError, "base_lrs"),
    ("base_lrs str", lambda sd: sd.update(base_lrs="0.1"), TypeError, "base_lrs"),
    ("other spec", lambda sd: sd.update(spec=WSDSpec(50).to_dict()), ValueError, "different spec"),
    ("invalid spec", lambda sd: sd.update(spec={"total_steps": -1}), ValueError, "total_steps"),
    ("int key", lambda sd: sd.update({3: 1}), TypeError, "strings"),
    # past an int64 count: torch's RuntimeError named no field (WSDDeviceLR), WSDLR took it
    ("last_epoch=2**63", lambda sd: sd.update(last_epoch=2**63), ValueError, r"last_epoch.*2\*\*63 - 1"),
    ("last_epoch=2**70", lambda sd: sd.update(last_epoch=2**70), ValueError, r"last_epoch.*2\*\*63 - 1"),
    # a private name that is ours, not torch's, is never taken from a state
    ("our _count", lambda sd: sd.update(_count=5), ValueError, "may not set"),
    ("our _rate_table", lambda sd: sd.update(_rate_table=None), ValueError, "may not set"),
]


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
@pytest.mark.parametrize(("name", "damage", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_a_refused_state_changes_nothing(cls, name, damage, error, match):
    saved = _stepped(cls, 30).state_dict()
    damage(saved)
    target = _stepped(cls, 7)
    before = _snapshot(target)
    with pytest.raises(error, match=match):
        target.load_state_dict(saved)
    assert _snapshot(target) == before


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_a_valid_state_loads_and_steps_on_ints(cls):
    target = _stepped(cls, 7)
    target.load_state_dict(_stepped(cls, 30).state_dict())
    target.optimizer.step()
    target.step()
    assert target.last_epoch == 31
    assert float(target.optimizer.param_groups[0]["lr"]) == pytest.approx(0.1 * SPEC.multiplier(31), rel=1e-6)


def _container(n=2):
    """Schedulers of different specs: saved one by one, under their index."""
    scheds = []
    for i in range(n):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1 * (i + 1))
        scheds.append(WSDLR(opt, spec=SPEC if i == 0 else WSDSpec(100 + i, decay_steps=20)))
    return WSDSchedulersContainer(scheds)


def test_container_loads_all_or_nothing():
    source = _container()
    for _ in range(12):
        for s in source:
            s.optimizer.step()
        source.step()
    saved = source.state_dict()
    saved["1"]["last_epoch"] = "x"  # scheduler 1 is bad: scheduler 0 must not be loaded either
    target = _container()
    before = [_snapshot(s) for s in target]
    with pytest.raises(TypeError, match="scheduler 1: saved last_epoch"):
        target.load_state_dict(saved)
    assert [_snapshot(s) for s in target] == before


def test_container_refuses_mixed_key_types_and_duplicates():
    target = _container()
    with pytest.raises(TypeError, match="strings"):
        target.load_state_dict({"0": {}, 1: {}})
    s = _sched(WSDLR)
    with pytest.raises(ValueError, match="same scheduler"):
        WSDSchedulersContainer([s, s])
    with pytest.raises(ValueError, match="same optimizer"):
        WSDSchedulersContainer([s, WSDLR(s.optimizer, spec=SPEC)])


def newer_torch(monkeypatch):
    """torch's LRScheduler as a later release might be: one more private field, set at construction."""
    from torch.optim.lr_scheduler import LRScheduler

    original = LRScheduler.__init__

    def init(self, *args, **kwargs):
        self._newer_torch_field = {"warmup": 3}
        original(self, *args, **kwargs)

    monkeypatch.setattr(LRScheduler, "__init__", init)


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_a_newer_torch_reads_an_older_checkpoint(cls, monkeypatch):
    saved = _stepped(cls, 30).state_dict()  # today's torch: no such field
    assert "_newer_torch_field" not in saved
    newer_torch(monkeypatch)
    target = _stepped(cls, 7)
    target.load_state_dict(saved)
    assert target.last_epoch == 30 and target._newer_torch_field == {"warmup": 3}  # its own default
    assert float(target.optimizer.param_groups[0]["lr"]) == pytest.approx(0.1 * SPEC.multiplier(30), rel=1e-6)


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_an_older_torch_reads_a_newer_checkpoint(cls, monkeypatch):
    with monkeypatch.context() as patched:
        newer_torch(patched)
        saved = _stepped(cls, 30).state_dict()
    assert saved["_newer_torch_field"] == {"warmup": 3}  # torch's fields are saved as torch saves them
    target = _stepped(cls, 7)  # today's torch
    target.load_state_dict(saved)  # passed through, as LRScheduler.load_state_dict would
    assert target.last_epoch == 30 and target._newer_torch_field == {"warmup": 3}
    assert target.state_dict() == saved


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_a_newer_torch_public_attribute_never_makes_a_scheduler_refuse_its_own_state(cls, monkeypatch):
    # Saving is what loading accepts: a public attribute we do not know is neither saved nor expected
    # (WSDLR once saved its whole __dict__, which load_state_dict then refused as unknown keys).
    from torch.optim.lr_scheduler import LRScheduler

    original = LRScheduler.__init__

    def init(self, *args, **kwargs):
        self.newer_public_field = 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(LRScheduler, "__init__", init)
    sched = _stepped(cls, 30)
    saved = sched.state_dict()
    assert "newer_public_field" not in saved
    target = _stepped(cls, 7)
    target.load_state_dict(saved)
    assert target.last_epoch == 30


# --- one state protocol: check everything, then apply what cannot fail ----------------------------


def _names_of(cls):
    """Every attribute of a stepped scheduler of ``cls`` that torch did not set, and its methods."""
    torch_private = set(vars(torch.optim.lr_scheduler.LambdaLR(_sched(WSDLR).optimizer, lambda s: 1.0)))
    scheduler = _stepped(cls)
    scheduler.state_dict()
    attributes = {k for k in vars(scheduler) if k not in torch_private}
    methods = {k for k in dir(cls) if callable(getattr(cls, k, None)) and not k.startswith("__")}
    return sorted((attributes | methods) - cls.STATE_KEYS)


@pytest.mark.parametrize("source", [WSDLR, WSDDeviceLR])
@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_no_state_key_may_name_what_a_scheduler_owns(cls, source):
    # before: a private name was refused only if listed by hand; "_refresh", "_rates", "_multiplier"
    # and "_update_lr" passed check_state, and the scheduler broke at apply_state or its next step
    saved = _stepped(cls, 30).state_dict()
    target = _stepped(cls, 7)
    before = _snapshot(target)
    names = _names_of(source)
    assert {"_rates", "_update_lr"} <= set(_names_of(WSDLR))
    assert {"_refresh", "_multiplier", "_count"} <= set(_names_of(WSDDeviceLR))
    for name in names:
        with pytest.raises(ValueError, match=rf"unknown keys \['{name}'\].*may not set"):
            target.check_state({**saved, name: 1})
    assert _snapshot(target) == before


def test_a_companion_state_with_an_unknown_key_is_refused():
    # before: accepted, and the key ignored
    from wsd_torch import WSDCompanion

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, betas=(0.9, 0.95))
    companion = WSDCompanion(opt, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=SPEC)
    state = {**companion.state_dict(), "last_epoch": 50, "extra": 1}
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        companion.load_state_dict(state)
    assert companion.last_epoch == 0
    del state["extra"], state["key"]
    with pytest.raises(ValueError, match=r"missing keys \['key'\]"):
        companion.load_state_dict(state)


def test_a_container_refusing_a_later_scheduler_changes_no_earlier_one():
    # before: the floor of a saved base rate was checked while applying, after scheduler 0 had
    # taken its state
    optimizers = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr) for lr in (1e-3, 1e-2)]
    container = WSDSchedulersContainer.for_optimizers(
        optimizers, spec=SPEC, device_resident=True, min_lr=1e-4
    )
    state = copy.deepcopy(container.state_dict())
    assert set(state) == {"0", "1"}  # a spec per scheduler: their floors are different ratios
    state["0"]["last_epoch"] = state["1"]["last_epoch"] = 60
    state["1"]["base_lrs"] = [5e-5]  # below min_lr
    before = [_snapshot(s) for s in container.schedulers]
    with pytest.raises(ValueError, match=r"scheduler 1: min_lr=0.0001 with param group 0's lr 5e-05"):
        container.load_state_dict(state)
    assert [_snapshot(s) for s in container.schedulers] == before


def test_the_container_uses_no_private_member_of_what_it_holds():
    import ast
    from pathlib import Path

    import wsd_torch._container as module

    tree = ast.parse(Path(module.__file__).read_text())
    private = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert not private


@pytest.mark.parametrize("key", ["_rates", "_refresh", "_multiplier", "_update_lr"])
def test_a_container_refuses_a_method_named_in_any_members_state_and_changes_nothing(key):
    # before: the key passed every check_state, the container applied scheduler 0, and scheduler 1's
    # apply_state (or its next step) failed: a container left half-applied
    source = _container()
    for _ in range(12):
        for s in source:
            s.optimizer.step()
        source.step()
    saved = copy.deepcopy(source.state_dict())
    saved["1"][key] = 1
    target = _container()
    before = [_snapshot(s) for s in target]
    with pytest.raises(ValueError, match=rf"scheduler 1: .*unknown keys \['{key}'\]"):
        target.load_state_dict(saved)
    assert [_snapshot(s) for s in target] == before
    target.step()  # and it still steps
