"""The processes of a multi-process JAX job agreeing on one outcome, bounded in time.

In a job of several processes every process reads its own shards of a checkpoint: one of them can
find damage the others do not see. Were it to skip the step alone, the others would wait for it in
a collective (the fingerprint's all-reduce, Orbax's barriers) without end, or read another step. So
each step of a restore ends with an agreement: every process posts its outcome in the distributed
runtime's key-value store (``jax.distributed``'s, which Orbax uses too) and reads everyone's, with a
timeout; damage seen by any process is damage on all of them, a mistake of the caller raises on all
of them, and a process that does not answer in time is a communication failure
(``ProcessAgreementError``), never damage. No device collective is involved, so nothing waits
without a bound. In a single-process job an agreement is the process's own outcome, at no cost.

Every process must run the same agreements in the same order (as a JAX program runs the same steps
on every process): each is named by the folder, the manager's number among those of that folder in
this process, and a counter.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from typing import Any

import jax

from wsd_jax._integrity import CheckpointIntegrityError, short

DEFAULT_TIMEOUT_S = 1800.0  # what torch.distributed waits for a collective by default
_managers: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


class ProcessAgreementError(RuntimeError):
    """The processes of a multi-process job could not agree on a checkpoint: one did not answer in
    time (it crashed, or runs other code). Not damage: no step is skipped for it."""


def _client() -> Any:
    """The distributed runtime's key-value client (None outside ``jax.distributed.initialize``)."""
    try:
        from jax._src import distributed
    except ImportError:  # pragma: no cover - a jax without it
        return None
    return getattr(distributed.global_state, "client", None)


class Agreement:
    """Agreements of the processes of one job about one checkpoint folder.

    Args:
      directory: the folder (names the agreements, with this manager's number in this process).
      timeout_s: how long a process waits for the others' outcome before ``ProcessAgreementError``.
    """

    def __init__(self, directory: str, timeout_s: float) -> None:
        self.processes, self.index = jax.process_count(), jax.process_index()
        folder = hashlib.sha256(directory.encode()).hexdigest()[:16]
        self.scope = f"wsd_schedule/{folder}/{next(_managers[folder])}"
        self.timeout_s = timeout_s
        self._rounds = itertools.count()
        self._client = _client() if self.processes > 1 else None

    def gather(self, what: str, value: Any) -> list[Any]:
        """Every process's ``value`` (JSON), by process index; each process posts its own."""
        if self._client is None:
            return [value] * self.processes if self.processes > 1 else [value]
        prefix = f"{self.scope}/{next(self._rounds)}/"
        self._client.key_value_set(prefix + str(self.index), json.dumps(value))
        values = []
        for process in range(self.processes):
            if process == self.index:
                values.append(value)
                continue
            try:
                text = self._client.blocking_key_value_get(prefix + str(process), int(self.timeout_s * 1000))
            except Exception as e:
                raise ProcessAgreementError(
                    f"process {process} did not answer about {what} within {self.timeout_s:g} s "
                    f"({short(e)}): every process of the job must make the same checkpoint calls"
                ) from None
            values.append(json.loads(text))
        return values

    def from_primary(self, what: str, value: Any) -> Any:
        """Process 0's ``value``, on every process (the others' are ignored)."""
        return self.gather(what, value)[0]

    def outcome(self, what: str, error: BaseException | None) -> None:
        """One verdict for all processes: raises on every process what any process found (damage
        first, then a mistake of the caller, then any other failure), naming the process."""
        mine = None if error is None else _encode(error)
        found = self.gather(what, mine)
        failures = [(i, f) for i, f in enumerate(found) if f is not None]
        if not failures:
            return
        kinds = ("damage", "mistake", "failure")
        process, first = min(failures, key=lambda pair: kinds.index(pair[1]["kind"]))
        if error is not None and _encode(error) == first:
            raise error  # this process's own: its traceback
        where = f" (seen by process {process})" if self.processes > 1 else ""
        if first["kind"] == "damage":
            raise CheckpointIntegrityError(first["message"] + where)
        if first["kind"] == "mistake":
            raise (TypeError if first["type"] == "TypeError" else ValueError)(first["message"] + where)
        raise ProcessAgreementError(f"process {process} failed {what}: {first['message']}")


def _encode(error: BaseException) -> dict[str, str]:
    if isinstance(error, CheckpointIntegrityError):
        kind = "damage"
    elif isinstance(error, (ValueError, TypeError)):
        kind = "mistake"
    else:
        kind = "failure"
    return {"kind": kind, "type": type(error).__name__, "message": str(error)}
