"""Lightly's argument names for the 3D transforms, with the project's older names as aliases.

The view transforms take Lightly's names where the meaning is the same (``input_size``,
``gaussian_blur``, ``sigmas``, ``rr_prob``: Lightly's ``rr_prob`` with ``rr_degrees=None``
is a random 90-degree rotation, as here). The names of earlier versions (``size``,
``blur_prob``, ``blur_sigma``, ``rotate90_prob``) still work as keyword aliases.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

#: Older name -> Lightly's name.
ALIASES = {
    "size": "input_size",
    "blur_prob": "gaussian_blur",
    "blur_sigma": "sigmas",
    "rotate90_prob": "rr_prob",
}


def lightly_name(owner: str, name: str, value: T, default: T, alias_value: Any) -> T:
    """``value`` of Lightly's argument ``name``, or the value given under its older alias.

    Raises:
        TypeError: Both names given with different values.
    """
    if alias_value is None:
        return value
    if value != default and value != alias_value:
        alias = next(k for k, v in ALIASES.items() if v == name)
        raise TypeError(
            f"{owner}: {name}={value!r} and its older alias {alias}={alias_value!r} disagree; "
            f"pass {name} only"
        )
    return alias_value
