"""NaturalGaLoreAdamW: GaLore's low-rank gradient projection plus the natural-gradient transform,
as a drop-in ``torch.optim.Optimizer`` (groups without ``rank`` are plain AdamW).

Per projected weight the state is: the projector(s), Adam moments of the projected gradient, and
for ``history`` s > 0 the last s projected gradients (oldest first, the current one last, zero rows
until s have been seen) with their s x s Gram matrix, updated by one new row per step. Zero rows
leave the transform unchanged, so weights of one shape are transformed in one batch whatever their
refresh steps. Weights of one shape keep their state in shared stacked tensors ("slabs"; each
weight's state entries are views of its row), so that the step is a fixed number of batched
operations per shape (projections) and per step (the transform and Adam, over all shapes whose
histories match) rather than a few per weight: a small model's step is bound by such host-side
work. Every state value is a tensor or a plain number, so checkpoints load with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .lowbit import (MOMENTS, adam_float8_pieces, adam_float8_stacked, add_rounded_many, new_moments, read_moments,
                     read_stacked, write_moments, write_stacked)
from .natural import push_history, warn_once, woodbury_natural
from . import projector
from .projector import (METHODS, SIDES, add_projected_back_many, add_projected_back_stacked, add_projected_rounded_,
                        buckets, compute_projectors, project_back, project_fp32, project_many, project_stacked,
                        projected_shape, sides_for)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STATE_DTYPES = ("float32", "bfloat16", "float8")  # Adam moments (float8: lowbit); float16's range loses small second moments
CHUNK = 1 << 23  # values per batch of an Adam step (float8: 96 MB of the fused pass's temporaries): bounds them


# Defaults chosen from benchmarks/optim (see README): two-sided keeps the history small enough that
# the whole state stays below GaLore's one-sided state at the same rank; the ablation with a learning
# rate tuned per cell (benchmarks/optim/ablation.py, 3 seeds, two corpora) put the reference's absolute
# damping of 1e-3 ahead of a relative damping of 10 in every cell (plans, two-sided, s=4: 0.586 +- 0.017
# against 0.627 +- 0.021), level with two-sided GaLore (0.581 +- 0.010). An untuned one-seed sweep had
# once favoured the relative damping.
# Refreshes: one subspace iteration warm-started at the previous projector (a seeded randomized SVD the
# first time), staggered across weights so no step stalls: on the plans corpus of
# benchmarks/optim/convergence.py (3 seeds, H200) validation loss 0.672 +- 0.009 against 0.667 +- 0.020
# with an exact SVD of every weight at once, at ~1/20 of the refresh time. svd_method="svd" keeps the
# exact refresh.
PROJECTION_DEFAULTS = dict(rank=128, update_proj_gap=200, scale=0.25, side="two_sided", history=4,
                           damping=1e-3, damping_mode="absolute", history_dtype="bfloat16",
                           svd_method="power", stagger_refresh=True, tf32=False, reset_history_on_refresh=True)


@contextmanager
def _tf32_matmuls(enabled: bool):
    """fp32 matmuls on TF32 tensor cores (CUDA) inside the block: the projections of fp32 gradients are
    otherwise the bulk of the step. SVD, QR, Cholesky and the Adam arithmetic are unaffected."""
    m = torch.backends.cuda.matmul
    try:
        previous = m.fp32_precision
    except RuntimeError:  # the process mixed torch's legacy and new TF32 switches: leave them alone
        previous = None
    if not enabled or previous in (None, "tf32"):
        yield
        return
    m.fp32_precision = "tf32"
    try:
        yield
    finally:
        m.fp32_precision = previous


def _flat32(t: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Values [lo, hi) of a tensor as a flat fp32 tensor, with no view or conversion where none is needed (the step
    of a small model is bound by such host-side calls, a few per weight)."""
    flat = t if t.dim() == 1 else t.reshape(-1)
    hi = flat.numel() if hi is None else hi
    if (lo, hi) != (0, flat.numel()):
        flat = flat[lo:hi]
    return flat if flat.dtype == torch.float32 else flat.float()


