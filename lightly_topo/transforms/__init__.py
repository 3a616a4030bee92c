"""3D transforms for multimodal volumes: spatial transforms that return voxel-coordinate
grids, per-modality intensity transforms, modality dropout, token correspondence, the view
transforms of SimCLR, BYOL, MAE and TACO, and the batched device path.

**Views.** A view transform (:class:`SimCLRTransform3D`, :class:`BYOLTransform3D`,
:class:`MAETransform3D`, :class:`TopoTransform3D`) takes a
:class:`~lightly_topo.data.VolumeItem` and returns a list of views (Lightly's
``MultiViewTransform`` contract); :func:`collate_views` batches them. A view
(:class:`View`) is a dict:

* ``"image"``: float32 ``(M, d, h, w)`` over the dataset's ``modality_names``; a missing
  or dropped modality is zero *and* ``False`` in ``"mask"``;
* ``"mask"``: bool ``(M,)``, never all ``False``;
* ``"grid"``: float32 ``(3, d, h, w)``: for every output voxel, its coordinates (voxels,
  along ``D, H, W``, voxel centres at integers) in the subject's original volume;
* ``"label_map"``: int64 ``(1, d, h, w)`` (nearest neighbour) or ``None``;
* ``"foreground"``: bool ``(1, d, h, w)``: the brain (non-zero voxels of the item) at the
  view's grid, before intensity augmentation; :func:`foreground_tokens` gives the token
  ``mask`` of the TACO losses at a feature stride;
* ``"subject_id"``: str; ``"modality_names"``: tuple of str.

**Spatial transforms** (:class:`RandomCrop3D`, :class:`CenterCrop3D`,
:class:`RandomResizedCrop3D`, :class:`RandomFlip3D`, :class:`RandomRotate90_3D`,
:class:`RandomAffine3D`, :class:`RandomElastic3D`) draw one map per subject, shared by all
modalities and the label map. Chained in a :class:`SpatialCompose3D` or :class:`Augment3D`,
their maps compose into one grid and the original volume is resampled once (exactly, by
indexing, for crops, flips and 90-degree rotations). Voxels outside the original volume are
zero (this is how a crop larger than the volume pads).

**Intensity transforms** (:class:`RandomGamma3D`, :class:`RandomScaleShift3D`,
:class:`RandomBiasField3D`, :class:`RandomGaussianNoise3D`, :class:`RandomGaussianBlur3D`,
:class:`RandomContrast3D`) draw independently per modality; :class:`RandomModalityDropout`
drops a random subset of the available modalities and keeps at least one.

**Parameters apart from application.** Every transform draws its parameters
(``sample_params`` / ``sample_step``) separately from applying them, so the per-subject CPU
path (:class:`Augment3D`) and the batched device path (:class:`BatchAugment3D`, a whole
``(B, M, D, H, W)`` batch in one call) apply the same parameters with the same result.

**Correspondence.** :func:`matched_tokens` pairs the tokens of two views at a feature stride
from their grids.

**Randomness.** Every call takes ``generator`` (a :class:`torch.Generator` or an int seed);
without one, a transform uses its own generator (``seed`` at construction), seeded per
process and DataLoader worker. The global RNG is never advanced.
"""

from lightly_topo.transforms.affine import RandomAffine3D
from lightly_topo.transforms.batch import BatchAugment3D, BatchViews
from lightly_topo.transforms.byol_transform import (
    BYOLTransform3D,
    BYOLView1Transform3D,
    BYOLView2Transform3D,
)
from lightly_topo.transforms.collate import ViewBatch, collate_views
from lightly_topo.transforms.correspondence import TokenMatches, matched_tokens, token_centres
from lightly_topo.transforms.crop import CenterCrop3D, RandomCrop3D, RandomResizedCrop3D
from lightly_topo.transforms.dropout import DropoutParams, RandomModalityDropout
from lightly_topo.transforms.elastic import RandomElastic3D
from lightly_topo.transforms.errors import (
    NotEnoughModalitiesError,
    TransformError,
    TransformInputError,
)
from lightly_topo.transforms.flip import RandomFlip3D
from lightly_topo.transforms.foreground import foreground_tokens
from lightly_topo.transforms.grid import identity_grid
from lightly_topo.transforms.intensity import (
    IntensityTransform3D,
    RandomBiasField3D,
    RandomContrast3D,
    RandomGamma3D,
    RandomGaussianBlur3D,
    RandomGaussianNoise3D,
    RandomScaleShift3D,
)
from lightly_topo.transforms.mae_transform import MAETransform3D
from lightly_topo.transforms.multi_view_transform import MultiViewTransform3D
from lightly_topo.transforms.pipeline import Augment3D, AugmentParams, AugmentResult
from lightly_topo.transforms.rotate90 import RandomRotate90_3D
from lightly_topo.transforms.simclr_transform import SimCLRTransform3D, SimCLRViewTransform3D
from lightly_topo.transforms.spatial import (
    SpatialCompose3D,
    SpatialParams,
    SpatialResult,
    SpatialStep,
    SpatialTransform3D,
)
from lightly_topo.transforms.topo_transform import TopoTransform3D
from lightly_topo.transforms.view import View, ViewTransform3D

__all__ = [
    "Augment3D",
    "AugmentParams",
    "AugmentResult",
    "BYOLTransform3D",
    "BYOLView1Transform3D",
    "BYOLView2Transform3D",
    "BatchAugment3D",
    "BatchViews",
    "CenterCrop3D",
    "DropoutParams",
    "IntensityTransform3D",
    "MAETransform3D",
    "MultiViewTransform3D",
    "NotEnoughModalitiesError",
    "RandomAffine3D",
    "RandomBiasField3D",
    "RandomContrast3D",
    "RandomCrop3D",
    "RandomElastic3D",
    "RandomFlip3D",
    "RandomGamma3D",
    "RandomGaussianBlur3D",
    "RandomGaussianNoise3D",
    "RandomModalityDropout",
    "RandomResizedCrop3D",
    "RandomRotate90_3D",
    "RandomScaleShift3D",
    "SimCLRTransform3D",
    "SimCLRViewTransform3D",
    "SpatialCompose3D",
    "SpatialParams",
    "SpatialResult",
    "SpatialStep",
    "SpatialTransform3D",
    "TokenMatches",
    "TopoTransform3D",
    "TransformError",
    "TransformInputError",
    "View",
    "ViewBatch",
    "ViewTransform3D",
    "collate_views",
    "foreground_tokens",
    "identity_grid",
    "matched_tokens",
    "token_centres",
]
