"""Supervised contrastive loss with a FIFO feature queue (CARAT-SPEC 1.10, Eq. 6-7).

The authors build the full N x N logit matrix (N = 9BC + queue, 11,648 at batch 64) with
boolean masks. This module computes the same value without ever holding it:

* the positive term uses class sums: for anchor i of class c,
  ``sum_{j in P(i)} f_i.f_j = f_i . (S_c - f_i)`` where ``S_c`` sums every vector of class c;
* the log-denominator ``log(sum_{k != i} exp(l_ik - max_i) + 1e-12)`` is computed in row
  strips by a custom autograd function that visits each symmetric pair once and keeps only
  the batch rows of ``exp(l)`` for its backward pass, one matrix product (the queue is
  detached, so its rows need no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12
CHUNK_ROWS = 1024


class _LogDenominator(torch.autograd.Function):
    """Per anchor i: ``(log(sum_{k != i} exp(l_ik - max_i) + 1e-12), max_i)``.

    ``l = F F^T / tau`` with ``F = [batch; queue]``; anchors are the first ``anchors`` rows.
    The row max is constant for the gradient, as in SupCon (``logits_max.detach()``).
    Gradients reach only ``batch``.

    ``l`` is symmetric, so each pair of anchors is computed once, in the strip of the
    earlier one, and serves both rows. ``E = exp(l - c)`` with one bound ``c >= max l``
    (Cauchy-Schwarz on the row norms) cannot overflow; then ``max_i = c + log(max_k E_ik)``
    and ``sum_{k != i} exp(l_ik - max_i) = sum_{k != i} E_ik / max_k E_ik``. The batch rows
    of ``E`` are kept for the backward pass.
    """

    @staticmethod
    def forward(ctx, batch, queue, tau: float, anchors: int, chunk: int):
        feats = torch.cat([batch, queue])
        n, n_batch = feats.shape[0], batch.shape[0]
        bound = feats.norm(dim=1).max().square() / tau
        scaled = feats / tau
        row_sum = feats.new_zeros(n)
        row_top = feats.new_zeros(n)  # max_k E_ik, self included
        batch_rows = feats.new_empty(n_batch, n)  # E[:n_batch], self-pairs zeroed
        # one strip per row chunk: its rows against every column from its own diagonal on
        for r0 in range(0, anchors, chunk):
            r1 = min(r0 + chunk, anchors)
            e = torch.mm(scaled[r0:r1], feats[r0:].T).sub_(bound).exp_()
            row_top[r0:r1] = torch.maximum(row_top[r0:r1], e.amax(dim=1))
            e[:, : r1 - r0].diagonal().zero_()
            row_sum[r0:r1] += e.sum(dim=1)
            # the strip's columns that are later anchors: their rows get the transposed part
            tail = e[:, r1 - r0 : anchors - r0]
            row_top[r1:anchors] = torch.maximum(row_top[r1:anchors], tail.amax(dim=0))
            row_sum[r1:anchors] += tail.sum(dim=0)
            if r0 < n_batch:
                batch_rows[r0 : min(r1, n_batch), r0:] = e[: n_batch - r0]
            if r1 < n_batch:
                batch_rows[r1:n_batch, r0:r1] = e[:, r1 - r0 : n_batch - r0].T
        top = row_top[:anchors]
        denom = row_sum[:anchors] / top
        ctx.save_for_backward(feats, batch_rows, top, denom)
        ctx.tau, ctx.anchors = tau, anchors
        row_max = bound + torch.log(top)
        ctx.mark_non_differentiable(row_max)
        return torch.log(denom + EPS), row_max

    @staticmethod
    def backward(ctx, grad_log_denom, _grad_row_max):
        feats, batch_rows, top, denom = ctx.saved_tensors
        n_batch = batch_rows.shape[0]
        # d log_denom_i / d l_ik = w_i E_ik, with G = diag(w) E and grad = (G + G^T) F / tau
        w = feats.new_zeros(feats.shape[0])
        w[: ctx.anchors] = grad_log_denom / (top * (denom + EPS))
        both = batch_rows @ torch.cat([feats, w[:, None] * feats], dim=1)
        d = feats.shape[1]
        grad = w[:n_batch, None] * both[:, :d] + both[:, d:]
        return grad / ctx.tau, None, None, None, None


def supcon_loss(
    features: torch.Tensor,
    ids: torch.Tensor,
    queue_features: torch.Tensor,
    queue_ids: torch.Tensor,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    queue_anchors: bool = True,
    chunk: int = CHUNK_ROWS,
) -> torch.Tensor:
    """SupCon over ``[features; queue]`` (the authors' value, computed in chunks).

    ``features`` ``[n,d]`` are L2-normalised batch vectors with float class ``ids`` ``[n]``;
    the queue is appended after them and gets no gradient. Positives of an anchor share its
    id (self excluded); an anchor without positives contributes 0. The loss is the mean over
    the anchors: every row when ``queue_anchors`` (the authors' code), else the batch rows.
    Runs in float32 whatever the autocast state.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        batch = features.float()
        # a copy: the caller enqueues (in place) before the backward pass reads it
        queue = queue_features.detach().to(batch.device, torch.float32, copy=True)
        all_ids = torch.cat([ids.float(), queue_ids.float().to(batch.device)])
        anchors = batch.shape[0] + queue.shape[0] if queue_anchors else batch.shape[0]

        log_denom, row_max = _LogDenominator.apply(batch, queue, temperature, anchors, chunk)

        feats = torch.cat([batch, queue])
        _, klass, counts = torch.unique(all_ids, return_inverse=True, return_counts=True)
        class_sums = feats.new_zeros(counts.shape[0], feats.shape[1]).index_add(0, klass, feats)
        own = feats[:anchors]
        klass = klass[:anchors]
        positive_logits = (own * (class_sums[klass] - own)).sum(dim=1) / temperature
        n_pos = (counts[klass] - 1).to(own.dtype)
        mean_log_prob = (positive_logits - n_pos * row_max - n_pos * log_denom) / (n_pos + EPS)
        return -(temperature / base_temperature) * mean_log_prob.mean()


class SupConQueue(nn.Module):
    """The loss plus its FIFO queue of past batch vectors (saved with the weights).

    Initial state as in the authors' code: features ``randn`` normalised along dim 0 (per
    column) and ids ``randn`` floats, which never equal a class id, so the first entries are
    pure negatives until overwritten.
    """

    def __init__(
        self,
        size: int,
        dim: int,
        temperature: float,
        base_temperature: float,
        queue_anchors: bool,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.queue_anchors = queue_anchors
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=0))
        self.register_buffer("ids", torch.randn(size))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def forward(self, features: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return supcon_loss(
            features,
            ids,
            self.features,
            self.ids,
            self.temperature,
            self.base_temperature,
            self.queue_anchors,
        )

    @torch.no_grad()
    def enqueue(self, features: torch.Tensor, ids: torch.Tensor) -> None:
        """Write the batch in FIFO order, overwriting the oldest entries."""
        size = self.features.shape[0]
        features, ids = features.detach()[-size:], ids.detach()[-size:]
        slots = (self.pointer + torch.arange(len(ids), device=ids.device)) % size
        self.features[slots] = features.to(self.features.dtype)
        self.ids[slots] = ids.to(self.ids.dtype)
        self.pointer.copy_((self.pointer + len(ids)) % size)
