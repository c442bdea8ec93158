"""The building blocks of CARAT (CARAT-SPEC 1.1-1.5): each one a small ``nn.Module``.

Shapes use B batch, L steps, D input features, d hidden, C labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from carat.config import ConfigError
from carat.data.types import SplitData

LAYER_NORM_EPS = 1e-12  # BERT / TF style, inside the square root
INIT_STD = 0.02
ATTENTION_CHUNK_ELEMENTS = 2**25  # largest attention-score tensor built at once (128 MB)


def input_norm(dim: int, modality: str, standardize: bool = False) -> nn.LayerNorm:
    """The learnable per-modality normalisation of raw features (spec 1.1); with
    ``standardize``, preceded by the training split's per-dimension standardisation."""
    if standardize:
        return StandardizedLayerNorm(dim, modality)
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


class StandardizedLayerNorm(nn.LayerNorm):
    """Spec 1.1's LayerNorm over ``(x - mean) / std``, per dimension, with the mean and std of
    the training split (``fit``; saved with the weights).

    A LayerNorm over one step's raw features cannot tell a voice raised in pitch from the same
    voice: multiplying every frequency (Hz) by one factor leaves its output unchanged, and the
    dimensions in Hz, degrees or pixels drown those in [0, 1]. Standardising first puts every
    dimension on one scale.
    """

    def __init__(self, dim: int, modality: str) -> None:
        super().__init__(dim, eps=LAYER_NORM_EPS)
        self.modality = modality
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, rows: torch.Tensor) -> None:
        """Mean and std of ``rows`` [N, D] (real steps only); a dimension constant there
        (std < 1e-6) keeps std 1, so that a value it never took is not blown up."""
        rows = rows.double()
        std = rows.std(dim=0, correction=0)
        self.mean.copy_(rows.mean(dim=0))
        self.std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward((x - self.mean) / self.std)


def fit_input_standardization(model: nn.Module, split: SplitData) -> None:
    """Fit every :class:`StandardizedLayerNorm` of ``model`` on the real (unpadded) steps of
    ``split`` (the training split)."""
    for module in model.modules():
        if isinstance(module, StandardizedLayerNorm):
            present = split.masks[module.modality].astype(bool)
            module.fit(torch.from_numpy(split.features[module.modality][present]))


def bert_init(module: nn.Module) -> None:
    """BERT's initialisation: weights N(0, 0.02), biases 0, LayerNorm 1/0 (spec 1.3)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from ``rand`` (about twice as fast as bernoulli).

    Same distribution: each element is kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``. The ``rand`` buffer becomes the scaled keep mask in place and the
    output is one multiply (backward too): a third less CPU than a boolean mask with
    ``masked_fill`` (``bench/dropout.py``), for a float mask kept for backward instead of a
    byte one. On other devices it is torch's fused dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """BERT's ``(1 - mask) * -10000`` attention bias ``[B,1,1,L]``; ``None`` means attend all."""
    if mask is None:
        return None
    return ((1.0 - mask.to(dtype)) * -10000.0)[:, None, None, :]


