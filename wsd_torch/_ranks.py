"""The ranks of a distributed job compared before a checkpoint is saved: every rank refuses, naming
the ranks, when they differ.

``dcp.save`` writes one copy of a value every rank holds under the same key (the lowest-loaded
rank's): ranks whose schedulers count 17 and 18 updates would save silently, and the resumed job
would start every rank at one count while its optimizers' own steps said another. The comparison is
one ``all_gather_object`` of a small digest, made only inside ``dcp.save``, where every rank of the
save's process group is already in the same collective call.
"""

from __future__ import annotations

import json
from typing import Any


def check_ranks_agree(digest: dict[str, Any], process_group: Any = None) -> None:
    """Raises ``ValueError`` on every rank when the ranks of ``process_group`` (None: the default
    group) hold different ``digest``s, naming each group of ranks and what it holds."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(process_group) < 2:
        return
    gathered: list[Any] = [None] * dist.get_world_size(process_group)
    dist.all_gather_object(gathered, json.dumps(digest, sort_keys=True), group=process_group)
    if len(set(gathered)) == 1:
        return
    groups: dict[str, list[int]] = {}
    for rank, text in enumerate(gathered):
        groups.setdefault(text, []).append(rank)
    described = "; ".join(f"ranks {ranks}: {_describe(json.loads(text))}" for text, ranks in groups.items())
    raise ValueError(
        f"the ranks' schedulers differ, so no checkpoint is saved (one rank's copy would be kept, and "
        f"the job resumed from it): {described}. Every rank must step (and load) its schedulers alike"
    )


def _describe(digest: dict[str, Any]) -> str:
    """What a digest holds, short: counts, and specs and floors by their hash when they differ."""
    specs = json.dumps(digest["specs"], sort_keys=True)
    import hashlib

    spec_id = hashlib.sha256(specs.encode()).hexdigest()[:8]
    companions = [c.get("last_epoch") for c in digest["companions"]]
    return f"counts {digest['counts']}, spec {spec_id}, min_lr {digest['floors']}" + (
        f", companion counts {companions}" if companions else ""
    )
