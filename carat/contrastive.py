"""Supervised contrastive loss with a FIFO feature queue (CARAT-SPEC 1.10, Eq. 6-7).

The authors build the full N x N logit matrix (N = 9BC + queue, 11,648 at batch 64) with
boolean masks. This module computes the same value without ever holding it:

* the positive term uses class sums: for anchor i of class c,
  ``sum_{j in P(i)} f_i.f_j = f_i . (S_c - f_i)`` where ``S_c`` sums every vector of class c;
* the log-denominator ``log(sum_{k != i} exp(l_ik - max_i) + 1e-12)`` is computed in row
  chunks by a custom autograd function whose backward recomputes each chunk, and skips the
  queue-by-queue block, which carries no gradient (the queue is detached).
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
    """

    @staticmethod
    def forward(ctx, batch, queue, tau: float, anchors: int, chunk: int):
        feats = torch.cat([batch, queue])
        log_denom = batch.new_empty(anchors)
        row_max = batch.new_empty(anchors)
        denom = batch.new_empty(anchors)
        for start in range(0, anchors, chunk):
            stop = min(start + chunk, anchors)
            logits = feats[start:stop] @ feats.T
            logits.mul_(1.0 / tau)
            top = logits.max(dim=1).values
            logits.sub_(top[:, None]).exp_()
            _zero_self(logits, start)
            total = logits.sum(dim=1)
            denom[start:stop] = total
            row_max[start:stop] = top
            log_denom[start:stop] = torch.log(total + EPS)
        ctx.save_for_backward(batch, queue, row_max, denom)
        ctx.tau, ctx.chunk = tau, chunk
        ctx.mark_non_differentiable(row_max)
        return log_denom, row_max

    @staticmethod
    def backward(ctx, grad_log_denom, _grad_row_max):
        batch, queue, row_max, denom = ctx.saved_tensors
        tau, chunk = ctx.tau, ctx.chunk
        n_batch, anchors = batch.shape[0], row_max.shape[0]
        feats = torch.cat([batch, queue])
        grad = torch.zeros_like(batch)
        scale = grad_log_denom / (denom + EPS)
        for start in range(0, anchors, chunk):
            stop = min(start + chunk, anchors)
            rows = feats[start:stop]
            # queue anchors only need the batch columns: the rest has no gradient
            columns = feats if start < n_batch else batch
            probs = rows @ columns.T
            probs.mul_(1.0 / tau).sub_(row_max[start:stop, None]).exp_()
            _zero_self(probs, start)
            probs.mul_(scale[start:stop, None])
            if start < n_batch:
                own = min(stop, n_batch) - start
                grad[start : start + own] += probs[:own] @ feats
            grad += probs[:, :n_batch].T @ rows
        return grad / tau, None, None, None, None


def _zero_self(block: torch.Tensor, start: int) -> None:
    """Zero the self-pairs of a row block that starts at global row ``start``."""
    rows = torch.arange(block.shape[0], device=block.device)
    cols = rows + start
    keep = cols < block.shape[1]
    block[rows[keep], cols[keep]] = 0.0


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
