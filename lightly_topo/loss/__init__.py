"""TACO topological alignment losses and collapse monitors.

The losses take dense features of two modalities of the same subjects (maps
``(B, C, D, H, W)`` or tokens ``(B, N, C)``) and return a scalar, like Lightly's losses,
so they add to any of them: ``loss = ntxent(z0, z1) + topo(dense_a, dense_b)``.
"""

from lightly_topo.loss import monitors
from lightly_topo.loss._tokens import LossInputError
from lightly_topo.loss.cross_modal_triplet_loss import CrossModalTripletLoss
from lightly_topo.loss.pseudo_correspondence_loss import PseudoCorrespondenceLoss
from lightly_topo.loss.topo_align_loss import TopoAlignLoss

__all__ = [
    "CrossModalTripletLoss",
    "LossInputError",
    "PseudoCorrespondenceLoss",
    "TopoAlignLoss",
    "monitors",
]
