"""Low-precision storage for optimizer state and weights, without losing small updates.

Round-to-nearest loses an update smaller than half the stored format's step: an Adam second moment
that should decay by 0.1% a step, or a bf16 weight moved by 1e-5 of its size, stays where it is.
Stochastic rounding keeps each stored value unbiased, so such updates add up on average.
Moments in 8 bits are float8 (e4m3) with one fp32 scale per block of ``BLOCK`` values (the block's
largest magnitude maps to e4m3's largest finite value); the second moment is stored as its square
root, which halves the decades it spans.
"""
from __future__ import annotations

import functools

import torch
from torch.utils._triton import has_triton

BLOCK = 256
FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


def stochastic_round_(x: torch.Tensor, mantissa_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """In place on a contiguous fp32 tensor (returned): its values keeping ``mantissa_bits`` of fp32's 23, rounded up
    with the probability given by the dropped bits. Finite inputs; IEEE floats keep the sign apart, so magnitudes
    round the same way either sign. In place, a large update's rounding costs one temporary (the noise), not three."""
    drop = 23 - mantissa_bits
    bits = x.view(torch.int32)
    bits.add_(torch.randint(0, 1 << drop, bits.shape, device=bits.device, dtype=torch.int32, generator=generator))
    bits.bitwise_and_(-(1 << drop))
    return x


def round_to_bfloat16_(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """bf16 values of the contiguous fp32 tensor x with stochastic rounding, spending x (its bits are rounded in
    place)."""
    return stochastic_round_(x, 7, generator).to(torch.bfloat16)


# bf16 weights without an fp32 master copy are updated by one fused kernel on CUDA: the fp32 update is read once and the
# rounding's random bits are made in registers from a counter-based hash of each value's index and a seed (no noise
# tensor, no fp32 copy of the weight), so the step's memory traffic and temporaries fall to the update itself.
_MASK32 = 0xFFFFFFFF


def rounding_bits(index: torch.Tensor, seed: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits`` uniform random bits for each entry of ``index`` (int64), from the seed (an int64 drawn from the
    optimizer's generator): a 32-bit integer hash ("lowbias32" finalizer) of the index offset by the seed. The seed
    is added first: a compiler may compute an index's own arithmetic in 32 bits."""
    x = (index + seed) & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32  # wraps beyond int64 for large x; the low 32 bits are still right
    x = x ^ (x >> 16)
    return x & ((1 << bits) - 1)


def _add_rounded(target: torch.Tensor, update: torch.Tensor, alpha: float, decay: float, seed: torch.Tensor,
                 offset: int) -> None:
    x = target.float() * decay + update.view(target.shape) * alpha
    index = torch.arange(offset, offset + target.numel(), device=target.device).view(target.shape)
    bits = (x.view(torch.int32) + rounding_bits(index, seed, 16).to(torch.int32)) & -(1 << 16)
    target.copy_(bits.view(torch.float32))  # exact: the dropped bits are zero


@functools.cache
def _compiled_add_rounded():
    return torch.compile(_add_rounded, dynamic=True, fullgraph=True)


def add_rounded_(target: torch.Tensor, update: torch.Tensor, alpha: float, decay: float, seed: torch.Tensor,
                 offset: int = 0) -> None:
    """target = decay * target + alpha * update for a bf16 ``target`` and an fp32 ``update`` of as many values,
    stored with stochastic rounding: a step below half of bf16's spacing at a weight still moves it on average.
    The bits of value i come from ``rounding_bits(offset + i, seed)``, so pieces of a tensor updated apart with their
    offsets round as the whole would. One compiled kernel on CUDA (where Triton is), torch operations elsewhere."""
    step = _compiled_add_rounded() if target.is_cuda and has_triton() else _add_rounded
    step(target, update, alpha, decay, seed, offset)


def add_rounded_many(targets: list, updates: list, alpha: float, decay: float,
                     generator: torch.Generator | None) -> None:
    """``add_rounded_`` of bf16 tensors (no fp32 master copy) and their fp32 updates: one seed drawn on the device (no
    host sync), each target's bits offset past the previous one's."""
    seed, offset = torch.randint(0, 1 << 32, (), device=targets[0].device, dtype=torch.int64, generator=generator), 0
    for t, u in zip(targets, updates):
        add_rounded_(t, u, alpha, decay, seed, offset)
        offset += t.numel()


class Fp8Blocks:
    """Encode / decode a tensor as (e4m3 codes, one scale per block). Codes keep a padded (blocks, BLOCK)
    shape so that decoding is one multiply; ``decode`` restores the original shape."""

    @staticmethod
    def encode(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.float().reshape(-1)
        pad = -flat.numel() % BLOCK
        return Fp8Blocks.encode_blocks(torch.nn.functional.pad(flat, (0, pad)).view(-1, BLOCK), generator)

    @staticmethod
    def encode_blocks(blocks: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, scales) of fp32 values already laid out as (blocks, BLOCK)."""
        scale = blocks.abs().amax(1, keepdim=True).clamp_min(1e-30) / FP8_MAX
        scaled = stochastic_round_(blocks / scale, 3, generator).clamp_(-FP8_MAX, FP8_MAX)
        return scaled.to(FP8), scale.squeeze(1)

    @staticmethod
    def decode(codes: torch.Tensor, scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return (codes.float() * scale[:, None]).reshape(-1)[:like.numel()].view(like.shape)

    @staticmethod
    def nbytes(numel: int) -> int:
        blocks = -(-numel // BLOCK)
        return blocks * BLOCK + 4 * blocks


# Adam moments stored as ``kind`` (float32 | bfloat16 | float8), read and written as flat fp32 pieces [lo, hi) of
# many tensors at once: the pieces of a batch are decoded into one buffer and encoded from it in one go, a fixed
# number of launches per batch (a step is bound by such host-side work). ``lo`` is a multiple of BLOCK.
MOMENTS = ("exp_avg", "exp_avg_sq")


def new_moments(numel: int, kind: str, device, batch: tuple = ()) -> dict:
    """Zero moments of a tensor of ``numel`` values stored as ``kind`` (of ``batch`` such tensors, stacked)."""
    if kind == "float8":
        blocks = -(-numel // BLOCK)
        return {name: torch.zeros(*batch, *shape, dtype=dtype, device=device) for key in MOMENTS
                for name, shape, dtype in ((key, (blocks, BLOCK), FP8), (key + "_scale", (blocks,), torch.float32))}
    dtype = torch.float32 if kind == "float32" else torch.bfloat16
    return {key: torch.zeros(*batch, numel, dtype=dtype, device=device) for key in MOMENTS}


def _blocks(lo: int, hi: int) -> tuple[int, int]:
    return lo // BLOCK, -(-hi // BLOCK)


def _decode(codes: torch.Tensor, scales: torch.Tensor, key: str) -> torch.Tensor:
    """fp32 values of a moment's float8 blocks (..., BLOCK) and their scales (...): the second moment is stored as
    its root."""
    buffer = codes.float().mul_(scales[..., None])
    return buffer.square_() if key == "exp_avg_sq" else buffer


def _encode(buffer: torch.Tensor, key: str, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, scales) of a ``_decode`` buffer (spent), one block per row."""
    return Fp8Blocks.encode_blocks((buffer.sqrt_() if key == "exp_avg_sq" else buffer).view(-1, BLOCK), generator)


def read_moments(states: list, key: str, kind: str, ranges: list) -> tuple[list, torch.Tensor | None]:
    """fp32 values [lo, hi) of a moment of each state, and the buffer holding them (None for float32, whose values
    are views of the stored tensors, so in-place updates land in the state). A float8 buffer keeps each piece's
    whole blocks, so that ``write_moments`` re-encodes exactly those."""
    if kind == "float32":  # a whole tensor is used as it is (each view costs host time)
        return [st[key] if (lo, hi) == (0, st[key].numel()) else st[key][lo:hi]
                for st, (lo, hi) in zip(states, ranges)], None
    if kind == "bfloat16":
        buffer = torch.cat([st[key][lo:hi] for st, (lo, hi) in zip(states, ranges)]).float()
        return list(buffer.split([hi - lo for lo, hi in ranges])), buffer
    spans = [_blocks(lo, hi) for lo, hi in ranges]
    codes = torch.cat([st[key].view(torch.uint8)[b0:b1] for st, (b0, b1) in zip(states, spans)]).view(FP8)
    scales = torch.cat([st[key + "_scale"][b0:b1] for st, (b0, b1) in zip(states, spans)])
    buffer = _decode(codes, scales, key)
    pieces = buffer.view(-1).split([BLOCK * (b1 - b0) for b0, b1 in spans])
    return [piece[:hi - lo] for piece, (lo, hi) in zip(pieces, ranges)], buffer


def write_moments(states: list, key: str, kind: str, ranges: list, buffer: torch.Tensor | None,
                  generator: torch.Generator | None) -> None:
    """Store the buffer of ``read_moments`` (updated in place) back into the states, with stochastic rounding."""
    if kind == "float32":
        return
    if kind == "bfloat16":
        rounded = round_to_bfloat16_(buffer, generator).split([hi - lo for lo, hi in ranges])
        torch._foreach_copy_([st[key][lo:hi] for st, (lo, hi) in zip(states, ranges)], list(rounded))
        return
    codes, scales = _encode(buffer, key, generator)
    spans = [_blocks(lo, hi) for lo, hi in ranges]
    counts = [b1 - b0 for b0, b1 in spans]
    torch._foreach_copy_([st[key].view(torch.uint8)[b0:b1] for st, (b0, b1) in zip(states, spans)],
                         list(codes.view(torch.uint8).split(counts)))
    torch._foreach_copy_([st[key + "_scale"][b0:b1] for st, (b0, b1) in zip(states, spans)], list(scales.split(counts)))


def moment_bytes(numel: int, kind: str) -> int:
    """Bytes of both moments of a tensor of ``numel`` values."""
    per = {"float32": 4 * numel, "bfloat16": 2 * numel}.get(kind) or Fp8Blocks.nbytes(numel)
    return 2 * per


# The same for the stacked state of weights of one shape (``new_moments(k, kind, device, (B,))``): the moments of all
# B rows read into one fp32 buffer and written back from it, whatever B.
def read_stacked(tensors: dict, key: str, kind: str, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B x k fp32 values, their buffer for ``write_stacked``): for float32 the stored tensor itself."""
    if kind == "float32":
        return tensors[key], None
    if kind == "bfloat16":
        buffer = tensors[key].float()
        return buffer, buffer
    buffer = _decode(tensors[key], tensors[key + "_scale"], key)
    values = buffer.view(buffer.shape[0], -1)
    return (values if values.shape[1] == k else values[:, :k]), buffer


def write_stacked(tensors: dict, key: str, kind: str, buffer: torch.Tensor | None,
                  generator: torch.Generator | None) -> None:
    """Store the buffer of ``read_stacked`` (updated in place) back, with stochastic rounding."""
    if kind == "float32":
        return
    if kind == "bfloat16":
        tensors[key].copy_(round_to_bfloat16_(buffer, generator))
        return
    codes, scales = _encode(buffer, key, generator)
    tensors[key].copy_(codes.view(tensors[key].shape))
    tensors[key + "_scale"].copy_(scales.view(tensors[key + "_scale"].shape))
