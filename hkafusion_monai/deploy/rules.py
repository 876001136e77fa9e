"""The Deploy application's rules file (docs/deploy.md): the SDK selector's ``MR`` and ``secondary`` selections,
and the ``fusion`` block (``registration``, ``colour_series``, ``allow_patient_mismatch``, ``hot_spot_min_kept``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hkafusion_monai.metrics.checks import HOT_SPOT_MIN_KEPT
from hkafusion_monai.utils.errors import FusionInputError

__all__ = ["DEFAULT_RULES", "REGISTRATION_MODES", "load_rules"]

#: the documented default rules (docs/deploy.md)
DEFAULT_RULES = Path(__file__).with_name("selection_rules.json")
#: ``fusion.registration``: register when the frames of reference differ, always, or never
REGISTRATION_MODES = ("auto", "always", "never")


def load_rules(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and check a rules file: ``selections`` with one ``"MR"`` and one ``"secondary"`` selection, and an
    optional ``fusion`` block (``registration``, ``colour_series``, ``allow_patient_mismatch``,
    ``hot_spot_min_kept``), whose missing keys get their defaults."""
    path = Path(path or DEFAULT_RULES)
    try:
        rules = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FusionInputError(f"{path}: cannot read the selection rules ({e})") from e
    if not isinstance(rules, dict):
        raise FusionInputError(f"{path}: the selection rules must be a JSON object")
    names = [s.get("name") for s in rules.get("selections", []) if isinstance(s, dict)]
    if sorted(names, key=str) != ["MR", "secondary"]:  # key=str: a selection without a name is None
        raise FusionInputError(
            f"{path}: the rules need exactly two selections named 'MR' and 'secondary', found {names}"
        )
    fusion = rules.setdefault("fusion", {})
    mode = fusion.setdefault("registration", "auto")
    if mode not in REGISTRATION_MODES:
        raise FusionInputError(f"{path}: fusion.registration is {mode!r}; use one of {REGISTRATION_MODES}")
    for flag in ("colour_series", "allow_patient_mismatch"):
        value = fusion.setdefault(flag, False)
        if not isinstance(value, bool):
            raise FusionInputError(f"{path}: fusion.{flag} is {value!r}; use true or false")
    kept = fusion.setdefault("hot_spot_min_kept", HOT_SPOT_MIN_KEPT)
    if isinstance(kept, bool) or not isinstance(kept, (int, float)) or not 0.0 <= kept <= 1.0:
        raise FusionInputError(f"{path}: fusion.hot_spot_min_kept is {kept!r}; use a fraction from 0 to 1")
    return rules