def _piece(p: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The values [lo, hi) of a weight as a writable view (the whole weight, in its shape, when that is all)."""
    return p if (lo, hi) == (0, p.numel()) else p.view(-1)[lo:hi]


def _adam_direction(m: list, v: list, R: list, beta1: float, beta2: float, step: int, eps: float) -> list:
    """Adam's moments updated in place from gradients R (multi-tensor kernels over lists of fp32 tensors), and the
    bias-corrected update directions m / (sqrt(v / bc2) + eps), without the first moment's correction 1 / bc1."""
    torch._foreach_lerp_(m, R, 1 - beta1)
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, R, R, value=1 - beta2)
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
    torch._foreach_add_(denom, eps)
    return torch._foreach_div(m, denom)


def _upgrade_history(state: dict) -> None:
    """A history saved by an earlier version, a ring buffer with ``hist_pos`` / ``hist_count``, in today's order:
    oldest row first, the newest last, zero rows before them."""
    if "hist_pos" not in state:
        return
    pos, count = state.pop("hist_pos"), state.pop("hist_count")
    s = state["hist"].shape[0]
    order = [(pos - count + i) % s for i in range(count)]  # the ring's newest row sat at pos - 1
    hist, gram = torch.zeros_like(state["hist"]), torch.zeros_like(state["gram"])
    if count:
        hist[s - count:] = state["hist"][order]
        gram[s - count:, s - count:] = state["gram"][order][:, order]
    state["hist"], state["gram"] = hist, gram


@dataclass
class _Slab:
    """The state of a group's weights of one shape, stacked: row j is ``params[j]``'s, and that weight's state entries
    are views of it (``views[j]``), so checkpoints, layer-wise updates and per-weight code keep seeing per-weight
    tensors while the step runs batched on the stack."""
    params: list
    tensors: dict
    views: list

    @classmethod
    def build(cls, params: list, states: list, group: dict) -> "_Slab":
        """Stack the weights' state (zeros where a weight has none yet) and make each weight's entries views of it;
        the copy holds one weight's tensors twice at most, not the whole shape's."""
        first, device = states[0], params[0].device
        k = math.prod(projected_shape(params[0].shape, first.get("P"), first.get("Q")))
        blank = new_moments(k, group.get("state_dtype", "float32"), device)
        if group["history"]:
            s = group["history"]
            blank |= {"hist": torch.zeros(s, k, dtype=DTYPES[group["history_dtype"]], device=device),
                      "gram": torch.zeros(s, s, device=device)}
            for st in states:
                _upgrade_history(st)
        blank |= {key: None for key in ("P", "Q") if key in first}
        tensors = {}
        for key, zero in blank.items():  # row by row, each weight's own tensor freed as its row takes over
            like = first.get(key, zero)
            tensors[key] = stack = torch.empty((len(states), *like.shape), dtype=like.dtype, device=like.device)
            for j, st in enumerate(states):
                row = stack[j]
                row.copy_(st.get(key, zero))
                st[key] = row
        return cls(list(params), tensors, [{key: st[key] for key in tensors} for st in states])

    def holds(self, params: list, states: list) -> bool:
        """Whether these weights are this slab's, in order, and their state entries still its views (a load or
        ``load_state_dict`` of a wrapper replaces them)."""
        return len(params) == len(self.params) and all(a is b for a, b in zip(params, self.params)) and all(
            st.get(key) is v for st, view in zip(states, self.views) for key, v in view.items())

    def rows(self, lo: int, hi: int) -> "_Slab":
        """Rows [lo, hi) as a slab of views (the weights of one batched update)."""
        if (lo, hi) == (0, len(self.params)):
            return self
        return _Slab(self.params[lo:hi], {key: t[lo:hi] for key, t in self.tensors.items()}, self.views[lo:hi])


