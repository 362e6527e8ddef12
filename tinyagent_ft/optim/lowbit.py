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


def rounding_seeds(device, generator: torch.Generator | None, count: int | None = None) -> torch.Tensor:
    """Seeds for ``rounding_bits`` drawn on the device from the optimizer's generator (no host sync): one (0-d), or
    ``count`` of them."""
    return torch.randint(0, 1 << 32, () if count is None else (count,), device=device, dtype=torch.int64,
                         generator=generator)


def add_rounded_flat(target: torch.Tensor, update: torch.Tensor, alpha: float, decay: float, seed: torch.Tensor,
                     offset: int) -> None:
    """``add_rounded_`` of flat tensors: the building block that compiled functions (here and in ``projector``) end
    with."""
    x = target.float() * decay + update * alpha
    index = torch.arange(offset, offset + target.numel(), device=target.device)
    bits = (x.view(torch.int32) + rounding_bits(index, seed, 16).to(torch.int32)) & -(1 << 16)
    target.copy_(bits.view(torch.float32))  # exact: the dropped bits are zero


@functools.cache
def _compiled(fn):
    """``fn`` compiled, called with its tensors detached: a compiled function guards on whether an input is a view,
    on its base's sizes and on requires_grad, and compiles anew whenever one of them changes. Callers pass flat tensors
    where they can, so that sizes only differ in length and sizes that happen to be equal (dynamo's duck sizing) do not
    tie unrelated dimensions. Past dynamo's recompile limit a function runs eagerly, as it does on a CPU."""
    compiled = torch.compile(fn, dynamic=True)

    def call(*args):
        return compiled(*(a.detach() if isinstance(a, torch.Tensor) else a for a in args))
    return call


def fused(fn, device: torch.device):
    """``fn`` compiled into a few kernels on CUDA (where Triton is): one call instead of a dozen, the step of a small
    model being bound by the host's calls. The eager torch operations elsewhere."""
    return _compiled(fn) if device.type == "cuda" and has_triton() else fn


def add_rounded_(target: torch.Tensor, update: torch.Tensor, alpha: float, decay: float, seed: torch.Tensor,
                 offset: int = 0) -> None:
    """target = decay * target + alpha * update for a bf16 ``target`` and an fp32 ``update`` of as many values,
    stored with stochastic rounding: a step below half of bf16's spacing at a weight still moves it on average.
    The bits of value i come from ``rounding_bits(offset + i, seed)``, so pieces of a tensor updated apart with their
    offsets round as the whole would. One compiled kernel on CUDA (where Triton is), torch operations elsewhere."""
    fused(add_rounded_flat, target.device)(target.view(-1), update.view(-1), alpha, decay, seed, offset)


def add_rounded_many(targets: list, updates: list | torch.Tensor, alpha: float, decay: float,
                     generator: torch.Generator | None) -> None:
    """``add_rounded_`` of bf16 tensors (no fp32 master copy) from their fp32 updates (a list, or one tensor holding
    them all in order), with one seed drawn on the device (no host sync) and each target's bits offset past the
    previous one's. Several targets are updated as one: gathered into one buffer, updated by one call, scattered
    back (a call costs more host time than the copies cost the GPU)."""
    seed = rounding_seeds(targets[0].device, generator)
    if len(targets) == 1:
        add_rounded_(targets[0], updates[0] if isinstance(updates, list) else updates, alpha, decay, seed)
        return
    flat = [t.view(-1) for t in targets]
    update = torch.cat([u.view(-1) for u in updates]) if isinstance(updates, list) else updates.view(-1)
    gathered = torch.cat(flat)
    add_rounded_(gathered, update, alpha, decay, seed)
    torch._foreach_copy_(flat, list(gathered.split([t.numel() for t in flat])))


