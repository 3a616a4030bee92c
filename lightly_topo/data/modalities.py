"""One vocabulary of MRI modality names, and the normalisation of the names users have.

Readers of every layout map the names found on disk (``T1w``, ``t1n``, ``T1POST``,
``Flair_subtrMeanDivStd``, ``0: "FLAIR"`` in a Decathlon ``dataset.json``, ...) to one
canonical, lower-case name with :func:`normalize_modality`.
"""

from __future__ import annotations

import re

from lightly_topo.data.errors import UnknownModalityError

#: Canonical modality names, in the order used whenever an order is needed.
MODALITIES: tuple[str, ...] = (
    "t1",
    "t1ce",
    "t2",
    "flair",
    "pd",
    "t2star",
    "dwi",
    "adc",
    "swi",
    "ct",
)

_DESCRIPTIONS = {
    "t1": "T1-weighted (pre-contrast)",
    "t1ce": "T1-weighted after gadolinium contrast",
    "t2": "T2-weighted",
    "flair": "T2-FLAIR (fluid-attenuated inversion recovery)",
    "pd": "proton-density weighted",
    "t2star": "T2*-weighted (gradient echo)",
    "dwi": "diffusion-weighted",
    "adc": "apparent diffusion coefficient map",
    "swi": "susceptibility-weighted",
    "ct": "computed tomography",
}

_ALIASES: dict[str, str] = {
    # T1
    "t1": "t1",
    "t1w": "t1",
    "t1n": "t1",
    "t1pre": "t1",
    "t1native": "t1",
    "mprage": "t1",
    "spgr": "t1",
    "native": "t1",
    # T1 post-contrast
    "t1ce": "t1ce",
    "t1c": "t1ce",
    "t1gd": "t1ce",
    "t1post": "t1ce",
    "t1contrast": "t1ce",
    "t1wce": "t1ce",
    "t1cegd": "t1ce",
    "postcontrast": "t1ce",
    # T2
    "t2": "t2",
    "t2w": "t2",
    "t2weighted": "t2",
    # FLAIR
    "flair": "flair",
    "t2f": "flair",
    "t2flair": "flair",
    "t2wflair": "flair",
    # PD
    "pd": "pd",
    "pdw": "pd",
    "pdweighted": "pd",
    "protondensity": "pd",
    # others
    "t2star": "t2star",
    "t2starw": "t2star",
    "t2s": "t2star",
    "gre": "t2star",
    "dwi": "dwi",
    "dw": "dwi",
    "adc": "adc",
    "swi": "swi",
    "ct": "ct",
}


def normalize_modality(name: str, source: str | None = None) -> str:
    """Map a modality name as found on disk to the canonical vocabulary.

    Matching ignores case, spaces, ``-``, ``_``, ``*`` and ``.``. A name with a known
    processing suffix (``Flair_subtrMeanDivStd``) is matched on its first part.

    Args:
        name: The name, e.g. ``"T1w"``, ``"t1n"``, ``"T1POST"`` or ``"FLAIR"``.
        source: The file or manifest the name comes from, named in the error message.

    Returns:
        The canonical name, one of :data:`MODALITIES`.

    Raises:
        UnknownModalityError: If the name cannot be placed.

    >>> normalize_modality("T1w"), normalize_modality("t2f"), normalize_modality("T1Gd")
    ('t1', 'flair', 't1ce')
    """
    key = re.sub(r"[\s\-_*.]", "", name.strip().lower())
    if key in _ALIASES:
        return _ALIASES[key]
    head = re.split(r"[\s\-_.]", name.strip().lower())[0]
    if head in _ALIASES:
        return _ALIASES[head]
    where = f" in {source}" if source else ""
    raise UnknownModalityError(
        f"unknown modality name {name!r}{where}; known names are {', '.join(MODALITIES)} "
        f"(and aliases such as T1w, t1n, t1c, T1Gd, T2w, t2f, FLAIR, PDw)"
    )


def describe_modality(name: str) -> str:
    """A one-line, human-readable description of a canonical modality name."""
    return _DESCRIPTIONS[normalize_modality(name)]
