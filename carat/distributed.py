"""Data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU).

Each process takes an equal slice of every global batch; gradients are averaged across
processes before clipping and the optimizer step, so every rank applies the same update.
CARAT's non-gradient state (the prototypes and the contrastive queue) is updated from the
normalised latents of the *whole* global batch: each rank gathers every rank's latents, labels
and embeddings in rank order before the update, which is exactly what one process would do with
the global batch. A cheap checksum after every epoch proves the ranks still agree.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from carat.errors import CaratError

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_name: str) -> DistContext | None:
    """Join the process group that ``torchrun`` describes; ``None`` when run as one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
    log.info("rank %d of %d (%s)", ctx.rank, ctx.world, dist.get_backend())
    return ctx


def device_for(ctx: DistContext | None, device: torch.device) -> torch.device:
    """Each rank drives its own GPU."""
    if ctx is not None and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def local_batch_size(ctx: DistContext | None, batch_size: int) -> int:
    """``batch_size`` is the global batch; each rank takes an equal share of it."""
    if ctx is None:
        return batch_size
    if batch_size % ctx.world:
        raise CaratError(
            f"train.batch_size {batch_size} is not divisible by the {ctx.world} processes; "
            "pick a batch size that is"
        )
    return batch_size // ctx.world


def average_gradients(model: nn.Module, ctx: DistContext) -> None:
    """All-reduce every gradient in one flat buffer and divide by the number of ranks."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= ctx.world
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0, in rank order (equal shapes)."""
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def share_state_updates(model: nn.Module) -> None:
    """Make ``model.update_state`` see the whole global batch (prototypes and queue)."""
    local_update = getattr(model, "update_state", None)
    if local_update is None:  # the baseline keeps no state beyond its weights
        return

    @functools.wraps(local_update)
    def global_update(inter: Any, labels: torch.Tensor, embeddings: Any, ids: Any) -> None:
        # every rank gathers a presence tensor (all ones where a rank's batch is complete)
        present = inter.present
        if present is None:
            present = torch.ones(inter.latent.shape[:2], dtype=torch.bool, device=labels.device)
        inter = dataclasses.replace(
            inter, latent=gather_rows(inter.latent.detach()), present=gather_rows(present)
        )
        if embeddings is not None:
            embeddings, ids = gather_rows(embeddings.detach()), gather_rows(ids)
        local_update(inter, gather_rows(labels), embeddings, ids)

    model.update_state = global_update


def broadcast_parameters(model: nn.Module) -> None:
    """Start every rank from rank 0's weights and buffers."""
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


def check_in_sync(model: nn.Module) -> None:
    """Refuse to go on if the ranks' weights or buffers have drifted apart."""
    total = torch.stack([t.detach().double().sum() for t in model.state_dict().values()]).sum()
    sums = gather_rows(total.reshape(1))
    if not torch.allclose(sums, sums[0].expand_as(sums), rtol=1e-9, atol=0.0):
        raise CaratError(
            f"distributed ranks disagree on the model state: checksums {sums.tolist()}"
        )


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown(ctx: DistContext | None) -> None:
    """Leave the process group this module joined."""
    if ctx is not None and dist.is_initialized():
        dist.destroy_process_group()
