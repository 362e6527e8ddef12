"""Layer-wise mode: each weight's gradient is consumed in its own post-accumulate-grad hook during
backward and freed at once, so the full set of gradients is never resident. Projected weights queue
their small projected gradients, small unprojected weights (norms) their gradients, and the queue is
updated in one batch whenever it holds QUEUE_VALUES values (the rest when ``step()`` is called after
backward): clipped together, then stepped as the normal mode steps them (weights of one shape stacked), with
one host sync per batch, not per weight. A host sync inside backward stalls the GPU until the host has
queued work again, so they are few. Large unprojected weights (embeddings) are updated in their hook, their
gradient freed.

Unlike the peers it honours gradient accumulation: a projected weight's gradient is projected and
summed in the low-rank space on every micro-batch (projection is linear, so the sum is exact) and
the update happens only on the last micro-batch. On a subspace-refresh step the full gradient is
kept until then, because the SVD needs it. Clipping is per parameter, on the gradient the optimizer
consumes; ``grad_norm()`` reports the norm of exactly those gradients.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist

from .natural_galore import NaturalGaLoreAdamW


QUEUE_VALUES = 1 << 22  # gradient values held for one batched update (16 MB in fp32; rank-128 TinyLlama: one batch)
# An embedding updated in its hook is stepped in pieces of this many values: in backward no other full gradient is alive,
# so the fused float8 step's temporaries (12 bytes a value) may be 4x those of the normal step, while each piece costs
# the host one call (0.25-0.6 ms on H100 hosts) whatever its size.
PIECE_VALUES = 1 << 24


class LayerwiseOptimizer:
    def __init__(self, optimizer: NaturalGaLoreAdamW, grad_accumulation_steps: int = 1,
                 max_grad_norm: float | None = None):
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise NotImplementedError("layer-wise mode steps inside backward, before DDP averages gradients "
                                      "across ranks; use the normal (non layer-wise) mode with DDP")
        if grad_accumulation_steps < 1:
            raise ValueError("grad_accumulation_steps must be >= 1")
        self.optimizer, self.accum, self.max_norm = optimizer, grad_accumulation_steps, max_grad_norm
        self._micro: dict[torch.Tensor, int] = {}
        self._acc: dict[torch.Tensor, torch.Tensor] = {}
        self._sq_norm = 0.0
        # (id(group), projected) -> (group, projected, [(param, gradient)]), and how many values they hold
        self._pending: dict[tuple[int, bool], tuple[dict, bool, list]] = {}
        self._queued = 0
        # Set by a trainer that knows which micro-batch ends an optimizer step (the HF Trainer also ends one
        # at an epoch's last micro-batch); without it, every grad_accumulation_steps-th micro-batch does.
        self.ends_step: Callable[[], bool] | None = None
        self._handles = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    self._handles.append(p.register_post_accumulate_grad_hook(self._hook(group)))

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def _clip(self, gs: list) -> list:
        """Each gradient clipped in place to ``max_norm`` (they are gradients the hooks own), from one multi-tensor
        norm, with device arithmetic: no host sync inside backward. A non-finite norm leaves its gradient
        non-finite, and the optimizer skips that update."""
        norms = torch.stack(torch._foreach_norm(gs)).float()
        self._sq_norm = self._sq_norm + norms.square().sum()
        if self.max_norm:
            torch._foreach_mul_(gs, list(torch.where(norms > self.max_norm, self.max_norm / (norms + 1e-6), 1.0)
                                         .unbind(0)))
        return gs

    def _hook(self, group: dict):
        opt = self.optimizer

        def hook(p: torch.Tensor) -> None:
            micro = self._micro.get(p, 0) + 1
            last = self.ends_step() if self.ends_step is not None else micro == self.accum
            self._micro[p] = 0 if last else micro
            step = opt.state[p].get("step", 0) + 1
            low_rank = "rank" in group and ("P" in opt.state[p] or "Q" in opt.state[p]) \
                and not opt.refresh_due(p, group, step)
            with torch.no_grad():
                if "rank" in group and (low_rank or last):
                    R = opt.project_grad(p, group, p.grad, step)  # refreshes first when one is due
                    p.grad = None
                    if p in self._acc:
                        R = self._acc.pop(p).add_(R)
                    if not last:
                        self._acc[p] = R
                        return
                    self._queue(group, p, R, projected=True)
                elif last:
                    g, p.grad = p.grad, None
                    if g.numel() < QUEUE_VALUES:
                        self._queue(group, p, g, projected=False)
                    else:
                        opt.step_params(group, [p], self._clip([g]), piece=PIECE_VALUES)

        return hook

    def grad_norm(self) -> float:
        """Norm of the gradients consumed since the last call (for logging), then reset. Updates what is still
        queued first (its norms are taken as it is clipped), as ``step()`` would."""
        self._flush()
        value, self._sq_norm = math.sqrt(float(self._sq_norm)), 0.0
        return value

    def _queue(self, group: dict, p: torch.Tensor, g: torch.Tensor, projected: bool) -> None:
        self._pending.setdefault((id(group), projected), (group, projected, []))[2].append((p, g))
        self._queued += g.numel()
        if self._queued >= QUEUE_VALUES:
            self._flush()

    def _flush(self) -> None:
        for group, projected, pending in self._pending.values():
            self.optimizer.step_params(group, [p for p, _ in pending], self._clip([g for _, g in pending]),
                                       projected=projected)
        self._pending.clear()
        self._queued = 0

    def step(self, closure=None) -> None:
        """Update the weights still queued; every other weight was updated inside backward. Trainers call it
        after backward as for any optimizer."""
        self._flush()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to free: gradients are released inside the hooks."""

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
