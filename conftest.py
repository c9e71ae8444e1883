"""Doctest collection of the packages: skip the adapter modules whose framework is not installed.

`--doctest-modules` imports every module under the test paths. ``wsd_plan.lightning`` and
``wsd_plan.transformers`` raise an ImportError naming their extra when the framework is missing (the
error a user should see), so an environment without that extra (the floors check) leaves them out of
collection rather than failing on the import. Their tests skip themselves with ``importorskip``.
"""

from __future__ import annotations

from importlib.util import find_spec

_NEEDS = {"wsd_plan/lightning.py": "lightning", "wsd_plan/transformers.py": "transformers"}

collect_ignore = [path for path, module in _NEEDS.items() if find_spec(module) is None]
