"""Label prototypes in the latent space (CARAT-SPEC 1.6-1.7).

For every modality m and label j the bank keeps a positive and a negative prototype: a
momentum average of the normalised latents of samples that have / lack label j. They
give the "intrinsic" vectors that fill a modality's own slot in the first-level
reconstruction.
"""

from __future__ import annotations

import torch
from torch import nn


class PrototypeBank(nn.Module):
    """Buffers ``pos`` and ``neg`` ``[M,C,d_z]``, zero at start, saved with the weights."""

    def __init__(self, modalities: int, num_labels: int, latent: int, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("pos", torch.zeros(modalities, num_labels, latent))
        self.register_buffer("neg", torch.zeros(modalities, num_labels, latent))

    def intrinsic(self, z_hat: torch.Tensor, hard: bool) -> torch.Tensor:
        """Intrinsic latents ``[B,M,C,d_z]`` for normalised latents ``z_hat`` ``[B,M,C,d_z]``.

        Similarities are raw dot products with the (unnormalised) prototypes, softmaxed
        over {pos, neg}. Soft (training, Eq. 9): the similarity-weighted mix of the two.
        Hard (prediction, Eq. 10): ``pos`` where its similarity is strictly larger, else ``neg``.
        """
        # copies: the update after the loss runs in place, before the backward pass
        pos = self.pos.to(z_hat.dtype, copy=True)
        neg = self.neg.to(z_hat.dtype, copy=True)
        sims = torch.stack([(z_hat * pos).sum(-1), (z_hat * neg).sum(-1)], dim=-1)  # [B,M,C,2]
        if hard:
            pick_pos = (sims[..., 0] > sims[..., 1])[..., None]
            return torch.where(pick_pos, pos, neg)
        weights = torch.softmax(sims, dim=-1)
        return weights[..., :1] * pos + weights[..., 1:] * neg

    def neutral(self) -> torch.Tensor:
        """The label-agnostic intrinsic latent ``[M,C,d_z]`` of a modality that is absent: the
        even mix of its two prototypes (no evidence for either polarity)."""
        return 0.5 * (self.pos + self.neg)

    @torch.no_grad()
    def update(
        self, z_hat: torch.Tensor, labels: torch.Tensor, present: torch.Tensor | None = None
    ) -> None:
        """Eq. 8 for a whole batch at once, equal to the authors' per-sample loop.

        The loop runs ``p <- m p + (1 - m) z_i`` over the k samples of the batch that
        update ``p``, in batch order. Unrolled, that is
        ``p <- m^k p + sum_r (1 - m) m^(k - 1 - r) z_(r)`` where r is the sample's rank
        among those k. ``z_hat`` ``[B,M,C,d_z]`` (detached, normalised level-0 latents);
        ``labels`` ``[B,C]``, where ``>= 0.5`` counts as positive (``== 1`` for {0, 1} labels).
        ``present`` ``[B,M]`` (bool): a sample updates only the modalities it has.
        """
        z = z_hat.detach().to(self.pos.dtype)
        positive = (labels >= 0.5).to(z.dtype)  # [B,C]
        if present is None:
            members = ((positive, "bc"), (1.0 - positive, "bc"))
        else:
            have = present.to(z.dtype)[:, :, None]  # [B,M,1]
            members = ((positive[:, None] * have, "bmc"), ((1.0 - positive)[:, None] * have, "bmc"))
        m = torch.as_tensor(self.momentum, dtype=z.dtype, device=z.device)
        for bank, (member, dims) in zip((self.pos, self.neg), members, strict=True):
            count = member.sum(0)  # [C] or [M,C]
            rank = member.cumsum(0) - member  # rank among this label's members
            exponent = (count - 1.0 - rank).clamp(min=0.0)  # non-members: weight 0 below
            weight = member * (1.0 - m) * m**exponent
            bank.mul_((m**count)[..., None] if dims == "bmc" else (m**count)[None, :, None])
            bank.add_(torch.einsum(f"{dims},bmcd->mcd", weight, z))