def _runs(rows: list) -> list[list]:
    """Sorted (row, item) pairs cut where the rows stop being consecutive."""
    out = []
    for pair in rows:
        if out and pair[0] == out[-1][-1][0] + 1:
            out[-1].append(pair)
        else:
            out.append([pair])
    return out


def _check_group(group: dict) -> None:
    if "rank" not in group:
        return
    if group["side"] not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {group['side']!r}")
    if group["svd_method"] not in METHODS:
        raise ValueError(f"svd_method must be one of {METHODS}, got {group['svd_method']!r}")
    if group["history_dtype"] not in DTYPES:
        raise ValueError(f"history_dtype must be one of {tuple(DTYPES)}, got {group['history_dtype']!r}")
    if group["damping_mode"] not in ("absolute", "relative"):
        raise ValueError(f"damping_mode must be 'absolute' or 'relative', got {group['damping_mode']!r}")
    if group["rank"] < 1 or group["update_proj_gap"] < 1 or group["history"] < 0 or group["damping"] <= 0:
        raise ValueError("need rank >= 1, update_proj_gap >= 1, history >= 0, damping > 0")
    for p in group["params"]:
        if p.dim() != 2:
            raise ValueError(f"projected groups take 2-D weights only, got a parameter of shape {tuple(p.shape)}")


class NaturalGaLoreAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, state_dtype: str = "float32", broadcast_projectors: bool = True,
                 **projection):
        """``state_dtype``: Adam moments stored as float32, or with stochastic rounding as bfloat16 (half the bytes)
        or float8 with a scale per block of 256 (a quarter), computed in fp32 each step. Weights in bf16 (no fp32
        master copy) are updated in fp32 and stored back with stochastic rounding. ``broadcast_projectors``: under
        DDP each refreshed projector is broadcast from rank 0, so that ranks stepping the same weights agree
        (``ShardedNaturalGaLore`` turns it off: there each weight has one rank)."""
        unknown = set(projection) - set(PROJECTION_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)}; valid: {sorted(PROJECTION_DEFAULTS)}")
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be one of {STATE_DTYPES}, got {state_dtype!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, state_dtype=state_dtype,
                        **{k: projection.get(k, v) for k, v in PROJECTION_DEFAULTS.items() if k != "rank"})
        super().__init__(params, defaults)
        for group in self.param_groups:
            _check_group(group)
        self.nonfinite_skips, self.broadcast_projectors = 0, broadcast_projectors
        self._generators: dict[torch.device, torch.Generator] = {}
        self._cholesky_failures = torch.zeros((), dtype=torch.int64)
        self._slabs: dict[tuple, _Slab] = {}
        self._refresh_offset = {p: (i * g["update_proj_gap"]) // len(g["params"]) if g["stagger_refresh"] else 0
                                for g in self.param_groups if "rank" in g for i, p in enumerate(g["params"])}
        if dist.is_available() and dist.is_initialized():
            for p in (p for g in self.param_groups for p in g["params"]):
                if type(p).__name__ in ("DTensor", "FlatParameter") or hasattr(p, "_local_shard"):
                    raise NotImplementedError("NaturalGaLoreAdamW supports single-device and DDP training; "
                                              "FSDP sharded parameters are not supported (ShardedNaturalGaLore "
                                              "shards the step instead)")

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("NaturalGaLoreAdamW does not support sparse gradients")
            if params:
                self._step_group(gi, group, params, [p.grad for p in params])
        return loss

    @torch.no_grad()
    def step_params(self, group: dict, params: list, gradients: list, projected: bool = False,
                    piece: int | None = None) -> None:
        """Update some parameters of a group (layer-wise mode) from their gradients, or from gradients already
        projected (``projected=True``), batched over weights of one shape; unprojected weights in pieces of at most
        ``piece`` values (default CHUNK; ``_adam_many``)."""
        gi = next(i for i, g in enumerate(self.param_groups) if g is group)
        self._step_group(gi, group, params, gradients, projected, piece)

    def _step_group(self, gi: int, group: dict, params: list, grads: list, projected: bool = False,
                    piece: int | None = None) -> None:
        with _tf32_matmuls(group.get("tf32", False)):
            if "rank" in group:
                if not projected:
                    for p, g in zip(params, grads):
                        self._refresh_if_due(p, group, g)
                left = self._stacked_step(gi, group, params, grads, projected)
                params, grads = [params[i] for i in left], [grads[i] for i in left]
            if params:
                self._update_many(group, params, grads if projected else self._projected(group, params, grads),
                                  piece)

    def _projected(self, group: dict, params: list, grads: list) -> list:
        """The gradients as the update takes them: projected, batched over weights of one shape, in a projected
        group (subspaces already refreshed where due)."""
        if "rank" not in group:
            return grads
        states = [self.state[p] for p in params]
        return project_many(grads, [st.get("P") for st in states], [st.get("Q") for st in states])

    def _slab(self, gi: int, group: dict, key: tuple) -> _Slab | None:
        """The stacked state of the group's weights of ``key`` (shape, dtype, device, projected sides), built or
        rebuilt when they or their state entries changed; None for a lone weight."""
        shape, dtype, device, left, right = key
        params = [p for p in group["params"] if p.shape == shape and p.dtype == dtype and p.device == device
                  and ("P" in self.state[p]) == left and ("Q" in self.state[p]) == right]
        if len(params) < 2:
            return None
        states = [self.state[p] for p in params]
        slab = self._slabs.get((gi, *key))
        if slab is None or not slab.holds(params, states):
            slab = self._slabs[(gi, *key)] = _Slab.build(params, states, group)
        return slab

    def _stacked_step(self, gi: int, group: dict, params: list, grads: list, projected: bool) -> list[int]:
        """The step of the weights whose state is stacked by shape (projected, fp32 or bf16 weights): a fixed number of
        batched operations per run of consecutive rows of a slab with one step count (a whole shape in a normal
        step; layer-wise updates take what backward has reached), whatever the number of weights. ``grads``: full
        gradients, or projected ones. Returns the indices of the weights left to the per-weight path: all of them
        when a gradient is not finite (that path skips just those; its norms cost the same one host sync)."""
        by_key, left = defaultdict(list), []
        for i, p in enumerate(params):
            st = self.state[p]
            if p.dtype not in (torch.float32, torch.bfloat16) or ("P" not in st and "Q" not in st):
                left.append(i)
            else:
                by_key[(p.shape, p.dtype, p.device, "P" in st, "Q" in st)].append(i)
        parts, Rs = [], []
        for key, idx in by_key.items():
            slab = self._slab(gi, group, key)
            if slab is None:
                left += idx
                continue
            row = {id(p): j for j, p in enumerate(slab.params)}
            for run in _runs(sorted((row[id(params[i])], i) for i in idx)):
                items = [i for _, i in run]
                if len(items) < 2 or len({self.state[params[i]].get("step", 0) for i in items}) > 1:
                    left += items  # nothing to batch; an update skipped
                    continue
                part = slab.rows(run[0][0], run[-1][0] + 1)
                parts.append(part)
                Rs.append(torch.stack([_flat32(grads[i]) for i in items]) if projected else project_stacked(
                    [grads[i] for i in items], part.tensors.get("P"), part.tensors.get("Q")).flatten(1))
        if not parts:
            return list(range(len(params)))
        if not bool(torch.cat([torch.linalg.vector_norm(R, dim=1) for R in Rs]).isfinite().all()):
            return list(range(len(params)))
        self._update_slabs(group, parts, Rs)
        return sorted(left)

    def _update_slabs(self, group: dict, slabs: list, Rs: list) -> None:
        """Natural-gradient transform, Adam and back-projection of the slabs' projected gradients (B x k each). The
        transform runs over slabs whose histories match together and Adam over all slabs of one step count, so only
        the projections and the weights' updates cost operations per shape. Moments stored in low precision are
        decoded and encoded a slab at a time."""
        if group["history"]:
            Rs = self._transform_slabs(group, slabs, Rs)
        beta1, beta2 = group["betas"]
        lr, wd, kind = group["lr"], group["weight_decay"], group.get("state_dtype", "float32")
        by_step = defaultdict(list)
        rounded = kind != "float32" or any(sl.params[0].dtype != torch.float32 for sl in slabs)
        gen = self._rounding_generator(Rs[0].device) if rounded else None
        for i, slab in enumerate(slabs):
            by_step[self.state[slab.params[0]].get("step", 0) + 1].append(i)
        for step, idx in by_step.items():
            ts = [slabs[i].tensors for i in idx]
            if kind == "float8":
                updates = [adam_float8_stacked(t, Rs[i], group["betas"], step, group["eps"], gen)
                           for i, t in zip(idx, ts)]
            else:
                moments = {key: [read_stacked(t, key, kind) for t in ts] for key in MOMENTS}
                updates = _adam_direction([m for m, _ in moments["exp_avg"]], [v for v, _ in moments["exp_avg_sq"]],
                                          [Rs[i] for i in idx], beta1, beta2, step, group["eps"])
                for key, read in moments.items():
                    for t, (_, buffer) in zip(ts, read):
                        write_stacked(t, key, kind, buffer, gen)
            alpha = -lr * group["scale"] / (1 - beta1**step)
            for i, t, update in zip(idx, ts, updates):
                add_projected_back_stacked(slabs[i].params, update, t.get("P"), t.get("Q"), alpha, 1 - lr * wd, gen)
                for p in slabs[i].params:
                    self.state[p]["step"] = step

    def _transform_slabs(self, group: dict, slabs: list, Rs: list) -> list:
        """The natural gradients of the slabs' projected gradients, their histories and Gram matrices updated in place:
        slabs whose histories have one shape are transformed in one batch (their histories copied together, at most
        BATCH_VALUES values at a time), the others each in their own."""
        out, batches = list(Rs), defaultdict(list)
        for i, slab in enumerate(slabs):
            H = slab.tensors["hist"]
            batches[(tuple(H.shape[1:]), H.dtype, H.device)].append(i)
        for idx in batches.values():
            for bucket in buckets([slabs[i].tensors["hist"].numel() for i in idx], projector.BATCH_VALUES):
                chunk = [idx[j] for j in bucket]
                ts = [slabs[i].tensors for i in chunk]
                if len(chunk) == 1:  # its stacked history in place, no copy
                    out[chunk[0]] = self._push_and_transform(group, ts[0]["hist"], ts[0]["gram"], Rs[chunk[0]])
                    continue
                natural = self._transform_together(group, [t["hist"] for t in ts], [t["gram"] for t in ts],
                                                   torch.cat([Rs[i] for i in chunk]))
                for i, part in zip(chunk, natural.split([len(slabs[i].params) for i in chunk])):
                    out[i] = part
        return out

    def _update_many(self, group: dict, params: list, Rs: list, piece: int | None = None) -> None:
        # One host sync per group: a non-finite entry anywhere in a gradient makes its projection's norm
        # non-finite, and that parameter's update is skipped.
        norms = torch._foreach_norm(Rs)
        if any(n.dtype != torch.float32 for n in norms):
            norms = [n.float() for n in norms]
        finite = torch.stack(norms).isfinite().tolist()
        good = [(p, R) for p, R, ok in zip(params, Rs, finite) if ok]
        if len(good) < len(params):
            self.nonfinite_skips += len(params) - len(good)
            warn_once("nonfinite", "non-finite gradient: skipping the update of that parameter (counted in "
                                   "optimizer.nonfinite_skips)")
        if not good:
            return
        params, Rs = [p for p, _ in good], [R for _, R in good]  # unprojected gradients become fp32 piece by piece
        if "rank" in group and group["history"] > 0:
            Rs = self._natural_many(group, list(zip(params, Rs)))
        self._adam_many(group, params, Rs, piece)

    def _adam_many(self, group: dict, params: list, Rs: list, piece: int | None = None) -> None:
        """Adam on the (projected) gradients with multi-tensor (foreach) kernels: a handful of launches for a
        batch of weights instead of a dozen per weight. Weights are grouped by step count (bias correction);
        unprojected weights are cut into pieces of at most ``piece`` values so that the step's temporaries stay
        bounded whatever the largest weight (an embedding)."""
        kind, piece = group.get("state_dtype", "float32"), piece or CHUNK
        by_step = defaultdict(list)
        for p, R in zip(params, Rs):
            state = self.state[p]
            if "exp_avg" not in state:
                state.update(new_moments(R.numel(), kind, R.device))
            by_step[state.get("step", 0) + 1].append((p, R))
        for step, pairs in by_step.items():
            batch, size = [], 0
            for p, R in pairs:
                n = R.numel()
                cut = piece if "rank" not in group and p.is_contiguous() else n  # a projected R is used whole
                for lo in range(0, n, cut):
                    batch.append((p, R, lo, min(lo + cut, n)))
                    size += batch[-1][3] - lo
                    if size >= piece:
                        self._adam_pieces(group, step, batch)
                        batch, size = [], 0
            if batch:
                self._adam_pieces(group, step, batch)
            for p, _ in pairs:
                self.state[p]["step"] = step

    def _adam_pieces(self, group: dict, step: int, pieces: list) -> None:
        """One Adam update of pieces (param, gradient, lo, hi): flat value ranges of the (projected) gradients."""
        beta1, beta2 = group["betas"]
        lr, wd, kind = group["lr"], group["weight_decay"], group.get("state_dtype", "float32")
        gen = self._rounding_generator(pieces[0][1].device) if kind != "float32" else None
        states = [self.state[p] for p, *_ in pieces]
        ranges = [(lo, hi) for *_, lo, hi in pieces]
        bc1 = 1 - beta1**step
        projected = "rank" in group  # then each piece is a whole projected gradient, and its weight the target
        alpha = -lr * group["scale"] / bc1 if projected else -lr / bc1
        targets = [p if projected else _piece(p, lo, hi) for p, _, lo, hi in pieces]
        if kind == "float8":  # gradients in their own dtype: the fused step reads them once
            grads = [g.reshape(-1)[lo:hi] for _, g, lo, hi in pieces]
            if not projected and all(t.dtype == torch.bfloat16 for t in targets):  # the weights too, in that pass
                adam_float8_pieces(states, grads, ranges, group["betas"], step, group["eps"], gen, targets, alpha,
                                   1 - lr * wd)
                return
            updates = adam_float8_pieces(states, grads, ranges, group["betas"], step, group["eps"], gen)
        else:
            (m, m_buffer), (v, v_buffer) = (read_moments(states, key, kind, ranges) for key in MOMENTS)
            updates = _adam_direction(m, v, [_flat32(g, lo, hi) for (_, g, lo, hi) in pieces], beta1, beta2, step,
                                      group["eps"])
            write_moments(states, "exp_avg", kind, ranges, m_buffer, gen)
            write_moments(states, "exp_avg_sq", kind, ranges, v_buffer, gen)
        exact = [j for j, t in enumerate(targets) if t.dtype in (torch.float32, torch.float64)]
        if wd and exact:
            torch._foreach_mul_([targets[j] for j in exact], 1 - lr * wd)
        if projected:  # back-projected into each weight, batched over weights of one shape
            add_projected_back_many([targets[j] for j in exact], [updates[j] for j in exact],
                                    [states[j].get("P") for j in exact], [states[j].get("Q") for j in exact], alpha)
        elif exact:
            torch._foreach_add_([targets[j] for j in exact], [updates[j].view(targets[j].shape) for j in exact],
                                alpha=alpha)
        low = sorted(set(range(len(pieces))) - set(exact))  # low-precision weights: no fp32 master copy
        gen = self._rounding_generator(pieces[0][1].device) if low else None
        rounded = [j for j in low if targets[j].dtype == torch.bfloat16 and not projected]
        if rounded:  # unprojected bf16 pieces (embeddings, norms)
            add_rounded_many([targets[j] for j in rounded], [updates[j] for j in rounded], alpha, 1 - lr * wd, gen)
        for j in sorted(set(low) - set(rounded)):  # projected bf16 weights, and fp16 ones
            t, update = targets[j], updates[j]
            if projected:
                P, Q = states[j].get("P"), states[j].get("Q")
                update = update.view(projected_shape(t.shape, P, Q))
                if t.dtype == torch.bfloat16:
                    add_projected_rounded_(t, update, P, Q, alpha, 1 - lr * wd, gen)
                    continue
                update = project_back(update, P, Q)
            t.copy_(t.float().mul_(1 - lr * wd).add_(update.view(t.shape), alpha=alpha))  # fp16: rounded to nearest

    def _rounding_generator(self, device) -> torch.Generator:
        """One seeded generator per device for stochastic rounding: every DDP rank draws the same bits and
        its weights stay identical."""
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(0)
        return self._generators[device]

    def project_grad(self, p: torch.Tensor, group: dict, grad: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Projected fp32 gradient, refreshing the subspace first when one is due at ``step``."""
        self._refresh_if_due(p, group, grad, step)
        state = self.state[p]
        return project_fp32(grad, state.get("P"), state.get("Q"))

    def _refresh_if_due(self, p: torch.Tensor, group: dict, grad: torch.Tensor, step: int | None = None) -> None:
        """A new subspace from ``grad`` when one is due at ``step`` (default: the weight's next step)."""
        state = self.state[p]
        step = step if step is not None else state.get("step", 0) + 1
        if self.refresh_due(p, group, step):
            self._refresh(p, group, grad, state)

    def refresh_due(self, p: torch.Tensor, group: dict, step: int) -> bool:
        if "rank" not in group or not any(sides_for(tuple(p.shape), group["side"], group["rank"])):
            return False
        st = self.state[p]
        return (step - 1 - self._refresh_offset.get(p, 0)) % group["update_proj_gap"] == 0 or ("P" not in st and "Q" not in st)

    def _refresh(self, p, group, grad, state) -> None:
        previous = (state.get("P"), state.get("Q")) if ("P" in state or "Q" in state) else None
        if previous is None and not torch.isfinite(grad).all():
            return  # the update is skipped; the next finite gradient builds the first subspace
        if p is group["params"][0] and self.cholesky_fallbacks:  # a host sync: once per refresh round
            warn_once("cholesky-fallbacks", f"{self.cholesky_fallbacks} natural-gradient solves failed so far and used the "
                                  "plain projected gradient; consider a larger damping")
        P, Q = compute_projectors(grad, group["rank"], group["side"], group["svd_method"], previous, p.dtype)
        if self.broadcast_projectors and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for t in (P, Q):  # identical subspaces on every rank, whatever each SVD kernel returned
                if t is not None:
                    dist.broadcast(t, src=0)
        for key, t in (("P", P), ("Q", Q)):
            if t is not None and key in state and state[key].shape == t.shape:
                state[key].copy_(t)  # in place: it may be a view of its shape's stacked state
            elif t is not None:
                state[key] = t
        if group["reset_history_on_refresh"] and "hist" in state:
            _upgrade_history(state)
            state["hist"].zero_()
            state["gram"].zero_()

    def _natural_many(self, group: dict, pairs: list) -> list[torch.Tensor]:
        """Natural-gradient transform of each projected gradient (per-weight path), batched over weights whose
        histories have the same shape; the transformed gradients come back flat."""
        s, outs, batches = group["history"], [R for _, R in pairs], defaultdict(list)
        dtype = DTYPES[group["history_dtype"]]
        for i, (p, R) in enumerate(pairs):
            state = self.state[p]
            if "P" not in state and "Q" not in state:
                continue  # nothing is projected: a history would be full-size, so this weight gets AdamW
            if "hist" not in state:
                state["hist"] = torch.zeros(s, R.numel(), dtype=dtype, device=R.device)
                state["gram"] = torch.zeros(s, s, dtype=torch.float32, device=R.device)
            _upgrade_history(state)
            batches[(tuple(state["hist"].shape), state["hist"].dtype, R.device)].append(i)
        for idx in batches.values():
            states = [self.state[pairs[i][0]] for i in idx]
            G = torch.stack([_flat32(outs[i]) for i in idx])
            out = self._transform_together(group, [st["hist"][None] for st in states],
                                           [st["gram"][None] for st in states], G)
            for j, i in enumerate(idx):
                outs[i] = out[j]  # flat: the Adam step and the back-projection take it so
        return outs

    def _transform_together(self, group: dict, hists: list, grams: list, G: torch.Tensor) -> torch.Tensor:
        """``_push_and_transform`` of histories and Gram matrices held apart (B_i x s x k and B_i x s x s each, in
        order with G's rows): concatenated for one batch, the pushed rows copied back."""
        H, gram = torch.cat(hists), torch.cat(grams)
        out = self._push_and_transform(group, H, gram, G)
        rows = [h.shape[0] for h in hists]
        torch._foreach_copy_(hists, list(H.split(rows)))
        torch._foreach_copy_(grams, list(gram.split(rows)))
        return out

    def _push_and_transform(self, group: dict, H: torch.Tensor, gram: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """Push the projected gradients G (B x k, fp32) into their histories H (B x s x k) and Gram matrices, in
        place, and return the natural gradients (B x k): one batched Gram update, Cholesky solve and combination.
        A failed solve gives the plain gradient without a host sync (counted in ``cholesky_fallbacks``)."""
        push_history(H, gram, G)
        damping = torch.full((G.shape[0],), group["damping"], device=G.device)
        if group["damping_mode"] == "relative":  # x the mean squared norm of the gradients held (zero rows: none yet)
            norms = gram.diagonal(dim1=-2, dim2=-1)
            damping = damping * (norms.sum(-1) / (norms > 0).sum(-1).clamp_min(1)).clamp_min(1e-30)
        out, failed = woodbury_natural(H, gram, H.shape[1] - 1, damping)
        self._cholesky_failures = self._cholesky_failures + failed.sum()
        return torch.where(failed[:, None], G, out)

    @property
    def cholesky_fallbacks(self) -> int:
        """How many natural-gradient solves failed and used the plain projected gradient."""
        return int(self._cholesky_failures)

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Torch's, plus the stochastic-rounding generator's position, so that a resumed run draws the bits the
        uninterrupted run would have drawn (a uint8 tensor: loads with ``weights_only=True``)."""
        state = super().state_dict()
        if self._generators:
            state["rounding_generator"] = next(iter(self._generators.values())).get_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Like torch's, but keeps each state tensor's saved dtype (fp32 Gram and moments of bf16 params)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict does not match this optimizer's parameter groups")
        id_map = dict(zip((i for g in groups for i in g["params"]), (p for g in self.param_groups for p in g["params"])))
        self.state, self._slabs = defaultdict(dict), {}  # stacked again from the loaded state at the next step
        for i, st in state_dict["state"].items():
            p = id_map[int(i)]
            self.state[p] = {k: v.to(p.device) if torch.is_tensor(v) else v for k, v in st.items()}
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        if "rounding_generator" in state_dict:  # every rank resumes the same stream
            self.restore_rounding_generator(state_dict["rounding_generator"])

    def restore_rounding_generator(self, saved: torch.Tensor) -> None:
        """Continue the stochastic-rounding stream a state dict saved (a CPU / CUDA switch starts afresh)."""
        params = [p for g in self.param_groups for p in g["params"]]
        if not params:
            return
        device = params[0].device
        try:
            self._rounding_generator(device).set_state(saved.cpu())
        except RuntimeError:
            self._generators.pop(torch.device(device), None)
