"""The TACO topology terms added to SimCLR, BYOL and MAE on the same backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightly_topo.methods.byol import BYOL3D
from lightly_topo.methods.components import (
    build_topo_loss,
    ensure_min_tokens,
    feature_level,
    foreground,
    tokens,
    topo_stats,
)
from lightly_topo.methods.config import ConfigError, PretrainConfig
from lightly_topo.methods.mae import MAE3D
from lightly_topo.methods.simclr import SimCLR3D
from lightly_topo.methods.two_view import TwoViewMethod
from lightly_topo.models import Backbone3D
from lightly_topo.transforms.foreground import foreground_tokens


class ViewTopoTerm(nn.Module):
    """Topology terms between the dense features of two spatial views of each subject.

    The two views of an instance method are different crops of one subject, so token ``i``
    of view 0 and token ``i`` of view 1 are not the same point. Their voxel grids tell
    where each token lies: :func:`~lightly_topo.transforms.matched_tokens` pairs every token
    of view 0 with the token of view 1 at the same place (where there is one). The tokens of
    view 1 are re-ordered onto view 0's grid and
    :class:`~lightly_topo.loss.TopoAlignLoss` runs on the matched, foreground tokens.

    Args:
        config: The run's configuration (``topo`` section).
        backbone: The method's backbone (for the level's stride).
    """

    def __init__(self, config: PretrainConfig, backbone: Backbone3D) -> None:
        super().__init__()
        self.k = config.topo.k
        self.level = feature_level(config, backbone, config.data.crop_size)
        self.stride = int(backbone.feature_strides[self.level])
        self.loss = build_topo_loss(config)

    def forward(
        self,
        feats0: Sequence[Tensor],
        feats1: Sequence[Tensor],
        view0: dict[str, Any],
        view1: dict[str, Any],
        subject_ids: Sequence[str],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Topology loss and statistics (``valid_fraction``, ``intra``, ``inter``, ...)."""
        from lightly_topo.transforms import matched_tokens

        dense0, dense1 = feats0[self.level], feats1[self.level]
        index, valid = matched_view_index(matched_tokens, view0["grid"], view1["grid"], self.stride)
        index = index.to(dense1.device)
        valid = valid.to(dense1.device)
        tok1 = tokens(dense1)
        gathered = torch.gather(
            tok1, 1, index.clamp(0, tok1.shape[1] - 1)[..., None].expand(-1, -1, tok1.shape[2])
        )
        fg = view0.get("foreground")
        if fg is None:
            fg = foreground(view0["image"], view0["mask"])
        valid = valid & foreground_tokens(fg, self.stride)
        valid_fraction = valid.float().mean().detach()
        valid = ensure_min_tokens(valid, self.k)
        loss = self.loss(tokens(dense0), gathered, subject_ids=list(subject_ids), mask=valid)
        return loss, {"valid_fraction": valid_fraction, **topo_stats(self.loss)}


def matched_view_index(
    matcher: Any, grid0: Tensor, grid1: Tensor, stride: int
) -> tuple[Tensor, Tensor]:
    """Batched token correspondence ``(index (B, N0), valid (B, N0))`` from two view grids."""
    matches = matcher(grid0, grid1, stride)
    return matches.index_b.long(), matches.valid.bool()


