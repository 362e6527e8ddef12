"""Natural GaLore's step sharded over DDP ranks (ZeRO stage 1, through torch's ``ZeroRedundancyOptimizer``):
each rank refreshes the projectors of, steps, and keeps the state of its share of the weights, then the ranks
broadcast the updated weights. Replicated, every rank paid the whole step, a few hundred small kernels that
two GPUs cannot halve; sharded, each pays for its share and holds 1/N of the state. A share is made of whole
shapes: the step costs a fixed number of batched operations per shape, so a shape split between two ranks
would cost each of them about as much as the whole shape.

Checkpoints hold the whole state: ``consolidate_state_dict(to=0)`` on every rank, then ``state_dict()`` on
rank 0, once per gathering (the Trainer's save does both); ``load_state_dict`` keeps this rank's share of it.
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.optim import Optimizer

from .natural_galore import NaturalGaLoreAdamW
from .projector import buckets

BUCKET_VALUES = 1 << 24  # elements of one broadcast: weights (64 MB in fp32), or bytes of a gathered state


class _Slot(int):
    """Where a tensor of a state dict was: its index in the list of tensors sent apart."""


def _broadcast_flat(parts: list | None, numel: int, dtype, device, src: int, group) -> torch.Tensor:
    """One flat buffer from rank ``src``: ``parts`` (on any device: a state holds CPU tensors too, such as the
    rounding generator's) concatenated there on ``device``, received into a new buffer elsewhere."""
    flat = (torch.cat([t.to(device) for t in parts]) if parts is not None
            else torch.empty(numel, dtype=dtype, device=device))
    dist.broadcast(flat, src=src, group=group)
    return flat


def _split_tensors(obj, tensors: list):
    """``obj`` with each tensor replaced by a ``_Slot``, its index in ``tensors``, where it is appended."""
    if torch.is_tensor(obj):
        tensors.append(obj)
        return _Slot(len(tensors) - 1)
    if isinstance(obj, dict):
        return {k: _split_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_split_tensors(v, tensors) for v in obj)
    return obj


def _fill_tensors(obj, tensors: list):
    if isinstance(obj, _Slot):
        return tensors[obj]
    if isinstance(obj, dict):
        return {k: _fill_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill_tensors(v, tensors) for v in obj)
    return obj


class ShardedNaturalGaLore(ZeroRedundancyOptimizer):
    def __init__(self, param_groups, **options):
        """``param_groups`` as for ``NaturalGaLoreAdamW`` (on the rank's device: collectives run there);
        ``options`` its keyword arguments."""
        super().__init__(param_groups, NaturalGaLoreAdamW, broadcast_projectors=False, **options)

    def _partition_parameters(self, params_per_rank=None) -> list[list[dict]]:
        """Units, largest first, each to the rank holding the fewest units so far, then the fewest values. A unit is
        the projected weights of one shape, or a group's unprojected weights: a launch-bound step costs about the
        same per unit whatever its size (torch's partition balances values alone, weight by weight). With fewer units
        than ranks, torch's partition, so that no rank is left idle."""
        if params_per_rank is not None or self._partition_parameters_cache:
            return super()._partition_parameters(params_per_rank)
        groups = []
        for group in self.param_groups:
            units = defaultdict(list)
            for p in group["params"]:
                units[tuple(p.shape) if "rank" in group else None].append(p)
            groups.append((group, list(units.values())))
        if sum(len(units) for _, units in groups) < self.world_size:
            return super()._partition_parameters()
        self._partition_parameters_cache = [[] for _ in range(self.world_size)]
        load = [(0, 0)] * self.world_size  # (units, values) per rank
        for group, units in groups:
            per_rank = [[] for _ in range(self.world_size)]
            for unit in sorted(units, key=lambda ps: -sum(p.numel() for p in ps)):
                rank = load.index(min(load))
                per_rank[rank] += unit
                load[rank] = (load[rank][0] + 1, load[rank][1] + sum(p.numel() for p in unit))
            self._partition_param_group(group, per_rank)
        return self._partition_parameters_cache

    def _sync_params(self) -> None:
        """After the step, each rank's weights reach the others in flat buckets: a handful of broadcasts instead of
        torch's one per weight (a few hundred NCCL calls per step for a small model)."""
        for rank, groups in enumerate(self._partition_parameters()):
            src = dist.get_global_rank(self.process_group, rank)
            weights = [p.detach() for g in groups for p in g["params"]]
            sizes = [w.numel() for w in weights]
            for idx in buckets(sizes, BUCKET_VALUES):
                bucket = [weights[i] for i in idx]
                flat = _broadcast_flat([w.reshape(-1) for w in bucket] if rank == self.rank else None,
                                       sum(sizes[i] for i in idx), bucket[0].dtype, bucket[0].device, src,
                                       self.process_group)
                if rank != self.rank:
                    values = flat.split([sizes[i] for i in idx])
                    torch._foreach_copy_(bucket, [v.view_as(w) for v, w in zip(values, bucket)])

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's state on rank ``to`` (call it on all ranks). Torch's pickles each rank's whole state
        through a broadcast (~5 s for SmolLM2's 350 MB between two CPU processes); here only the structure is
        pickled, and the tensors travel as raw bytes in buckets of at most BUCKET_VALUES bytes."""
        self._sync_param_groups(self.param_groups, self.optim.param_groups)
        self._all_state_dicts, device = [], self._default_device
        for rank in range(self.world_size):
            src, tensors = dist.get_global_rank(self.process_group, rank), []
            box = [None, None]
            if rank == self.rank:
                box[0] = _split_tensors(self.optim.state_dict(), tensors)
                box[1] = [(t.dtype, tuple(t.shape)) for t in tensors]
            dist.broadcast_object_list(box, src=src, group=self.process_group, device=device)
            sizes = [math.prod(shape) * dtype.itemsize for dtype, shape in box[1]]
            raw = [t.contiguous().view(-1).view(torch.uint8) for t in tensors]  # the sender's only
            received = []
            for idx in buckets(sizes, BUCKET_VALUES):
                flat = _broadcast_flat([raw[i] for i in idx] if rank == self.rank else None, sum(sizes[i] for i in idx),
                                       torch.uint8, device, src, self.process_group)
                if self.rank == to:
                    received.append(flat.cpu())
            if self.rank == to:
                data = torch.cat(received) if received else torch.empty(0, dtype=torch.uint8)
                parts = [v.clone().view(dtype).view(shape) for v, (dtype, shape) in  # cloned first: aligned
                         zip(data.split(sizes), box[1])]
                self._all_state_dicts.append(_fill_tensors(box[0], parts))

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
        self.state = defaultdict(dict)  # torch keeps a second copy of this rank's share here; self.optim holds it
        if len(generators) == self.world_size and generators[self.rank] is not None:  # same ranks: the same draws
            self.optim.restore_rounding_generator(generators[self.rank])
        self._all_state_dicts = []
