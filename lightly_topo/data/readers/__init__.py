"""Readers of the folder and manifest layouts users have; each returns a list of
:class:`~lightly_topo.data.Subject`."""

from lightly_topo.data.readers.auto import READERS, detect_layout, read_subjects
from lightly_topo.data.readers.bids import read_bids
from lightly_topo.data.readers.brats import read_brats
from lightly_topo.data.readers.csv_manifest import read_csv_manifest
from lightly_topo.data.readers.decathlon import read_decathlon
from lightly_topo.data.readers.deepmedic import read_deepmedic
from lightly_topo.data.readers.ixi import read_ixi
from lightly_topo.data.readers.lgg import read_lgg
from lightly_topo.data.readers.ms_lesjak import read_ms_lesjak
from lightly_topo.data.readers.nnssl import read_nnssl_json

__all__ = [
    "READERS",
    "detect_layout",
    "read_bids",
    "read_brats",
    "read_csv_manifest",
    "read_decathlon",
    "read_deepmedic",
    "read_ixi",
    "read_lgg",
    "read_ms_lesjak",
    "read_nnssl_json",
    "read_subjects",
]
