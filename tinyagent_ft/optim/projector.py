"""GaLore subspaces: projectors from a gradient's SVD (exact or randomized) or from one subspace iteration
warm-started at the previous projector, and projecting to and from them.

Sides: ``left`` R = P^T G (r x n); ``right`` R = G Q^T (m x r); ``two_sided`` R = P^T G Q^T (r x r);
``std`` picks right when m >= n (so the smaller dimension is reduced), else left. A side whose rank
is not below its dimension gets no projector (identity): at full rank the optimizer is AdamW.
"""
from __future__ import annotations

from collections import defaultdict

import torch

from .lowbit import add_rounded_flat, add_rounded_many, fused, rounding_seeds
from .natural import warn_once

SIDES = ("std", "left", "right", "two_sided")
METHODS = ("svd", "randomized", "power")
# Values of a batch of full-size gradients or updates (128 MB in fp32): bounds the temporaries. Two of TinyLlama's MLP
# weights fit one batch, so that they cost the host one batched call rather than one each.
BATCH_VALUES = 1 << 25


def sides_for(shape: tuple[int, int], side: str, rank: int) -> tuple[bool, bool]:
    """(use left projector P, use right projector Q) for a weight of this shape."""
    m, n = shape
    if side == "std":
        side = "right" if m >= n else "left"
    left = side in ("left", "two_sided") and rank < m
    right = side in ("right", "two_sided") and rank < n
    return left, right


def randomized_svd(A: torch.Tensor, rank: int, oversample: int = 8, niter: int = 2):
    """(U[:, :r], Vh[:r]) by Halko et al.'s range finder with a fixed seed: the same draws whatever order
    weights refresh in (layer-wise hooks, DDP ranks)."""
    q = min(rank + oversample, *A.shape)
    gen = torch.Generator(device=A.device).manual_seed(0)
    Y = _orthonormal(A @ torch.randn(A.shape[1], q, generator=gen, device=A.device, dtype=A.dtype))
    for _ in range(niter):
        Y = _orthonormal(A @ _orthonormal(A.T @ Y))
    U, _, Vh = torch.linalg.svd(Y.T @ A, full_matrices=False)
    return (Y @ U)[:, :rank], Vh[:rank]


def top_singular_vectors(G: torch.Tensor, rank: int, method: str, need_left: bool, need_right: bool):
    """(U[:, :r] or None, Vh[:r] or None) of G in fp32."""
    A = G.float()
    if method == "randomized":
        U, Vh = randomized_svd(A, rank)
    else:
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        U, Vh = U[:, :rank], Vh[:rank]
    return (U.contiguous() if need_left else None), (Vh.contiguous() if need_right else None)


def _orthonormal(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y).Q


def _check_finite(*tensors) -> None:
    """One host sync for all of them: raises when any entry is not finite."""
    if not bool(torch.stack([torch.isfinite(t).all() for t in tensors if t is not None]).all()):
        raise torch.linalg.LinAlgError("non-finite subspace")


def subspace_iteration(G: torch.Tensor, previous: tuple, need_left: bool, need_right: bool):
    """(P or None, Q or None) spanning G's dominant subspaces after one block power step from the previous
    projectors: two or three tall-skinny products and QRs instead of a full SVD. GaLore's update needs the
    subspace, not ordered singular vectors; starting from the old basis also keeps the new one close to it."""
    A = G.float()
    P0, Q0 = previous
    if Q0 is not None:  # V0 -> U -> V (-> U)
        V = _orthonormal(A.T @ _orthonormal(A @ Q0.float().T))
        U = _orthonormal(A @ V) if need_left else None
    else:  # only the left side is projected: U0 -> V -> U
        U = _orthonormal(A @ _orthonormal(A.T @ P0.float()))
        V = None
    return (U.contiguous() if need_left else None), (V.T.contiguous() if need_right else None)


