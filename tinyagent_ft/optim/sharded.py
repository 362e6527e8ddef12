"""Natural GaLore's step sharded over DDP ranks (ZeRO stage 1, through torch's ``ZeroRedundancyOptimizer``):
each rank refreshes the projectors of, steps, and keeps the state of its share of the weights, then the ranks
broadcast the updated weights. Replicated, every rank paid the whole step, a few hundred small kernels that
two GPUs cannot halve; sharded, each pays for its share and holds 1/N of the state.

Checkpoints hold the whole state: ``consolidate_state_dict(to=0)`` on every rank, then ``state_dict()`` on
rank 0, once per gathering (the Trainer's save does both); ``load_state_dict`` keeps this rank's share of it.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.optim import Optimizer

from .natural_galore import NaturalGaLoreAdamW

BUCKET_VALUES = 1 << 24  # weights broadcast together (64 MB in fp32): a flat buffer of at most this many values


def _buckets(params: list) -> list[list]:
    out, size = [[]], 0
    for p in params:
        if out[-1] and size + p.numel() > BUCKET_VALUES:
            out.append([])
            size = 0
        out[-1].append(p)
        size += p.numel()
    return [b for b in out if b]


class ShardedNaturalGaLore(ZeroRedundancyOptimizer):
    def __init__(self, param_groups, **options):
        """``param_groups`` as for ``NaturalGaLoreAdamW`` (on the rank's device: collectives run there);
        ``options`` its keyword arguments."""
        super().__init__(param_groups, NaturalGaLoreAdamW, broadcast_projectors=False, **options)

    def _sync_params(self) -> None:
        """After the step, each rank's weights reach the others in flat buckets: a handful of broadcasts instead of
        torch's one per weight (a few hundred NCCL calls per step for a small model)."""
        for rank, groups in enumerate(self._partition_parameters()):
            src = dist.get_global_rank(self.process_group, rank)
            for bucket in _buckets([p for g in groups for p in g["params"]]):
                weights = [p.detach() for p in bucket]
                if rank == self.rank:
                    flat = torch.cat([w.reshape(-1) for w in weights])
                else:
                    flat = torch.empty(sum(w.numel() for w in weights), dtype=weights[0].dtype, device=weights[0].device)
                dist.broadcast(flat, src=src, group=self.process_group)
                if rank != self.rank:
                    values = flat.split([w.numel() for w in weights])
                    torch._foreach_copy_(weights, [v.view_as(w) for v, w in zip(values, weights)])

    def state_dict(self) -> dict:
        """The consolidated state, plus each rank's stochastic-rounding generator (each rounds its own weights).
        Before the first step there is nothing to gather (accelerate reads the state when it wraps the optimizer)."""
        if not self._all_state_dicts and not self.optim.state:
            return Optimizer.state_dict(self)
        state = super().state_dict()
        generators = [s.get("rounding_generator") for s in self._all_state_dicts]
        if any(g is not None for g in generators):
            state["rounding_generators"] = generators
        self._all_state_dicts = []  # a CPU copy of the whole state, gathered for this one save
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        generators = state_dict.get("rounding_generators") or []
        super().load_state_dict(state_dict)
        self.state = defaultdict(dict)  # torch keeps a second copy of this rank's share here; the local optimizer holds it
        if len(generators) == self.world_size and generators[self.rank] is not None:  # same ranks: the same draws
            self.optim.restore_rounding_generator(generators[self.rank])
        self._all_state_dicts = []
