"""GaLore subspaces: projectors from a gradient's SVD (exact or randomized), and projecting to and from them.

Sides: ``left`` R = P^T G (r x n); ``right`` R = G Q^T (m x r); ``two_sided`` R = P^T G Q^T (r x r);
``std`` picks right when m >= n (so the smaller dimension is reduced), else left. A side whose rank
is not below its dimension gets no projector (identity): at full rank the optimizer is AdamW.
"""
from __future__ import annotations

import torch

from .natural import warn_once

SIDES = ("std", "left", "right", "two_sided")
METHODS = ("svd", "randomized")


def sides_for(shape: tuple[int, int], side: str, rank: int) -> tuple[bool, bool]:
    """(use left projector P, use right projector Q) for a weight of this shape."""
    m, n = shape
    if side == "std":
        side = "right" if m >= n else "left"
    left = side in ("left", "two_sided") and rank < m
    right = side in ("right", "two_sided") and rank < n
    return left, right


def top_singular_vectors(G: torch.Tensor, rank: int, method: str, need_left: bool, need_right: bool,
                         oversample: int = 8, niter: int = 2):
    """(U[:, :r] or None, Vh[:r] or None) of G in fp32; raises on failure or non-finite output."""
    A = G.float()
    if method == "randomized":
        q = min(rank + oversample, *A.shape)
        U, S, V = torch.svd_lowrank(A, q=q, niter=niter)
        U, Vh = U[:, :rank], V[:, :rank].T
    else:
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        U, Vh = U[:, :rank], Vh[:rank]
    if not (torch.isfinite(U).all() and torch.isfinite(Vh).all()):
        raise torch.linalg.LinAlgError("non-finite singular vectors")
    return (U.contiguous() if need_left else None), (Vh.contiguous() if need_right else None)


def compute_projectors(G: torch.Tensor, rank: int, side: str, method: str, previous: tuple | None, dtype):
    """New (P, Q) for G, falling back to the previous projectors, then to the randomized method."""
    left, right = sides_for(tuple(G.shape), side, rank)
    if not (left or right):
        return None, None
    for m in dict.fromkeys((method, "randomized")):
        try:
            P, Q = top_singular_vectors(G, rank, m, left, right)
            return (P.to(dtype) if P is not None else None), (Q.to(dtype) if Q is not None else None)
        except (torch.linalg.LinAlgError, RuntimeError) as exc:
            if previous is not None and (previous[0] is not None or previous[1] is not None):
                warn_once("svd-keep", f"{m} SVD failed ({exc}); keeping the previous projector")
                return previous
            warn_once(f"svd-{m}", f"{m} SVD failed ({exc}); trying the randomized method")
    raise RuntimeError("no projector could be computed: the gradient has no finite SVD")


def project(G: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    R = G if P is None else P.to(G.dtype).T @ G
    return R if Q is None else R @ Q.to(G.dtype).T


def project_back(R: torch.Tensor, P: torch.Tensor | None, Q: torch.Tensor | None) -> torch.Tensor:
    G = R if Q is None else R @ Q.to(R.dtype)
    return G if P is None else P.to(R.dtype) @ G
