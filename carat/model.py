"""CARAT: contrastive feature reconstruction and aggregation (AAAI 2024; CARAT-SPEC 1).

Tensors of the three modalities are stacked on dim 1 in the order text, visual, audio, so
label-level features are ``[B,3,C,d]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from carat.config import CaratConfig, ConfigError
from carat.contrastive import SupConQueue
from carat.data.types import MODALITIES, Batch
from carat.errors import DataError
from carat.modules import (
    MLP,
    LabelWiseAttention,
    SoftResampler,
    TransformerEncoder,
    input_norm,
    kaiming_rows,
)
from carat.prototypes import PrototypeBank

AE_HIDDEN = 128  # hidden width of the En_m / De_m MLPs
AGG_HIDDEN = 256  # hidden width of the aggregation MLP


@dataclass
class CaratOutput:
    """What prediction needs. ``scores`` are Eq. 16 probabilities ``[B,C]``."""

    scores: torch.Tensor
    modality_logits: torch.Tensor  # [B,C,3] final-level classifier logits (t, v, a)
    winner: torch.Tensor  # [B,C] long: the modality that wins the max-pool for each label


@dataclass
class Intermediates:
    """Every stage of one forward pass (``None`` where an ablation removes the stage)."""

    lsr: torch.Tensor  # [B,3,C,d] label-specific features (Eq. 1)
    latent: torch.Tensor  # [B,3,C,d_z] z_m = En_m(lsr_m)
    recon: torch.Tensor  # [B,3,C,d] De_m(z_m)
    intrinsic: torch.Tensor | None  # [B,3,C,d] decoded prototype mix ("pad")
    frr: torch.Tensor | None  # [B,3,C,d] first-level reconstruction ("aug")
    srr: torch.Tensor | None  # [B,3,C,d] second-level reconstruction ("beta")
    final: torch.Tensor  # [B,3,C,d] the last level present: what prediction reads
    level_logits: dict[str, torch.Tensor]  # "lsr" / "frr" / "srr" -> [B,C,3]
    agg_logits: torch.Tensor | None  # [B,3,C] aggregation head on ``final``
    present: torch.Tensor | None = None  # [B,3] bool; None: every modality of every sample

    @property
    def used(self) -> torch.Tensor | None:
        """The modality rows that pooling and aggregation read ``[B,3]``: the present ones, or
        all three rows (a data-free prior, built from prototypes only) when none is present."""
        if self.present is None:
            return None
        return self.present | ~self.present.any(dim=1, keepdim=True)

    @property
    def levels(self) -> dict[str, torch.Tensor]:
        """The reconstruction levels present, in order: lsr, then frr, then srr."""
        named = {"lsr": self.lsr, "frr": self.frr, "srr": self.srr}
        return {name: x for name, x in named.items() if x is not None}


class CARAT(nn.Module):
    """The CARAT model, its losses (spec 1.12) and its training-time state updates.

    Ablation switches (``cfg.model.ablation``), each one what it removes when ``False``:

    * ``mrm``: the max-pooled per-modality classifiers; their BCE terms go and the score is
      the aggregation term alone. ``modality_logits`` / ``winner`` are then untrained.
    * ``agg``: the aggregation head and both of its losses; the score is the classifier
      term alone. (``mrm`` and ``agg`` cannot both be off.)
    * ``contrastive``: the SupCon term and its queue.
    * ``encoder_decoder``: En_m / De_m become identities, so the latent space is the d-dim
      label-specific feature, prototypes live there, the intrinsic vector is used undecoded,
      and the (then zero) autoencoder MSE term goes.
    * ``reconstruction_loss``: the three reconstruction MSE terms.
    * ``first_level``: FRR and the prototypes; SRR reads the label-specific features. Its
      classifier and MSE terms go.
    * ``second_level``: SRR; the FRR output is the final level.
      With both levels off the label-specific features are the final level.
    * ``sample_shuffle`` / ``modality_shuffle``: that index of the shuffled aggregation
      copy becomes the identity; with both off the copy equals the input and its loss goes.

    Classifier terms: the final level always gets ``loss.srr_clf``; ``lsr_clf`` and
    ``aug_clf`` apply to the label-specific / FRR levels only while they are intermediate.

    Missing modalities (``Batch.present``, or an all-padding mask with ``mask_padding``) take a
    defined path instead of being read as data: an absent modality's label-specific features
    are never computed from its input; its slot in both reconstruction levels holds its
    label-agnostic intrinsic vector (the decoded mean of its two prototypes); its classifier and
    aggregation rows are left out of the max-pool and of the mean; and it adds no loss term,
    contrastive vector or prototype update. With no modality present the output is the model's
    data-free prior. ``model.modality_dropout`` masks modalities at random while training so
    that the model learns this path (0 in the paper presets: their behaviour is unchanged).
    """

    def __init__(self, cfg: CaratConfig) -> None:
        super().__init__()
        mc = cfg.model
        ab = mc.ablation
        if not (ab.mrm or ab.agg):
            raise ConfigError("model.ablation: mrm and agg cannot both be off (no prediction head)")
        if not 0.0 <= mc.modality_dropout < 1.0:
            raise ConfigError(
                f"model.modality_dropout must be in [0, 1), got {mc.modality_dropout}"
            )
        self.cfg = cfg
        c, d = mc.num_labels, mc.hidden
        self.latent_dim = mc.latent if ab.encoder_decoder else d

        self.input_norms = nn.ModuleDict(
            {m: input_norm(mc.dims[m], m, mc.standardize_inputs) for m in MODALITIES}
        )
        self.resamplers = nn.ModuleDict(
            {}
            if mc.aligned
            else {
                m: SoftResampler(mc.dims[m], mc.ctc_out_len, mc.checkpoint_min_len)
                for m in ("visual", "audio")
            }
        )
        self.encoders = nn.ModuleDict(
            {
                m: TransformerEncoder(
                    mc.dims[m],
                    mc.max_positions[m],
                    mc.layers[m],
                    d,
                    mc.heads,
                    mc.intermediate,
                    mc.dropout,
                    mc.attention_dropout,
                    mc.checkpoint_min_len,
                )
                for m in MODALITIES
            }
        )
        self.label_attention = nn.ModuleList(LabelWiseAttention(d, c) for _ in MODALITIES)
        if ab.encoder_decoder:
            self.latent_encoders = nn.ModuleList(MLP([d, AE_HIDDEN, mc.latent]) for _ in MODALITIES)
            self.latent_decoders = nn.ModuleList(MLP([mc.latent, AE_HIDDEN, d]) for _ in MODALITIES)
        else:
            self.latent_encoders = nn.ModuleList(nn.Identity() for _ in MODALITIES)
            self.latent_decoders = nn.ModuleList(nn.Identity() for _ in MODALITIES)
        if ab.first_level or ab.second_level:
            # R_t = va2t, R_v = ta2v, R_a = tv2a: one Linear(3d -> d) each
            self.reconstructors = nn.ModuleList(MLP([3 * d, d]) for _ in MODALITIES)
        self.classifiers = nn.ParameterList(kaiming_rows(c, d) for _ in MODALITIES)
        if ab.agg:
            self.aggregator = MLP([c * d, AGG_HIDDEN, c])
        if ab.first_level:  # the prototypes only feed the first level
            self.prototypes = PrototypeBank(len(MODALITIES), c, self.latent_dim, mc.proto_momentum)
        if ab.contrastive:
            cc = cfg.contrastive
            self.queue = SupConQueue(
                cc.queue_size,
                self.latent_dim,
                cc.temperature,
                cc.base_temperature,
                cc.queue_anchors,
            )
        # the shuffles' random stream; the trainer gives it each seed's own stream
        self.rng = np.random.default_rng(0)

    # ------------------------------------------------------------------ forward

    def encode(self, batch: Batch) -> Intermediates:
        """Run every stage; training mode uses soft intrinsic vectors, eval mode hard ones."""
        return self.head(self.label_features(batch), self.presence(batch))

    def label_features(self, batch: Batch) -> torch.Tensor:
        """Eq. 1 for every modality: ``[B,3,C,d]`` (rows of absent modalities are not used)."""
        return torch.stack([self._label_features(batch, m) for m in MODALITIES], dim=1)

    def presence(self, batch: Batch) -> torch.Tensor | None:
        """Which modalities each sample has, ``[B,3]`` bool, or None when all have all three.

        ``batch.present`` when given; else, with ``mask_padding``, a modality whose mask has no
        real step is absent (no words, no face, no audio); else every modality is present.
        """
        present = batch.present
        if present is None and self.cfg.model.mask_padding:
            present = torch.stack([self._mask(batch, m).bool().any(dim=1) for m in MODALITIES], 1)
        if present is None:
            return None
        present = torch.as_tensor(present, dtype=torch.bool)
        return None if bool(present.all()) else present

    def head(self, lsr: torch.Tensor, present: torch.Tensor | None) -> Intermediates:
        """Everything after the label-wise attention, for the modalities ``present`` ``[B,3]``."""
        ab = self.cfg.model.ablation
        if present is not None:
            present = present.to(lsr.device)
            lsr = lsr.masked_fill(~present[:, :, None, None], 0.0)
        latent = self._per_modality(self.latent_encoders, lsr)
        recon = self._per_modality(self.latent_decoders, latent)

        intrinsic = frr = srr = None
        if ab.first_level:
            z_hat = F.normalize(latent, dim=-1)
            mix = self.prototypes.intrinsic(z_hat, hard=not self.training)
            slots = recon
            if present is not None:
                absent = ~present[:, :, None, None]
                mix = torch.where(absent, self.prototypes.neutral().to(mix.dtype), mix)
            intrinsic = self._per_modality(self.latent_decoders, mix)
            if present is not None:
                slots = torch.where(absent, intrinsic, recon)
            frr = self._first_level(slots, intrinsic)
        if ab.second_level:
            srr = self._second_level(lsr if frr is None else frr)
        final = next(x for x in (srr, frr, lsr) if x is not None)

        inter = Intermediates(lsr, latent, recon, intrinsic, frr, srr, final, {}, None, present)
        inter.level_logits = {name: self._classify(x) for name, x in inter.levels.items()}
        if ab.agg:
            inter.agg_logits = self._aggregate(final)
        return inter

    def forward(self, batch: Batch) -> CaratOutput:
        return self.predict_from(self.encode(batch))

    def predict_from(self, inter: Intermediates) -> CaratOutput:
        """Eq. 16: ``0.5 * (mean_m sigmoid(agg) + sigmoid(max_m logit))`` (or one term alone)."""
        ab = self.cfg.model.ablation
        logits = inter.level_logits[list(inter.levels)[-1]]
        pooled, winner = max_pool(logits, inter.used)
        terms = []
        if ab.agg:
            terms.append(row_mean(torch.sigmoid(inter.agg_logits.float()), inter.used))
        if ab.mrm:
            terms.append(torch.sigmoid(pooled.float()))
        scores = sum(terms) / len(terms)
        return CaratOutput(scores=scores, modality_logits=logits, winner=winner)

    def _label_features(self, batch: Batch, modality: str) -> torch.Tensor:
        x = self.input_norms[modality](batch.features[modality].float())
        mask = self._mask(batch, modality)
        if modality in self.resamplers:
            x = self.resamplers[modality](x, mask)
            mask = None  # every re-sampled step mixes real input
        h = self.encoders[modality](x, mask)
        return self.label_attention[MODALITIES.index(modality)](h, mask)

    def _mask(self, batch: Batch, modality: str) -> torch.Tensor | None:
        if not self.cfg.model.mask_padding:
            return None
        if modality not in batch.masks:
            raise DataError(
                f"model.mask_padding is on but the batch has no {modality} mask; "
                "give masks or set model.mask_padding=false"
            )
        return batch.masks[modality]

    @staticmethod
    def _per_modality(modules: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([module(x[:, i]) for i, module in enumerate(modules)], dim=1)

    def _first_level(self, recon: torch.Tensor, intrinsic: torch.Tensor) -> torch.Tensor:
        """FRR: modality m's slot holds its intrinsic vector, the others their reconstructions."""
        out = []
        for m, net in enumerate(self.reconstructors):
            slots = [intrinsic[:, k] if k == m else recon[:, k] for k in range(len(MODALITIES))]
            out.append(net(torch.cat(slots, dim=-1)))
        return torch.stack(out, dim=1)

    def _second_level(self, x: torch.Tensor) -> torch.Tensor:
        """SRR: every network reads all three modalities of ``x`` ``[B,3,C,d]``."""
        joined = x.permute(0, 2, 1, 3).flatten(2)  # [B,C,3d] in the order t, v, a
        return torch.stack([net(joined) for net in self.reconstructors], dim=1)

    def _classify(self, x: torch.Tensor) -> torch.Tensor:
        """Per-label, per-modality logits ``<x_m[b,c], W_m[c]>`` as ``[B,C,3]`` (Eq. 4)."""
        weight = torch.stack(list(self.classifiers))  # [3,C,d]
        return torch.einsum("bmcd,mcd->bcm", x, weight.to(x.dtype))

    def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """Each modality row reads all C label vectors of that modality: ``[B,3,C]``."""
        return self.aggregator(x.flatten(2))

    # ------------------------------------------------------------------ training

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward, every loss term, then the prototype and queue updates.

        Returns the weighted total (to backpropagate) and the detached terms plus
        ``"total"``. The forward pass sees the prototypes and queue from before this step.
        """
        if batch.labels is None:
            raise ValueError("training_step needs a batch with labels")
        labels = batch.labels.float()
        if self.cfg.model.modality_dropout > 0:
            batch = replace(batch, present=self.drop_modalities(batch))
        inter = self.encode(batch)
        terms, embeddings, ids = self.loss_terms(inter, labels)
        weights = self.cfg.model.loss
        total = sum(getattr(weights, name) * value for name, value in terms.items())
        self.update_state(inter, labels, embeddings, ids)
        report = {name: value.detach() for name, value in terms.items()}
        report["total"] = total.detach()
        return total, report

    def drop_modalities(self, batch: Batch) -> torch.Tensor:
        """The batch's presence with each modality of each sample masked at the
        ``model.modality_dropout`` rate (independently: a sample may lose all three, which
        trains the data-free prior)."""
        rate = self.cfg.model.modality_dropout
        b = batch.labels.shape[0]
        device = batch.labels.device
        present = self.presence(batch)
        if present is None:
            present = torch.ones(b, len(MODALITIES), dtype=torch.bool, device=device)
        dropped = torch.rand(b, len(MODALITIES), device=device) < rate
        return present.to(device) & ~dropped

    def loss_terms(
        self, inter: Intermediates, labels: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """Unweighted loss terms keyed by their ``LossWeights`` name (spec 1.12).

        Also returns the contrastive embeddings and class ids (``None`` without contrastive).
        """
        ab = self.cfg.model.ablation
        terms: dict[str, torch.Tensor] = {}
        present, used = inter.present, inter.used
        if ab.mrm:
            final_name = list(inter.levels)[-1]
            term_of = {"lsr": "lsr_clf", "frr": "aug_clf"}
            for name, logits in inter.level_logits.items():
                term = "srr_clf" if name == final_name else term_of[name]
                terms[term] = bce(max_pool(logits, used)[0], labels)
        embeddings = ids = None
        if ab.contrastive:
            embeddings, ids = self.contrastive_inputs(inter, labels)
            keep = self.contrastive_keep(inter)
            if keep is None:
                terms["contrastive"] = self.queue(embeddings, ids)
            else:
                terms["contrastive"] = self.queue(embeddings[keep], ids[keep])
        if ab.reconstruction_loss:
            if ab.encoder_decoder:
                terms["recon_mse"] = modality_mse(inter.recon, inter.lsr, present)
            if inter.frr is not None:
                terms["aug_mse"] = modality_mse(inter.frr, inter.lsr, present)
            if inter.srr is not None:
                terms["beta_mse"] = modality_mse(inter.srr, inter.lsr, present)
        if ab.agg:
            rows = None if used is None else used[:, :, None].expand_as(inter.agg_logits)
            targets = labels[:, None, :].expand_as(inter.agg_logits)
            terms["agg"] = bce(inter.agg_logits, targets, rows)
            if ab.sample_shuffle or ab.modality_shuffle:
                shuffled, targets, rows = self.shuffle(inter.final, labels, used)
                terms["shuffle"] = bce(self._aggregate(shuffled), targets, rows)
        return terms, embeddings, ids

    @staticmethod
    def contrastive_keep(inter: Intermediates) -> torch.Tensor | None:
        """Which rows of :meth:`contrastive_inputs` belong to present modalities (None: all)."""
        if inter.present is None:
            return None
        b, n_mod = inter.present.shape
        levels, c = len(inter.levels), inter.lsr.shape[2]
        return inter.present[:, None, :, None].expand(b, levels, n_mod, c).reshape(-1)

    def contrastive_inputs(
        self, inter: Intermediates, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents of every level ``[B*levels*3*C, d_z]`` and their class ids.

        Order per sample: level (lsr, frr, srr), then modality, then label. The class id of
        modality m, label j is ``j + C * (2m + (0 if y_j >= 0.5 else 1))``.
        """
        latents = [inter.latent] + [
            self._per_modality(self.latent_encoders, x)
            for name, x in inter.levels.items()
            if name != "lsr"
        ]
        feats = F.normalize(torch.stack(latents, dim=1), dim=-1)  # [B,levels,3,C,d_z]
        b, levels, n_mod, c, _ = feats.shape
        label_id = torch.arange(c, device=labels.device)
        modality = torch.arange(n_mod, device=labels.device)[:, None]
        negative = (labels < 0.5).long()[:, None, :]  # [B,1,C]
        ids = label_id + c * (2 * modality + negative)  # [B,3,C]
        ids = ids[:, None].expand(b, levels, n_mod, c)
        return feats.reshape(-1, feats.shape[-1]), ids.reshape(-1).float()

    def shuffle(
        self, x: torch.Tensor, labels: torch.Tensor, used: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The shuffled copy of ``x`` ``[B,3,C,d]``, its targets ``[B,3,C]`` (Eq. 11-13) and
        which of its slots come from a used modality row (None: all, when ``used`` is None).

        ``out[b,m,l] = x[S[b,m,l], M[b,m,l], l]`` where ``S[:,m,l]`` is a fresh permutation
        of the batch for each (label, modality slot) and ``M[b,:,l]`` a fresh permutation of
        the modalities for each (label, sample); the target is ``labels[S[b,m,l], l]``.
        """
        ab = self.cfg.model.ablation
        b, n_mod, c, _ = x.shape
        sample = np.broadcast_to(np.arange(b)[None, None, :], (c, n_mod, b))
        modality = np.broadcast_to(np.arange(n_mod)[None, None, :], (c, b, n_mod))
        if ab.sample_shuffle:
            sample = self.rng.permuted(sample, axis=-1)
        if ab.modality_shuffle:
            modality = self.rng.permuted(modality, axis=-1)
        s = torch.from_numpy(np.ascontiguousarray(sample.transpose(2, 1, 0))).to(x.device)
        m = torch.from_numpy(np.ascontiguousarray(modality.transpose(1, 2, 0))).to(x.device)
        label = torch.arange(c, device=x.device).expand(b, n_mod, c)
        rows = None if used is None else used[s, m]
        return x[s, m, label], labels[s, label], rows

    @torch.no_grad()
    def update_state(
        self,
        inter: Intermediates,
        labels: torch.Tensor,
        embeddings: torch.Tensor | None,
        ids: torch.Tensor | None,
    ) -> None:
        """Momentum-update the prototypes (level-0 latents) and enqueue the embeddings."""
        present = inter.present
        if present is not None and bool(present.all()):
            present = None
        if self.cfg.model.ablation.first_level:
            self.prototypes.update(F.normalize(inter.latent.detach(), dim=-1), labels, present)
        if embeddings is not None:
            keep = self.contrastive_keep(replace(inter, present=present))
            if keep is not None:
                embeddings, ids = embeddings[keep], ids[keep]
            self.queue.enqueue(embeddings, ids)


def max_pool(logits: torch.Tensor, used: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4's max over the modalities of ``logits`` ``[B,C,3]``, over the ``used`` rows only:
    the pooled logits ``[B,C]`` and the winning modality ``[B,C]``."""
    if used is not None:
        logits = logits.masked_fill(~used[:, None, :], float("-inf"))
    pooled = logits.max(dim=-1)
    return pooled.values, pooled.indices


def row_mean(x: torch.Tensor, used: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` ``[B,3,C]`` over the used modality rows: ``[B,C]``."""
    if used is None:
        return x.mean(dim=1)
    weight = used.to(x.dtype)[:, :, None]
    return (x * weight).sum(dim=1) / weight.sum(dim=1)


def bce(
    logits: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean ``BCEWithLogitsLoss`` in float32, over the ``keep`` entries only when given."""
    if keep is None:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
    weight = keep.float()
    total = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), weight=weight, reduction="sum"
    )
    return total / weight.sum().clamp(min=1.0)


def modality_mse(
    x: torch.Tensor, target: torch.Tensor, present: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_m MSE(x_m, target_m)`` over the modality dim 1 (targets not detached); with
    ``present`` ``[B,3]``, each modality's mean runs over the samples that have it."""
    error = (x.float() - target.float()).pow(2)
    if present is None:
        return error.mean(dim=(0, 2, 3)).sum()
    weight = present.float()
    per_sample = error.mean(dim=(2, 3))  # [B,3]
    return ((per_sample * weight).sum(dim=0) / weight.sum(dim=0).clamp(min=1.0)).sum()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