# Float8 (e4m3) blocks: BLOCK values share one fp32 scale, the block's largest magnitude mapped to e4m3's largest
# finite value. Codes are kept as (blocks, BLOCK), so decoding is one multiply.
def float8_nbytes(numel: int) -> int:
    blocks = -(-numel // BLOCK)
    return blocks * BLOCK + 4 * blocks


def decode_float8(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """fp32 values of e4m3 codes (..., BLOCK) and their block scales (...)."""
    return codes.float() * scales[..., None]


def encode_float8_(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor, seed: torch.Tensor) -> None:
    """Store fp32 values x (..., BLOCK) into ``codes`` and ``scales`` in place, rounded stochastically to e4m3's three
    mantissa bits with the bits of ``rounding_bits(i, seed)``: unbiased where e4m3 is normal, 2**-6 of the block's
    maximum and above."""
    scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / FP8_MAX
    index = torch.arange(x.numel(), device=x.device).view(x.shape)
    up = ((x / scale).view(torch.int32) + rounding_bits(index, seed, 20).to(torch.int32)) & -(1 << 20)
    codes.copy_(up.view(torch.float32).clamp(-FP8_MAX, FP8_MAX).to(FP8))
    scales.copy_(scale.squeeze(-1))


def _adam_float8(g: torch.Tensor, m_codes: torch.Tensor, m_scales: torch.Tensor, v_codes: torch.Tensor,
                 v_scales: torch.Tensor, beta1: float, beta2: float, correction: float, eps: float,
                 m_seed: torch.Tensor, v_seed: torch.Tensor) -> torch.Tensor:
    """``adam_float8_`` of flat tensors (codes and gradients n values, scales n / BLOCK); ``correction`` is
    1 / sqrt(1 - beta2**step), a factor only: a compiler may specialize on a float it takes powers of, and this one
    changes every step."""
    g, m_codes, v_codes = (t.view(-1, BLOCK) for t in (g, m_codes, v_codes))
    g = g.float()
    m = torch.lerp(decode_float8(m_codes, m_scales), g, 1 - beta1)
    root = decode_float8(v_codes, v_scales)  # the second moment is stored as its root: half the decades
    root = (root * root * beta2 + g * g * (1 - beta2)).sqrt()
    encode_float8_(m, m_codes, m_scales, m_seed)
    encode_float8_(root, v_codes, v_scales, v_seed)
    return (m / (root * correction + eps)).view(-1)


def _adam_float8_into(target: torch.Tensor, g: torch.Tensor, m_codes: torch.Tensor, m_scales: torch.Tensor,
                      v_codes: torch.Tensor, v_scales: torch.Tensor, beta1: float, beta2: float, correction: float,
                      eps: float, m_seed: torch.Tensor, v_seed: torch.Tensor, alpha: float, decay: float,
                      seed: torch.Tensor) -> None:
    """``_adam_float8``, its directions added at once into the flat bf16 ``target`` (``add_rounded_flat``)."""
    direction = _adam_float8(g, m_codes, m_scales, v_codes, v_scales, beta1, beta2, correction, eps, m_seed, v_seed)
    add_rounded_flat(target, direction[:target.numel()], alpha, decay, seed, 0)


def adam_float8_(g: torch.Tensor, m: tuple, v: tuple, betas: tuple, step: int, eps: float,
                 generator: torch.Generator | None, target: torch.Tensor | None = None, alpha: float = 0.0,
                 decay: float = 1.0) -> torch.Tensor | None:
    """One Adam step of moments stored as float8 blocks, m = (codes, scales) and v = (codes of its root, scales), in
    place, from gradient blocks g (rows x BLOCK, any float dtype, zero where it pads): returns the bias-corrected
    directions m / (sqrt(v / bc2) + eps) (rows x BLOCK, without the first moment's correction 1 / bc1) from the fp32
    moments before they are stored. Decode, update, stochastic rounding and encode are one pass: one or two kernels
    on CUDA instead of dozens of operations and their fp32 temporaries. With a bf16 ``target`` (the weight of the
    gradient's first values, flat) nothing is returned: target = decay * target + alpha * direction, stochastically
    rounded (``add_rounded_``), in the same pass."""
    seeds = rounding_seeds(g.device, generator, 3).unbind()
    (m_codes, m_scales), (v_codes, v_scales) = m, v
    args = (g.view(-1), m_codes.view(-1), m_scales.view(-1), v_codes.view(-1), v_scales.view(-1), betas[0], betas[1],
            (1 - betas[1] ** step) ** -0.5, eps, *seeds[:2])
    if target is None:
        return fused(_adam_float8, g.device)(*args).view(g.shape)
    fused(_adam_float8_into, g.device)(target.view(-1), *args, alpha, decay, seeds[2])
    return None


# Adam moments stored as ``kind`` (float32 | bfloat16 | float8), of many tensors at once. float8 moments are stepped by
# ``adam_float8_`` on the pieces' blocks: pieces [lo, hi) of several tensors (``lo`` a multiple of BLOCK) gathered into
# one batch, a stacked slab's rows as they lie. float32 and bfloat16 moments are read as flat fp32 pieces and written
# back (a fixed number of launches per batch: a step is bound by such host-side work).
MOMENTS = ("exp_avg", "exp_avg_sq")


def new_moments(numel: int, kind: str, device, batch: tuple = ()) -> dict:
    """Zero moments of a tensor of ``numel`` values stored as ``kind`` (of ``batch`` such tensors, stacked)."""
    if kind == "float8":
        blocks = -(-numel // BLOCK)
        return {name: torch.zeros(*batch, *shape, dtype=dtype, device=device) for key in MOMENTS
                for name, shape, dtype in ((key, (blocks, BLOCK), FP8), (key + "_scale", (blocks,), torch.float32))}
    dtype = torch.float32 if kind == "float32" else torch.bfloat16
    return {key: torch.zeros(*batch, numel, dtype=dtype, device=device) for key in MOMENTS}


def moment_bytes(numel: int, kind: str) -> int:
    """Bytes of both moments of a tensor of ``numel`` values."""
    per = {"float32": 4 * numel, "bfloat16": 2 * numel}.get(kind) or float8_nbytes(numel)
    return 2 * per


def _as_blocks(x: torch.Tensor, blocks: int) -> torch.Tensor:
    """The rows of x (flat, or B x k) as ``blocks`` rows of BLOCK values each, zero-padded where they fall short."""
    pad = blocks * BLOCK - x.shape[-1]
    return (torch.nn.functional.pad(x, (0, pad)) if pad else x).reshape(-1, BLOCK)


def adam_float8_pieces(states: list, grads: list, ranges: list, betas: tuple, step: int, eps: float,
                       generator: torch.Generator | None, targets: list | None = None, alpha: float = 0.0,
                       decay: float = 1.0) -> list[torch.Tensor] | None:
    """``adam_float8_`` of the float8 moments of pieces [lo, hi) of several tensors, from their flat gradient pieces:
    one piece in place, several gathered (the gradients, codes and scales of their whole blocks) and scattered back
    after one step. Returns each piece's fp32 directions, flat; or, given the pieces' bf16 weights (``targets``),
    updates them in the same pass and returns None."""
    spans = [(lo // BLOCK, -(-hi // BLOCK)) for lo, hi in ranges]
    counts = [b1 - b0 for b0, b1 in spans]
    update = dict(alpha=alpha, decay=decay)
    if len(states) == 1:
        (st,), (b0, b1) = states, spans[0]
        out = adam_float8_(_as_blocks(grads[0], b1 - b0), *((st[key][b0:b1], st[key + "_scale"][b0:b1])
                           for key in MOMENTS), betas, step, eps, generator, targets[0] if targets else None,
                           **update)
        return None if targets else [out.view(-1)[:grads[0].numel()]]
    g = torch.cat([_as_blocks(x, n) for x, n in zip(grads, counts)])
    codes = {key: torch.cat([st[key].view(torch.uint8)[b0:b1] for st, (b0, b1) in zip(states, spans)]).view(FP8)
             for key in MOMENTS}  # torch.cat has no float8 kernel everywhere; bytes it has
    scales = {key: torch.cat([st[key + "_scale"][b0:b1] for st, (b0, b1) in zip(states, spans)]) for key in MOMENTS}
    weights = None if targets is None else torch.cat([_as_blocks(t.view(-1), n) for t, n in zip(targets, counts)])
    out = adam_float8_(g, *((codes[key], scales[key]) for key in MOMENTS), betas, step, eps, generator, weights,
                       **update)
    for key in MOMENTS:
        torch._foreach_copy_([st[key].view(torch.uint8)[b0:b1] for st, (b0, b1) in zip(states, spans)],
                             list(codes[key].view(torch.uint8).split(counts)))
        torch._foreach_copy_([st[key + "_scale"][b0:b1] for st, (b0, b1) in zip(states, spans)],
                             list(scales[key].split(counts)))
    if targets is not None:
        torch._foreach_copy_([t.view(-1) for t in targets],
                             [w.view(-1)[:t.numel()] for w, t in zip(weights.split(counts), targets)])
        return None
    return [d.view(-1)[:x.numel()] for d, x in zip(out.split(counts), grads)]


def adam_float8_stacked(tensors: dict, R: torch.Tensor, betas: tuple, step: int, eps: float,
                        generator: torch.Generator | None) -> torch.Tensor:
    """``adam_float8_`` of a slab's float8 moments (B rows of k values, ``new_moments(k, "float8", device, (B,))``)
    from its projected gradients R (B x k), in place: the directions, B x k."""
    B, k = R.shape
    blocks = tensors["exp_avg"].shape[1]
    direction = adam_float8_(_as_blocks(R, blocks), *(
        (tensors[key].view(B * blocks, BLOCK), tensors[key + "_scale"].view(B * blocks)) for key in MOMENTS),
        betas, step, eps, generator)
    return direction.view(B, blocks * BLOCK)[:, :k]


def read_moments(states: list, key: str, kind: str, ranges: list) -> tuple[list, torch.Tensor | None]:
    """fp32 values [lo, hi) of a float32 or bfloat16 moment of each state, and the buffer holding them (None for
    float32, whose values are views of the stored tensors, so in-place updates land in the state)."""
    if kind == "float32":  # a whole tensor is used as it is (each view costs host time)
        return [st[key] if (lo, hi) == (0, st[key].numel()) else st[key][lo:hi]
                for st, (lo, hi) in zip(states, ranges)], None
    buffer = torch.cat([st[key][lo:hi] for st, (lo, hi) in zip(states, ranges)]).float()
    return list(buffer.split([hi - lo for lo, hi in ranges])), buffer


def write_moments(states: list, key: str, kind: str, ranges: list, buffer: torch.Tensor | None,
                  generator: torch.Generator | None) -> None:
    """Store the buffer of ``read_moments`` (updated in place) back into the states, with stochastic rounding."""
    if kind == "float32":
        return
    rounded = round_to_bfloat16_(buffer, generator).split([hi - lo for lo, hi in ranges])
    torch._foreach_copy_([st[key][lo:hi] for st, (lo, hi) in zip(states, ranges)], list(rounded))


# The same for the stacked state of weights of one shape (``new_moments(k, kind, device, (B,))``): the moments of all
# B rows read into one fp32 buffer and written back from it, whatever B.
def read_stacked(tensors: dict, key: str, kind: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B x k fp32 values, their buffer for ``write_stacked``): for float32 the stored tensor itself."""
    if kind == "float32":
        return tensors[key], None
    buffer = tensors[key].float()
    return buffer, buffer


def write_stacked(tensors: dict, key: str, kind: str, buffer: torch.Tensor | None,
                  generator: torch.Generator | None) -> None:
    """Store the buffer of ``read_stacked`` (updated in place) back, with stochastic rounding."""
    if kind == "float32":
        return
    tensors[key].copy_(round_to_bfloat16_(buffer, generator))
