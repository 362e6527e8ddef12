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


def woodbury_natural(H: torch.Tensor, gram: torch.Tensor, col: int, damping: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The transform for a batch of B histories at once: H (B x s x k, any dtype) holds each history as
    rows, ``gram`` (B x s x s, fp32) = H H^T, row ``col`` is the current gradient, ``damping`` (B,).
    Returns the natural gradients (B x k, fp32) and which solves failed (B,), without a host sync:
    the caller keeps the plain gradient there."""
    count = gram.shape[-1]
    eye = torch.eye(count, dtype=torch.float32, device=gram.device)
    L, info = torch.linalg.cholesky_ex(gram + damping[:, None, None] * eye)
    e = torch.zeros(gram.shape[0], count, 1, dtype=torch.float32, device=gram.device)
    e[:, col, 0] = 1.0
    # two triangular solves (batched cuBLAS kernels) rather than cholesky_solve, whose batched CUDA path goes
    # through MAGMA: with them the step has no more host syncs than GaLore's (H100, speed.py --profile)
    z = torch.linalg.solve_triangular(L, e, upper=False)
    y = torch.linalg.solve_triangular(L.mT, z, upper=True)  # B x s x 1
    return torch.bmm(y.transpose(1, 2).to(H.dtype), H).squeeze(1).float(), info > 0


def push_history(H: torch.Tensor, gram: torch.Tensor, G: torch.Tensor) -> None:
    """In place, for a batch: shift each history (B x s x k, oldest row first) up by one row, write the current
    gradient G (B x k) as the last row, and keep ``gram`` (B x s x s, fp32) = H H^T: shifted with the rows, one new
    row and column. A history's zero rows (fewer than s gradients seen since its reset) leave the transform as it
    would be with those rows left out: damping alone on their diagonal, decoupled from the rest."""
    if H.shape[1] > 1:
        H[:, :-1] = H[:, 1:].clone()
        gram[:, :-1, :-1] = gram[:, 1:, 1:].clone()
    H[:, -1] = G
    new = torch.bmm(H, H[:, -1, :, None]).squeeze(-1).float()
    gram[:, -1, :] = new
    gram[:, :, -1] = new


def natural_gradient_transform(g: torch.Tensor, history: torch.Tensor, damping: float) -> torch.Tensor:
    """``(damping * I + H H^T)^{-1} g`` for H = ``history`` (k x s) whose last column is the current
    gradient ``g`` (any shape with k elements). Computed in fp32 whatever the input dtype; the plain
    gradient when the solve fails. The optimizer runs the same solve batched over weights."""
    H_rows = history.float().T  # s x k
    if H_rows.shape[1] != g.numel():
        raise ValueError(f"history has {H_rows.shape[1]} rows per column, gradient has {g.numel()} elements")
    if not torch.equal(H_rows[-1], g.reshape(-1).float()):
        raise ValueError("the history's last column must be the current gradient")
    out, failed = woodbury_natural(H_rows[None], (H_rows @ H_rows.T)[None], H_rows.shape[0] - 1,
                                   torch.tensor([float(damping)], device=H_rows.device))
    return (g.float() if bool(failed[0]) else out[0]).reshape(g.shape)
