"""The natural-gradient transform of Natural GaLore: g~ = (damping I + H H^T)^{-1} g.

H (k x s) holds the last s projected gradients with the current one, g, as a column. Woodbury's
identity reduces the k x k inverse to an s x s system; because g is itself a column of H it takes
the push-through form g~ = H (damping I_s + H^T H)^{-1} e_g, which is algebraically the same as
g / damping - H S^{-1} H^T g / damping^2 (S = I_s + H^T H / damping) but has no cancellation
between two large terms, so it stays accurate in fp32 for small damping. Cost: O(k s + s^3).
"""
import logging

import torch

log = logging.getLogger(__name__)
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def solve_spd(S: torch.Tensor, b: torch.Tensor, tries: int = 4) -> torch.Tensor | None:
    """Solve S z = b for symmetric positive definite S by Cholesky, adding growing jitter when it
    fails; None when it still fails (the caller then skips the transform)."""
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    jitter = 0.0
    scale = S.diagonal().abs().mean().clamp_min(1e-30)
    for attempt in range(tries):
        L, info = torch.linalg.cholesky_ex(S + jitter * eye)
        if int(info) == 0:
            return torch.cholesky_solve(b.unsqueeze(-1), L).squeeze(-1)
        jitter = float(scale) * 10.0 ** (attempt - 6)
        warn_once("cholesky", f"Cholesky of the {S.shape[0]}x{S.shape[0]} history system failed; retrying with jitter")
    warn_once("cholesky-skip", "Cholesky failed even with jitter; that step uses the plain projected gradient")
    return None


def woodbury_apply(H_rows: torch.Tensor, gram: torch.Tensor, col: int, damping: float) -> torch.Tensor | None:
    """``(damping I + H H^T)^{-1} H[:, col]`` from H as rows (s x k) and its Gram matrix
    ``gram`` = H_rows H_rows^T (s x s, fp32). fp32 result of length k; None if Cholesky fails."""
    S = gram + damping * torch.eye(gram.shape[0], dtype=torch.float32, device=gram.device)
    e = torch.zeros(gram.shape[0], dtype=torch.float32, device=gram.device)
    e[col] = 1.0
    y = solve_spd(S, e)
    return None if y is None else combine_rows(y, H_rows)


def combine_rows(y: torch.Tensor, H_rows: torch.Tensor) -> torch.Tensor:
    """H y from H's rows (s x k, stored in any dtype): the natural gradient, in fp32."""
    return (y.to(H_rows.dtype) @ H_rows).float()


def natural_gradient_transform(g: torch.Tensor, history: torch.Tensor, damping: float) -> torch.Tensor:
    """``(damping * I + H H^T)^{-1} g`` for H = ``history`` (k x s) whose last column is the current
    gradient ``g`` (any shape with k elements). Computed in fp32 whatever the input dtype."""
    H_rows = history.float().T  # s x k
    if H_rows.shape[1] != g.numel():
        raise ValueError(f"history has {H_rows.shape[1]} rows per column, gradient has {g.numel()} elements")
    if not torch.equal(H_rows[-1], g.reshape(-1).float()):
        raise ValueError("the history's last column must be the current gradient")
    out = woodbury_apply(H_rows, H_rows @ H_rows.T, H_rows.shape[0] - 1, damping)
    return (g.float() if out is None else out).reshape(g.shape)