class EncoderLayer(nn.Module):
    """One post-LN BERT layer: self-attention, then a (d -> intermediate -> d) GELU FFN."""

    def __init__(
        self, hidden: int, heads: int, intermediate: int, dropout: float, attention_dropout: float
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.ffn_in = nn.Linear(hidden, intermediate)
        self.ffn_out = nn.Linear(intermediate, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout)
        self.attention_dropout = Dropout(attention_dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, length, hidden = x.shape
        q, k, v = (
            self.qkv(x).view(b, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        )
        bias = None if bias is None else bias.to(q.dtype)
        if self.training and self.attention_dropout.p > 0:
            context = self._attend_with_dropout(q, k, v, bias)
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        context = context.transpose(1, 2).reshape(b, length, hidden)
        x = self.attention_norm(x + self.dropout(self.attention_out(context)))
        ffn = self.ffn_out(F.gelu(self.ffn_in(x)))
        return self.ffn_norm(x + self.dropout(ffn))

    def _attend_with_dropout(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """Attention with dropout on the probabilities, written out (torch's fused kernels
        fall back to a slower path with dropout), a few heads at a time so that no score
        tensor exceeds ``ATTENTION_CHUNK_ELEMENTS`` (500-step inputs)."""
        per_head = q.shape[0] * q.shape[2] * k.shape[2]
        step = max(1, ATTENTION_CHUNK_ELEMENTS // per_head)
        q = q * q.shape[-1] ** -0.5
        contexts = []
        for h0 in range(0, q.shape[1], step):
            heads = slice(h0, h0 + step)
            scores = q[:, heads] @ k[:, heads].transpose(-1, -2)
            if bias is not None:
                scores += bias
            # softmax keeps only its output: drop our reference to the scores at once
            probs = torch.softmax(scores, dim=-1)
            del scores
            contexts.append(self.attention_dropout(probs) @ v[:, heads])
            del probs
        return torch.cat(contexts, dim=1)


class TransformerEncoder(nn.Module):
    """BERT-style encoder over one modality (spec 1.3): ``[B,L,D] -> [B,L,d]``.

    Linear input embedding plus learned absolute positions, LayerNorm, dropout, then
    ``layers`` post-LN layers. Layers over sequences of at least ``checkpoint_min_len``
    steps recompute their activations in the backward pass (same result, dropout included,
    far less memory for the 500-step unaligned inputs); ``0`` never does.
    """

    def __init__(
        self,
        in_dim: int,
        max_positions: int,
        layers: int,
        hidden: int,
        heads: int,
        intermediate: int,
        dropout: float,
        attention_dropout: float,
        checkpoint_min_len: int = 0,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(in_dim, hidden)
        self.positions = nn.Embedding(max_positions, hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden, heads, intermediate, dropout, attention_dropout)
            for _ in range(layers)
        )
        self.checkpoint_min_len = checkpoint_min_len
        self.apply(bert_init)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = x.shape[1]
        if length > self.positions.num_embeddings:
            raise ConfigError(
                f"sequence of {length} steps is longer than the encoder's "
                f"{self.positions.num_embeddings} positions; raise model.max_positions"
            )
        positions = torch.arange(length, device=x.device)
        h = self.dropout(self.embedding_norm(self.input_proj(x) + self.positions(positions)))
        bias = additive_mask(mask, h.dtype)
        recompute = self.training and 0 < self.checkpoint_min_len <= length
        for layer in self.layers:
            if recompute and torch.is_grad_enabled():
                h = checkpoint(layer, h, bias, use_reentrant=False)
            else:
                h = layer(h, bias)
        return h


class LabelWiseAttention(nn.Module):
    """Eq. 1: one attention distribution over steps per label, ``[B,L,d] -> [B,C,d]``."""

    def __init__(self, hidden: int, num_labels: int) -> None:
        super().__init__()
        self.scores = nn.Linear(hidden, num_labels, bias=False)
        nn.init.xavier_uniform_(self.scores.weight)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.scores(h).transpose(1, 2)  # [B,C,L]
        if mask is not None:
            # the most negative finite value, not -inf: an all-padding row stays finite
            scores = scores.masked_fill(mask[:, None, :] == 0, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=-1) @ h


class MLP(nn.Module):
    """The authors' ``MLLinear``: Linear layers with ReLU between them, none after the last.

    Weights are xavier-uniform; biases keep PyTorch's default init (spec 1.5).
    """

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.linears = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(sizes, sizes[1:], strict=False)
        )
        for linear in self.linears:
            nn.init.xavier_uniform_(linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < len(self.linears) - 1:
                x = F.relu(x)
        return x


class SoftResampler(nn.Module):
    """The authors' ``CTCModule`` (spec 1.2): soft re-sampling ``[B,L_in,D] -> [B,out_len,D]``.

    A 2-layer LSTM scores every input step against ``out_len + 1`` output slots; after a
    softmax over the slots the "blank" slot 0 is dropped and each output step is the
    weighted sum of the input steps. No CTC loss is involved. With a mask, padded input
    steps get weight 0. Inputs of at least ``checkpoint_min_len`` steps (``0``: never) are
    recomputed in the backward pass instead of keeping the LSTM's activations.
    """

    def __init__(self, in_dim: int, out_len: int, checkpoint_min_len: int = 0) -> None:
        super().__init__()
        self.out_len = out_len
        self.lstm = nn.LSTM(in_dim, out_len + 1, num_layers=2, batch_first=True)
        self.checkpoint_min_len = checkpoint_min_len

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        long_input = 0 < self.checkpoint_min_len <= x.shape[1]
        if self.training and long_input and torch.is_grad_enabled():
            return checkpoint(self._resample, x, mask, use_reentrant=False)
        return self._resample(x, mask)

    def _resample(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores, _ = self.lstm(x)  # [B,L_in,out_len+1]
        weights = torch.softmax(scores, dim=-1)[:, :, 1:]
        if mask is not None:
            weights = weights * mask[:, :, None].to(weights.dtype)
        return weights.transpose(1, 2) @ x.to(weights.dtype)


def kaiming_rows(num_labels: int, hidden: int) -> nn.Parameter:
    """A ``[C,d]`` per-label classifier weight, kaiming-uniform with a=sqrt(5) (spec 1.9)."""
    weight = torch.empty(num_labels, hidden)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return nn.Parameter(weight)