def compute_projectors(G: torch.Tensor, rank: int, side: str, method: str, previous: tuple | None, dtype):
    """New (P, Q) for G, falling back to the previous projectors, then to the randomized method. ``power``
    starts from the previous projectors; the first subspace comes from the randomized method."""
    left, right = sides_for(tuple(G.shape), side, rank)
    if not (left or right):
        return None, None
    if method == "power" and (previous is None or (left and previous[0] is None) or (right and previous[1] is None)):
        method = "randomized"
    for m in dict.fromkeys((method, "randomized")):
        try:
            if m == "power":
                P, Q = subspace_iteration(G, previous, left, right)
            else:
                P, Q = top_singular_vectors(G, rank, m, left, right)
            _check_finite(P, Q)
            return (P.to(dtype) if P is not None else None), (Q.to(dtype) if Q is not None else None)
        except (torch.linalg.LinAlgError, RuntimeError) as exc:
            if previous is not None and (previous[0] is not None or previous[1] is not None):
                warn_once("svd-keep", f"{m} SVD failed ({exc}); keeping the previous projector")
                return previous
            warn_once(f"svd-{m}", f"{m} SVD failed ({exc}); trying the randomized method")
    raise RuntimeError("no projector could be computed: the gradient has no finite SVD")


def _left_first(G: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> bool:
    """Whether ``project`` multiplies by P first: the side that shrinks more (fewer flops when both are projected)."""
    return P is not None and (Q is None or G.shape[-2] >= G.shape[-1])


def project(G: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    """P^T G Q^T with the side that shrinks more reduced first (fewer flops when both are projected); of one
    matrix, or of a batch (leading dimension) with a batch of projectors."""
    P, Q = (P if P is None else P.to(G.dtype)), (Q if Q is None else Q.to(G.dtype))
    if _left_first(G, P, Q):
        R = P.mT @ G
        return R if Q is None else R @ Q.mT
    R = G if Q is None else G @ Q.mT
    return R if P is None else P.mT @ R


def project_back(R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    """P R Q, of one matrix or of a batch."""
    G = R if Q is None else R @ Q.to(R.dtype)
    return G if P is None else P.to(R.dtype) @ G


def _fp32_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in fp32 for bf16 (or fp16) matrices, or batches, on CUDA: cuBLAS multiplies them as they are, with fp32
    accumulation and output, so neither operand is copied to fp32 and the product runs on tensor cores."""
    return (torch.bmm if a.dim() == 3 else torch.mm)(a, b, torch.float32)


def _multiplied_as_is(G: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> bool:
    """Whether ``project_fp32`` multiplies G without an fp32 copy: bf16 (fp16) on CUDA, with projectors of its dtype."""
    return (G.is_cuda and G.dtype in (torch.bfloat16, torch.float16)
            and all(t is None or t.dtype == G.dtype for t in (P, Q)))


def project_fp32(G: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    """``project`` of G's values in fp32, of one matrix or of a batch. A bf16 (fp16) G on CUDA with projectors of its
    dtype enters the first product as it is (``_fp32_product``: the products of its values are exact in fp32 and summed
    in fp32, as those of an fp32 copy are); elsewhere G is copied to fp32 first. Eager on purpose: a compiled call
    costs the host about twice these few operations (session 33)."""
    if not _multiplied_as_is(G, P, Q):
        return project(G.float(), P, Q)
    if _left_first(G, P, Q):  # the other side, if any, multiplies the fp32 product as ``project`` does
        return project(_fp32_product(P.mT, G), None, Q)
    return project(_fp32_product(G, Q.mT), P, None)


def _add_projected_rounded(target: torch.Tensor, R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None,
                           alpha: float, decay: float, seed: torch.Tensor) -> None:
    add_rounded_flat(target, project_back(R, P, Q).view(-1), alpha, decay, seed, 0)


def add_projected_rounded_(W: torch.Tensor, R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None,
                           alpha: float, decay: float, generator: torch.Generator | None) -> None:
    """W = decay * W + alpha * P R Q for a bf16 weight W (no fp32 master copy) and R of the projected shape,
    stochastically rounded as ``add_rounded_many`` rounds ``[W]``: the back-projection and the rounded update in one
    compiled call on CUDA, its only temporary the fp32 update."""
    seed = rounding_seeds(W.device, generator)
    fused(_add_projected_rounded, W.device)(W.view(-1), R, P, Q, alpha, decay, seed)


def add_projected_back(W: torch.Tensor, R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None,
                       alpha: float) -> None:
    """W += alpha * P R Q in place, of one matrix or of a batch. For a weight of R's dtype the last product accumulates
    straight into W (one GEMM, no full-size update tensor); otherwise the update is built in R's dtype and cast once."""
    if W.dtype != R.dtype:
        W.add_(project_back(R, P, Q).to(W.dtype), alpha=alpha)
        return
    P, Q = (P if P is None else P.to(R.dtype)), (Q if Q is None else Q.to(R.dtype))
    addmm = W.baddbmm_ if W.dim() == 3 else W.addmm_
    if P is not None and Q is not None:  # the small product first: r x n or m x r, whichever is smaller
        if W.shape[-1] <= W.shape[-2]:
            addmm(P, R @ Q, alpha=alpha)
        else:
            addmm(P @ R, Q, alpha=alpha)
    elif P is not None:
        addmm(P, R, alpha=alpha)
    elif Q is not None:
        addmm(R, Q, alpha=alpha)
    else:
        W.add_(R, alpha=alpha)


def _same_shapes(Gs: list, Ps: list, Qs: list):
    """Index lists of the items whose gradient, projectors and dtypes match, cut so that a batch holds at most
    BATCH_VALUES values of the full-size gradient (and stacks only its own projectors)."""
    groups = defaultdict(list)
    for i, (G, P, Q) in enumerate(zip(Gs, Ps, Qs)):
        groups[(G.shape, G.dtype, G.device, None if P is None else (P.shape, P.dtype),
                None if Q is None else (Q.shape, Q.dtype))].append(i)
    for idx in groups.values():
        yield from (idx[lo:hi] for lo, hi in _chunks(len(idx), Gs[idx[0]].numel()))


def _stacked(ts: list, idx: list) -> torch.Tensor | None:
    return None if ts[idx[0]] is None else torch.stack([ts[i] for i in idx])


def _rows(t: torch.Tensor | None, lo: int, hi: int) -> torch.Tensor | None:
    return t if t is None or (lo, hi) == (0, t.shape[0]) else t[lo:hi]


def _row(t: torch.Tensor | None, i: int) -> torch.Tensor | None:
    return None if t is None else t[i]


def _chunks(count: int, numel: int):
    """(lo, hi) ranges of a batch of ``count`` full-size matrices of ``numel`` values: at most BATCH_VALUES each."""
    per = max(1, BATCH_VALUES // numel)
    return ((lo, min(lo + per, count)) for lo in range(0, count, per))


def buckets(sizes: list[int], limit: int) -> list[list[int]]:
    """Indices of consecutive items grouped so that a group's sizes add up to at most ``limit`` (an item larger than
    that goes alone): batches whose temporaries, or messages, stay bounded."""
    out, total = [[]], 0
    for i, n in enumerate(sizes):
        if out[-1] and total + n > limit:
            out.append([])
            total = 0
        out[-1].append(i)
        total += n
    return [b for b in out if b]


def project_stacked(Gs: list, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    """``project_fp32`` of gradients of one shape with stacked projectors (B x m x r, B x r x n): B x rm x rn, from two
    batched products instead of two per weight (a small model's step is bound by launches). The gradients are stacked
    BATCH_VALUES values at a time."""
    m, n = Gs[0].shape
    out = []
    for lo, hi in _chunks(len(Gs), m * n):
        if hi - lo == 1:  # a matrix that fills a batch alone: no copy into a batch
            out.append(project_fp32(Gs[lo], _row(P, lo), _row(Q, lo))[None])
            continue
        if _multiplied_as_is(Gs[lo], P, Q):
            G = torch.stack(Gs[lo:hi])
        else:  # the fp32 copy the products need, made by one multi-tensor copy
            G = torch.empty((hi - lo, m, n), dtype=torch.float32, device=Gs[lo].device)
            torch._foreach_copy_(list(G.unbind(0)), Gs[lo:hi])
        out.append(project_fp32(G, _rows(P, lo, hi), _rows(Q, lo, hi)))
    return out[0] if len(out) == 1 else torch.cat(out)


def project_many(Gs: list, Ps: list, Qs: list) -> list[torch.Tensor]:
    """``project`` of each fp32 copy of Gs[i], batched over the weights of one shape (``project_stacked``)."""
    out = [None] * len(Gs)
    for idx in _same_shapes(Gs, Ps, Qs):
        if len(idx) == 1:
            out[idx[0]] = project_fp32(Gs[idx[0]], Ps[idx[0]], Qs[idx[0]])
            continue
        R = project_stacked([Gs[i] for i in idx], _stacked(Ps, idx), _stacked(Qs, idx))
        for j, i in enumerate(idx):
            out[i] = R[j]
    return out


def projected_shape(shape, P: torch.Tensor | None, Q: torch.Tensor | None) -> tuple[int, int]:
    """The shape of P^T G Q^T for a weight of ``shape`` (projectors of one weight, or stacked)."""
    return (shape[0] if P is None else P.shape[-1]), (shape[1] if Q is None else Q.shape[-2])


def add_projected_back_stacked(Ws: list, R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None,
                               alpha: float, decay: float = 1.0, generator: torch.Generator | None = None) -> None:
    """Ws[j] = decay * Ws[j] + alpha * P[j] R[j] Q[j] for weights of one shape, with stacked projectors and R
    (B x rm x rn, or flat B x k): one batched product and one multi-tensor add per BATCH_VALUES values of update.
    fp32 weights (R's dtype) are updated in place; bf16 weights, which have no fp32 master copy, from an fp32
    update of BATCH_VALUES values at a time, with stochastic rounding (``add_rounded_many``, seeded from
    ``generator``)."""
    m, n = Ws[0].shape
    R = R.view(len(Ws), *projected_shape((m, n), P, Q))
    exact = Ws[0].dtype == R.dtype
    if exact and decay != 1.0:
        torch._foreach_mul_(Ws, decay)
    for lo, hi in _chunks(len(Ws), m * n):
        Rb, Pb, Qb = _rows(R, lo, hi), _rows(P, lo, hi), _rows(Q, lo, hi)
        if exact and hi - lo == 1:  # alone in its batch: the last product accumulates straight into the weight
            add_projected_back(Ws[lo], Rb[0], _row(Pb, 0), _row(Qb, 0), alpha)
        elif exact:
            torch._foreach_add_(Ws[lo:hi], list(project_back(Rb, Pb, Qb).unbind(0)), alpha=alpha)
        elif hi - lo == 1:
            add_projected_rounded_(Ws[lo], Rb[0], _row(Pb, 0), _row(Qb, 0), alpha, decay, generator)
        else:
            add_rounded_many(Ws[lo:hi], project_back(Rb, Pb, Qb), alpha, decay, generator)


def add_projected_back_many(Ws: list, Rs: list, Ps: list, Qs: list, alpha: float) -> None:
    """``add_projected_back`` for many weights: those of one shape and of R's dtype through
    ``add_projected_back_stacked``. Each R may come flat: its shape follows from the weight's and the projectors'."""
    for idx in _same_shapes(Ws, Ps, Qs):
        if len(idx) == 1 or Ws[idx[0]].dtype != Rs[idx[0]].dtype:
            shape = projected_shape(Ws[idx[0]].shape, Ps[idx[0]], Qs[idx[0]])
            for i in idx:
                add_projected_back(Ws[i], Rs[i].view(shape), Ps[i], Qs[i], alpha)
            continue
        add_projected_back_stacked([Ws[i] for i in idx], torch.stack([Rs[i] for i in idx]), _stacked(Ps, idx),
                                   _stacked(Qs, idx), alpha)
