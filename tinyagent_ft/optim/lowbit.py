"""Low-precision storage for optimizer state and weights, without losing small updates.

Round-to-nearest loses an update smaller than half the stored format's step: an Adam second moment
that should decay by 0.1% a step, or a bf16 weight moved by 1e-5 of its size, stays where it is.
Stochastic rounding keeps each stored value unbiased, so such updates add up on average.
Moments in 8 bits are float8 (e4m3) with one fp32 scale per block of ``BLOCK`` values (the block's
largest magnitude maps to e4m3's largest finite value); the second moment is stored as its square
root, which halves the decades it spans.
"""
from __future__ import annotations

import torch

BLOCK = 256
FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


def stochastic_round(x: torch.Tensor, mantissa_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """fp32 values keeping ``mantissa_bits`` of fp32's 23, rounded up with the probability given by the dropped
    bits. Finite inputs; IEEE floats keep the sign apart, so magnitudes round the same way either sign."""
    drop = 23 - mantissa_bits
    bits = x.float().contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << drop, bits.shape, device=bits.device, dtype=torch.int32, generator=generator)
    return ((bits + noise) & -(1 << drop)).view(torch.float32)


def round_to_bfloat16(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return stochastic_round(x, 7, generator).to(torch.bfloat16)


class Fp8Blocks:
    """Encode / decode a tensor as (e4m3 codes, one scale per block). Codes keep a padded (blocks, BLOCK)
    shape so that decoding is one multiply; ``decode`` restores the original shape."""

    @staticmethod
    def encode(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.float().reshape(-1)
        pad = -flat.numel() % BLOCK
        blocks = torch.nn.functional.pad(flat, (0, pad)).view(-1, BLOCK)
        scale = blocks.abs().amax(1, keepdim=True).clamp_min(1e-30) / FP8_MAX
        scaled = stochastic_round(blocks / scale, 3, generator).clamp_(-FP8_MAX, FP8_MAX)
        return scaled.to(FP8), scale.squeeze(1)

    @staticmethod
    def decode(codes: torch.Tensor, scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return (codes.float() * scale[:, None]).reshape(-1)[:like.numel()].view(like.shape)

    @staticmethod
    def nbytes(numel: int) -> int:
        blocks = -(-numel // BLOCK)
        return blocks * BLOCK + 4 * blocks


# Adam moments of one tensor, stored as ``kind`` (float32 | bfloat16 | float8), read and written as flat fp32
# pieces [lo, hi) so that a large tensor's step runs in bounded temporaries. ``lo`` is a multiple of BLOCK.
MOMENTS = ("exp_avg", "exp_avg_sq")


def init_moments(state: dict, numel: int, kind: str, device) -> None:
    if kind == "float8":
        blocks = -(-numel // BLOCK)
        for key in MOMENTS:
            state[key] = torch.zeros(blocks, BLOCK, dtype=FP8, device=device)
            state[key + "_scale"] = torch.zeros(blocks, device=device)
    else:
        dtype = torch.float32 if kind == "float32" else torch.bfloat16
        for key in MOMENTS:
            state[key] = torch.zeros(numel, dtype=dtype, device=device)


def read_moment(state: dict, key: str, kind: str, lo: int, hi: int) -> torch.Tensor:
    """fp32 values [lo, hi) of a moment; for float32 the stored tensor or a view of it, so in-place updates land
    in the state."""
    stored = state[key]
    if kind in ("float32", "bfloat16"):  # stored flat; a whole one is used as it is (each view costs host time)
        value = stored if (lo, hi) == (0, stored.numel()) else stored[lo:hi]
        return value if kind == "float32" else value.float()
    b0, b1 = lo // BLOCK, -(-hi // BLOCK)
    value = (stored[b0:b1].float() * state[key + "_scale"][b0:b1, None]).view(-1)[:hi - lo]
    return value.square_() if key == "exp_avg_sq" else value  # the second moment is stored as its root


def write_moment(state: dict, key: str, kind: str, lo: int, hi: int, value: torch.Tensor,
                 generator: torch.Generator | None) -> None:
    if kind == "float32":
        return  # updated in place through read_moment's view
    if kind == "bfloat16":
        state[key][lo:hi].copy_(round_to_bfloat16(value, generator))
        return
    codes, scale = Fp8Blocks.encode(value.sqrt() if key == "exp_avg_sq" else value, generator)
    b0 = lo // BLOCK
    state[key][b0:b0 + len(codes)].copy_(codes)
    state[key + "_scale"][b0:b0 + len(codes)].copy_(scale)


def moment_bytes(numel: int, kind: str) -> int:
    """Bytes of both moments of a tensor of ``numel`` values."""
    per = {"float32": 4 * numel, "bfloat16": 2 * numel}.get(kind) or Fp8Blocks.nbytes(numel)
    return 2 * per