class ViewTopoMixin(TwoViewMethod):
    """Adds :class:`ViewTopoTerm` to a two-view method as its extra loss term.

    Put it before the baseline in the bases (``class SimCLRTopo3D(ViewTopoMixin,
    SimCLR3D)``): the baseline is built first, then :attr:`topo_term`; :meth:`extra_terms`
    returns the topology loss and its statistics and records the valid and matched token
    fractions in ``step_outputs``.

    Args:
        config: The run's configuration.
        modality_names: The dataset's modality vocabulary.
    """

    uses_topo: ClassVar[bool] = True
    uses_foreground: ClassVar[bool] = True

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        super().__init__(config, modality_names)
        self.topo_term = ViewTopoTerm(config, self.mm_encoder.backbone)

    def extra_terms(
        self, feats0: list[Tensor], feats1: list[Tensor], batch: dict[str, Any]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        view0, view1 = batch["views"][:2]
        loss, stats = self.topo_term(feats0, feats1, view0, view1, batch["subject_id"])
        self.step_outputs["valid_fraction"] = stats.pop("valid_fraction")
        if "matched_fraction" in stats:
            self.step_outputs["matched_fraction"] = stats["matched_fraction"]
        return {"topo": loss}, stats


class SimCLRTopo3D(ViewTopoMixin, SimCLR3D):
    """SimCLR plus the TACO topology terms on the two views' dense features.

    ``loss = loss.instance_weight * ntxent + topo.intra_weight * intra + topo.inter_weight *
    inter``, the topology terms on the tokens of :attr:`topo_term` (matched between the two
    views, brain foreground). Same backbone, views and batches as :class:`SimCLR3D`.
    """

    name: ClassVar[str] = "simclr+topo"
    description: ClassVar[str] = (
        "SimCLR plus the TACO topology terms (matched tokens of the two views)."
    )


class BYOLTopo3D(ViewTopoMixin, BYOL3D):
    """BYOL plus the TACO topology terms on the two views' dense features (online network).

    ``loss = loss.instance_weight * byol + topo.intra_weight * intra + topo.inter_weight *
    inter``; see :class:`SimCLRTopo3D`.
    """

    name: ClassVar[str] = "byol+topo"
    description: ClassVar[str] = (
        "BYOL plus the TACO topology terms (matched tokens of the two views)."
    )


class MAETopo3D(MAE3D):
    """MAE plus the TACO topology terms between the modalities of each subject.

    The MAE view holds all modalities of a subject under one crop; with the shared encoder
    each modality is encoded separately (with the same mask), so their dense features are
    aligned token by token. :class:`~lightly_topo.loss.TopoAlignLoss` compares one random
    available modality pair per subject (``modality_pairs="random"``) on the foreground
    tokens: at ``topo.level`` of the multi-scale features (masked-input MAE on CNN/Swin), or
    on the kept patch tokens (token-dropping MAE on the ViT: all modalities of a subject keep
    the same tokens). ``loss = loss.recon_weight * reconstruction + topology``.

    Needs ``model.modality_handling: shared`` and data with at least two modalities.
    """

    name: ClassVar[str] = "mae+topo"
    description: ClassVar[str] = (
        "MAE plus the TACO topology terms between the modalities of each subject."
    )
    needs_pairs: ClassVar[bool] = True
    uses_foreground: ClassVar[bool] = True

    def __init__(self, config: PretrainConfig, modality_names: Sequence[str]) -> None:
        if config.model.modality_handling != "shared":
            raise ConfigError(
                "mae+topo compares the modalities' own features: set "
                "model.modality_handling to 'shared' (got 'stacked')."
            )
        super().__init__(config, modality_names)
        if self.token_dropping:
            self.level = len(self.backbone.feature_strides) - 1
        else:
            self.level = feature_level(config, self.backbone, config.data.crop_size)
        self.stride = int(self.backbone.feature_strides[self.level])
        self.topo = build_topo_loss(config, modality_pairs="random")

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        view = batch["views"][0]
        image, avail = view["image"], view["mask"]
        recon, features, index, keep = self.reconstruct(image, avail)
        self._record(features, index, view, batch)
        b, m = avail.shape
        fg_tokens = self.view_foreground_tokens(view, self.stride)
        if isinstance(features, Tensor):
            assert keep is not None
            rows = features  # (B', n_keep, C), kept patches of the sample of each row
            per_sample_keep = torch.zeros(b, keep.shape[1], dtype=torch.long, device=keep.device)
            per_sample_keep[index[:, 0]] = keep
            valid = torch.gather(fg_tokens, 1, per_sample_keep)
        else:
            rows = tokens(features[self.level])
            valid = fg_tokens
        stack = rows.new_zeros(b, m, *rows.shape[1:])
        stack[index[:, 0], index[:, 1]] = rows
        self.step_outputs["valid_fraction"] = valid.float().mean().detach()
        valid = ensure_min_tokens(valid, self.config.topo.k)
        topo = self.topo(
            stack, subject_ids=list(batch["subject_id"]), mask=valid, modality_mask=avail
        )
        parts = {"reconstruction": recon.detach(), "topo": topo.detach(), **topo_stats(self.topo)}
        if "matched_fraction" in self.topo.last_stats:
            self.step_outputs["matched_fraction"] = self.topo.last_stats[
                "matched_fraction"
            ].detach()
        return self.config.loss.recon_weight * recon + topo, parts
