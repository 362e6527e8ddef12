import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, build_param_groups, natural_gradient_transform


def direct(g, H, lam):
    k = g.numel()
    F = lam * torch.eye(k, dtype=torch.float64) + H.double() @ H.double().T
    return torch.linalg.solve(F, g.double().reshape(-1)).reshape(g.shape)


@pytest.mark.parametrize("k,s,lam", [(50, 5, 1e-3), (300, 20, 1e-1), (64, 1, 1.0)])
def test_transform_matches_float64_solve(k, s, lam):
    torch.manual_seed(0)
    H = torch.randn(k, s)
    g = H[:, -1].clone()
    out = natural_gradient_transform(g, H, lam)
    ref = direct(g, H, lam)
    assert torch.allclose(out.double(), ref, rtol=1e-3, atol=1e-3 * ref.abs().max())


def test_transform_accepts_bf16():
    H = torch.randn(40, 4).bfloat16()
    out = natural_gradient_transform(H[:, -1], H, 1.0)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_incremental_gram_matches_direct_over_many_steps():
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(16, 12))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 4, "history": 5, "damping": 0.5, "damping_mode": "absolute",
                               "history_dtype": "float32", "update_proj_gap": 1000}], lr=0.0)
    w.grad = torch.randn(16, 12)
    opt.step()  # sets up the projectors; then start the history afresh
    state, group, seen = opt.state[w], opt.param_groups[0], []
    state["hist"].zero_()  # start the history afresh
    state["gram"].zero_()
    for step in range(1, 31):
        R = torch.randn(4, 4)
        seen.append(R.reshape(-1))
        out = opt._natural_many(group, [(w, R)])[0].view(R.shape)  # flat, as the Adam step takes it
        H = torch.stack(seen[-5:], dim=1)
        assert torch.allclose(out.double(), direct(R, H, 0.5), rtol=1e-4, atol=1e-4), step


def galore_reference(w0, grads, rank, scale, lr, betas=(0.9, 0.999), eps=1e-8):
    """Plain one-sided GaLore (right projector since m >= n), written out step by step."""
    w, m, v = w0.clone(), None, None
    for t, G in enumerate(grads, 1):
        if t == 1:
            Q = torch.linalg.svd(G, full_matrices=False)[2][:rank]
        R = G @ Q.T
        m = R * (1 - betas[0]) if m is None else betas[0] * m + (1 - betas[0]) * R
        v = R * R * (1 - betas[1]) if v is None else betas[1] * v + (1 - betas[1]) * R * R
        N = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
        w = w - lr * scale * (N @ Q)
    return w


def run_steps(opt, params, grads):
    for G in grads:
        params[0].grad = G.clone()
        opt.step()


def test_history_zero_reproduces_galore():
    torch.manual_seed(2)
    w = nn.Parameter(torch.randn(20, 10))
    grads = [torch.randn(20, 10) for _ in range(8)]
    ref = galore_reference(w.detach(), grads, rank=3, scale=0.25, lr=1e-2)
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 3, "side": "std", "history": 0, "scale": 0.25}], lr=1e-2)
    run_steps(opt, [w], grads)
    assert torch.allclose(w.detach(), ref, atol=1e-5)


def test_full_rank_scale_one_reproduces_adamw():
    torch.manual_seed(3)
    a, b = nn.Parameter(torch.randn(12, 8)), None
    b = nn.Parameter(a.detach().clone())
    grads = [torch.randn(12, 8) for _ in range(10)]
    ours = NaturalGaLoreAdamW([{"params": [a], "rank": 8, "side": "std", "history": 0, "scale": 1.0}],
                              lr=1e-2, weight_decay=0.1)
    ref = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1)
    run_steps(ours, [a], grads)
    run_steps(ref, [b], grads)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("shape", [(24, 10), (10, 24)])
@pytest.mark.parametrize("sides", [(True, True), (True, False), (False, True), (False, False)])
def test_projection_round_trip_in_either_order(shape, sides):
    from tinyagent_ft.optim.projector import add_projected_back, project, project_back
    torch.manual_seed(5)
    m, n = shape
    P = torch.linalg.qr(torch.randn(m, 4)).Q if sides[0] else None
    Q = torch.linalg.qr(torch.randn(n, 4)).Q.T if sides[1] else None
    G = torch.randn(m, n, dtype=torch.float64)
    Pd, Qd = (None if P is None else P.double()), (None if Q is None else Q.double())
    R = (G if Pd is None else Pd.T @ G) @ (torch.eye(n, dtype=torch.float64) if Qd is None else Qd.T)
    assert torch.allclose(project(G.float(), P, Q).double(), R, atol=1e-5)
    W = torch.randn(m, n)
    for dtype in (torch.float32, torch.bfloat16):  # fused into one GEMM, or built and cast for other dtypes
        w = W.clone().to(dtype)
        add_projected_back(w, R.float(), P, Q, alpha=-0.5)
        expected = W.double() - 0.5 * project_back(R, Pd, Qd)
        assert torch.allclose(w.double(), expected, atol=1e-5 if dtype == torch.float32 else 5e-2)


@pytest.mark.parametrize("sides", [(True, True), (True, False), (False, True)])
def test_batched_projection_equals_one_weight_at_a_time(sides, monkeypatch):
    """Weights of one shape go through one batched product, cut into batches of at most BATCH_VALUES values;
    the result is each weight's own projection and back-projection (bf16 weights still one at a time)."""
    from tinyagent_ft.optim import projector
    monkeypatch.setattr(projector, "BATCH_VALUES", 24 * 10 * 3)  # batches of 3 of the 5 (24, 10) weights
    torch.manual_seed(6)
    shapes = [(24, 10)] * 5 + [(10, 24)] * 2 + [(24, 10)]
    Gs = [torch.randn(s, dtype=torch.bfloat16 if s == (10, 24) else torch.float32) for s in shapes]  # bf16 batched too
    Ps = [torch.linalg.qr(torch.randn(s[0], 4)).Q if sides[0] else None for s in shapes]
    Qs = [torch.linalg.qr(torch.randn(s[1], 4)).Q.T.contiguous() if sides[1] else None for s in shapes]
    Rs = projector.project_many(Gs, Ps, Qs)
    assert all(R.dtype == torch.float32 and torch.allclose(R, projector.project(G.float(), P, Q), atol=1e-5)
               for R, G, P, Q in zip(Rs, Gs, Ps, Qs))
    Ws = [torch.randn(s, dtype=torch.bfloat16 if i == 7 else torch.float32) for i, s in enumerate(shapes)]
    ours, ref = [w.clone() for w in Ws], [w.clone() for w in Ws]
    projector.add_projected_back_many(ours, Rs, Ps, Qs, alpha=-0.5)
    for w, R, P, Q in zip(ref, Rs, Ps, Qs):
        projector.add_projected_back(w, R, P, Q, alpha=-0.5)
    assert all(torch.allclose(a.float(), b.float(), atol=1e-5) for a, b in zip(ours, ref))
    assert not any(torch.equal(a, w) for a, w in zip(ours, Ws))


def test_bf16_parameters_train():
    torch.manual_seed(4)
    w = nn.Parameter(torch.randn(32, 16, dtype=torch.bfloat16))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 4}], lr=1e-2)
    before = w.detach().clone()
    run_steps(opt, [w], [torch.randn(32, 16, dtype=torch.bfloat16) for _ in range(5)])
    assert w.dtype == torch.bfloat16 and not torch.equal(w, before) and torch.isfinite(w.float()).all()
    assert opt.state[w]["gram"].dtype == torch.float32 and opt.state[w]["P"].dtype == torch.bfloat16


def test_refresh_at_the_right_steps():
    torch.manual_seed(5)
    w = nn.Parameter(torch.randn(10, 10))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 2, "update_proj_gap": 3}], lr=1e-3)
    changed = []
    for step in range(1, 11):
        before = opt.state[w].get("P")
        before = None if before is None else before.clone()  # a refresh writes the projector in place
        w.grad = torch.randn(10, 10)
        opt.step()
        if before is None or not torch.equal(before, opt.state[w]["P"]):
            changed.append(step)
    assert changed == [1, 4, 7, 10]


def test_svd_failure_falls_back(monkeypatch, caplog):
    from tinyagent_ft.optim import projector
    real, failing = projector.top_singular_vectors, {"svd"}

    def flaky(G, rank, method, *a, **k):
        if method in failing:
            raise torch.linalg.LinAlgError(f"{method} did not converge")
        return real(G, rank, method, *a, **k)

    monkeypatch.setattr(projector, "top_singular_vectors", flaky)
    w = nn.Parameter(torch.randn(10, 8))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 2, "update_proj_gap": 1, "svd_method": "svd"}], lr=1e-3)
    w.grad = torch.randn(10, 8)
    opt.step()  # exact SVD fails, no previous projector: the randomized method is used
    assert opt.state[w]["Q"].shape == (2, 8)
    Q = opt.state[w]["Q"].clone()
    failing.add("randomized")
    w.grad = torch.randn(10, 8)
    opt.step()  # both fail: the previous projector is kept and training goes on
    assert torch.equal(opt.state[w]["Q"], Q) and opt.state[w]["step"] == 2
    assert "did not converge" in caplog.text


def test_failed_natural_solve_falls_back_without_sync():
    w = nn.Parameter(torch.randn(16, 12))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 4, "history": 3, "damping": 1e-3, "damping_mode": "absolute"}],
                             lr=1e-2)
    w.grad = torch.randn(16, 12)
    opt.step()
    R = torch.randn(4, 4)
    opt.state[w]["gram"].fill_(-1.0)  # a corrupted Gram matrix: the s x s system is not positive definite
    out = opt._natural_many(opt.param_groups[0], [(w, R)])[0]
    assert torch.equal(out, R.reshape(-1)) and opt.cholesky_fallbacks >= 1


def test_nonfinite_gradient_never_reaches_weights():
    w = nn.Parameter(torch.randn(8, 8))
    opt = NaturalGaLoreAdamW([{"params": [w], "rank": 2}], lr=1e-2)
    w.grad = torch.randn(8, 8)
    opt.step()
    before = w.detach().clone()
    w.grad = torch.full((8, 8), float("nan"))
    opt.step()
    assert torch.equal(w, before) and opt.nonfinite_skips == 1


def shared_shape_run(steps=30, per_weight=False, reload_at=None, tmp_path=None, edit=None, dtype=torch.float32,
                     state_dtype="float32", **group):
    """Weights of three shapes (several of each, one alone) and an unprojected one, staggered refreshes, weight decay:
    the final weights and the optimizer. ``per_weight``: the per-weight path only; ``reload_at``: a checkpoint
    round trip (torch.save / weights_only load into a new optimizer, the loaded state passed through ``edit``)."""
    torch.manual_seed(0)
    shapes = [(24, 16)] * 5 + [(16, 40)] * 3 + [(8, 8)] + [(30, 16)] * 2
    ws = [nn.Parameter(torch.randn(s, dtype=dtype)) for s in shapes]
    emb = nn.Parameter(torch.randn(50, 16, dtype=dtype))
    make = lambda: NaturalGaLoreAdamW([{"params": ws, "rank": 6, "update_proj_gap": 7, **group}, {"params": [emb]}],
                                      lr=1e-2, weight_decay=0.01, state_dtype=state_dtype)  # noqa: E731
    opt, gen = make(), torch.Generator().manual_seed(1)
    for step in range(1, steps + 1):
        if per_weight:
            opt._stacked_step = lambda gi, g, params, grads, projected: list(range(len(params)))
        for w in ws + [emb]:
            w.grad = torch.randn(w.shape, generator=gen).to(dtype)
        opt.step()
        if step == reload_at:
            torch.save(opt.state_dict(), tmp_path / "opt.pt")
            state = torch.load(tmp_path / "opt.pt", weights_only=True)
            opt = make()
            opt.load_state_dict(edit(state) if edit else state)
    return [w.detach().clone() for w in ws + [emb]], opt


@pytest.mark.parametrize("group,batch_values", [({}, None), ({}, 24 * 16 * 2),  # full-size batches of 2 or 1 weights
                                                 ({"damping_mode": "relative", "damping": 10.0}, None),
                                                 ({"side": "std", "history": 0}, None)])
def test_stacked_state_steps_as_the_per_weight_path_and_resumes(tmp_path, monkeypatch, group, batch_values):
    """Weights of one shape keep their state in one stacked tensor per kind and step together; the result is the
    per-weight path's to the bit, also across a checkpoint, and each weight's state entries are views of the stack."""
    from tinyagent_ft.optim import projector
    if batch_values:
        monkeypatch.setattr(projector, "BATCH_VALUES", batch_values)
    stacked, opt = shared_shape_run(**group)
    per_weight, _ = shared_shape_run(per_weight=True, **group)
    resumed, _ = shared_shape_run(reload_at=13, tmp_path=tmp_path, **group)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(stacked, per_weight, resumed))
    assert len(opt._slabs) == 3  # (24, 16), (16, 40), (30, 16); the lone (8, 8) weight needs none
    m0, m1 = (opt.state[w]["exp_avg"] for w in opt.param_groups[0]["params"][:2])
    assert m1.data_ptr() - m0.data_ptr() == m0.numel() * m0.element_size()  # rows of one tensor


@pytest.mark.parametrize("dtype,state_dtype", [(torch.bfloat16, "float32"), (torch.float32, "float8"),
                                               (torch.bfloat16, "bfloat16"), (torch.bfloat16, "float8")])
def test_stacked_low_precision_steps_as_the_per_weight_path(tmp_path, monkeypatch, dtype, state_dtype):
    """bf16 weights (no fp32 master copy) and bf16 / float8 moments step stacked too, and resume. Stochastic rounding
    draws its bits in another order there than weight by weight: with the draws fixed (each value rounded up from
    halfway), the two paths agree to the bit."""
    from tinyagent_ft.optim import lowbit
    monkeypatch.setattr(torch, "randint", lambda low, high, size, generator=None, **kw: torch.full(
        size, high // 2, dtype=kw["dtype"], device=kw.get("device")))
    monkeypatch.setattr(lowbit, "rounding_bits", lambda index, seed, bits: torch.full_like(index, 1 << (bits - 1)))
    stacked, opt = shared_shape_run(dtype=dtype, state_dtype=state_dtype)
    per_weight, _ = shared_shape_run(per_weight=True, dtype=dtype, state_dtype=state_dtype)
    resumed, _ = shared_shape_run(reload_at=13, tmp_path=tmp_path, dtype=dtype, state_dtype=state_dtype)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(stacked, per_weight, resumed))
    assert len(opt._slabs) == 3 and all(w.dtype == dtype for w in stacked)


def test_a_ring_buffer_history_of_an_earlier_version_resumes(tmp_path):
    """Checkpoints before the stacked state kept each history as a ring buffer (``hist_pos``: the next row to write,
    ``hist_count``): they load and continue as if never saved."""
    s, pos = 4, 2

    def to_ring(state):  # today's rows (oldest first, all s filled) into the ring an earlier version would have held
        order = torch.tensor([(pos - s + i) % s for i in range(s)])
        for st in state["state"].values():
            if "hist" in st:
                ring, gram = torch.empty_like(st["hist"]), torch.empty_like(st["gram"])
                ring[order], gram[order[:, None], order[None, :]] = st["hist"], st["gram"]
                st.update(hist=ring, gram=gram, hist_pos=pos, hist_count=s)
        return state

    group = dict(history=s, update_proj_gap=100)  # no refresh after step 1: the histories are full at step 9
    expected, _ = shared_shape_run(steps=12, **group)
    resumed, opt = shared_shape_run(steps=12, reload_at=9, tmp_path=tmp_path, edit=to_ring, **group)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed))
    assert not any("hist_pos" in st for st in opt.state.values())


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(20, 16), nn.Flatten(), nn.Linear(16 * 4, 32), nn.Tanh(), nn.Linear(32, 20))


def make_opt(model, **kw):
    groups = build_param_groups(model, rank=4, targets=(r"^[24]$",), update_proj_gap=3, **kw)
    return NaturalGaLoreAdamW(groups, lr=1e-2, weight_decay=0.01)


def train(model, opt, steps, seed=0, accum=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for _ in range(accum):
            x = torch.randint(0, 20, (8, 4), generator=gen)
            y = torch.randint(0, 20, (8,), generator=gen)
            nn.functional.cross_entropy(model(x), y).div(accum).backward()
        opt.step()  # the layer-wise optimizer updates what it still holds
        opt.zero_grad()


def test_resume_is_bit_exact(tmp_path):
    a = small_model()
    opt_a = make_opt(a)
    train(a, opt_a, 10, seed=0)
    train(a, opt_a, 10, seed=1)
    b = small_model()
    opt_b = make_opt(b)
    train(b, opt_b, 10, seed=0)
    torch.save({"model": b.state_dict(), "opt": opt_b.state_dict()}, tmp_path / "ckpt.pt")
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    c = small_model()
    c.load_state_dict(ck["model"])
    opt_c = make_opt(c)
    opt_c.load_state_dict(ck["opt"])
    train(c, opt_c, 10, seed=1)
    for pa, pc in zip(a.parameters(), c.parameters()):
        assert torch.equal(pa, pc)


def test_stochastic_rounding_to_bfloat16_is_unbiased():
    from tinyagent_ft.optim.lowbit import round_to_bfloat16_
    torch.manual_seed(0)
    for value in (1.0 + 2**-10, -3.0 - 2**-8, 1e-12 * (1 + 2**-9)):  # between two bf16 neighbours
        x = torch.full((200_000,), value)
        rounded = round_to_bfloat16_(x.clone())
        grid = sorted({float(v) for v in rounded.float()})
        assert rounded.dtype == torch.bfloat16 and len(grid) == 2  # only the two neighbours
        assert abs(rounded.double().mean().item() - value) < 0.05 * (grid[1] - grid[0])
        assert x.to(torch.bfloat16).float().unique().numel() == 1  # round-to-nearest always picks one


def test_fused_rounded_update_is_unbiased_split_invariant_and_compiles_to_the_same_bits():
    """``add_rounded_`` (the bf16 weights' update): unbiased, its bits uniform, a tensor updated in pieces with their
    offsets rounds as the whole, and the compiled kernel (here inductor's CPU code, Triton's on CUDA) gives the eager
    result to the bit."""
    from tinyagent_ft.optim import lowbit
    seed = torch.tensor(12345)
    bits = lowbit.rounding_bits(torch.arange(1 << 18), seed, 16).double() / (1 << 16)
    assert abs(bits.mean().item() - 0.5) < 0.005 and abs(bits.var().item() - 1 / 12) < 0.002
    for value, step in ((1.0, 1e-4), (-3.0, 3e-4)):  # steps well below half of bf16's spacing there
        w = torch.full((200_000,), value, dtype=torch.bfloat16)
        lowbit.add_rounded_(w, torch.full((200_000,), step), 1.0, 1.0, seed)
        assert abs(w.double().mean().item() - value - step) < 0.05 * step
    torch.manual_seed(0)
    w, u = torch.randn(5000).to(torch.bfloat16), torch.randn(5000) * 1e-2
    whole, pieces, compiled = w.clone(), w.clone(), w.clone()
    lowbit.add_rounded_(whole, u, -0.3, 0.999, seed)
    for lo, hi in ((0, 1234), (1234, 5000)):
        lowbit.add_rounded_(pieces[lo:hi], u[lo:hi], -0.3, 0.999, seed, lo)
    torch.compile(lowbit.add_rounded_flat, dynamic=True, fullgraph=True)(compiled, u, -0.3, 0.999, seed, 0)
    assert torch.equal(whole, pieces) and torch.equal(whole, compiled)
    assert not torch.equal(whole, w) and (whole.float() - (0.999 * w.float() - 0.3 * u)).abs().max() < 2**-6
    if torch.cuda.is_available():  # Triton's kernel, as the optimizer runs it on CUDA
        on_gpu = w.cuda()
        lowbit.add_rounded_(on_gpu, u.cuda(), -0.3, 0.999, seed.cuda())
        assert torch.equal(on_gpu.cpu(), whole)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 products with fp32 output are CUDA's (cuBLAS)")
def test_bf16_gradients_are_projected_with_fp32_sums_on_cuda():
    """On CUDA a bf16 gradient enters the projection without an fp32 copy; its products are still summed in fp32: the
    result matches the float64 projection to fp32's precision, far closer than bf16 products would."""
    from tinyagent_ft.optim import projector
    torch.manual_seed(0)
    for m, n in ((512, 256), (256, 512)):  # both orders of the two products
        G = torch.randn(m, n, device="cuda").to(torch.bfloat16)
        P = torch.linalg.qr(torch.randn(m, 32, device="cuda")).Q.to(torch.bfloat16)
        Q = torch.linalg.qr(torch.randn(n, 32, device="cuda")).Q.T.contiguous().to(torch.bfloat16)
        exact = projector.project(G.double(), P.double(), Q.double())
        for got in (projector.project_fp32(G, P, Q), projector.project_stacked([G, G], torch.stack([P, P]),
                                                                               torch.stack([Q, Q]))[1]):
            assert got.dtype == torch.float32
            assert ((got.double() - exact).norm() / exact.norm()) < 1e-5
        assert ((projector.project(G, P, Q).double() - exact).norm() / exact.norm()) > 1e-4  # bf16 products


def test_compiled_rounded_back_projection_matches_eager():
    """``add_projected_rounded_`` (one compiled call on CUDA) computes what the eager operations compute: the bf16
    weight's rounded update by P R Q with the bits ``add_rounded_many`` would draw."""
    from tinyagent_ft.optim import lowbit, projector
    torch.manual_seed(0)
    G, W = torch.randn(48, 40).to(torch.bfloat16), torch.randn(48, 40).to(torch.bfloat16)
    P, Q = (torch.linalg.qr(torch.randn(48, 8)).Q.to(torch.bfloat16),
            torch.linalg.qr(torch.randn(40, 8)).Q.T.contiguous().to(torch.bfloat16))
    R = projector.project_fp32(G, P, Q)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        fused, eager = W.to(device, copy=True), W.clone()
        projector.add_projected_rounded_(fused, R.to(device), P.to(device), Q.to(device), -0.3, 0.99,
                                         torch.Generator(device).manual_seed(1))
        lowbit.add_rounded_many([eager], [projector.project_back(R, P, Q)], -0.3, 0.99, torch.Generator().manual_seed(1))
        if device == "cpu":
            assert torch.equal(fused, eager) and not torch.equal(fused, W)
            inductor, seed = W.clone(), torch.randint(0, 1 << 32, (), generator=torch.Generator().manual_seed(1))
            compiled_update = torch.compile(projector._add_projected_rounded, dynamic=True, fullgraph=True)
            compiled_update(inductor.view(-1), R, P, Q, -0.3, 0.99, seed)
            assert torch.equal(inductor, eager)
        else:  # another generator stream and GEMM: the same update, within one bf16 step of each value
            assert ((fused.cpu().float() - eager.float()).abs() <= eager.float().abs() * 2**-7).all()


def test_float8_blocks_round_trip_within_e4m3_precision_and_unbiased():
    from tinyagent_ft.optim.lowbit import BLOCK, FP8, decode_float8, encode_float8_, float8_nbytes

    def round_trip(x):
        blocks = x.view(-1, BLOCK)
        codes, scales = torch.empty(blocks.shape, dtype=FP8), torch.empty(len(blocks))
        encode_float8_(blocks, codes, scales, torch.tensor(2024))
        assert float8_nbytes(x.numel()) == codes.numel() + 4 * scales.numel()
        return decode_float8(codes, scales).view(x.shape), scales

    torch.manual_seed(0)
    x = torch.randn(3, 1024) * torch.logspace(-3, 3, 1024)  # six decades: blocks of very different scales
    back, scales = round_trip(x)
    block_max = (scales * 448).repeat_interleave(BLOCK).view(x.shape)
    normal = x.abs() > 1e-3 * block_max  # e4m3 keeps 3 mantissa bits down to 2**-6 / 448 of the block maximum
    assert ((back - x).abs() / x.abs())[normal].max() <= 2**-3
    value = torch.full((100_096,), 1.0 + 2**-6)
    value[::BLOCK] = 1.75  # each block's maximum: scale 1/256, so the value sits between codes 256 and 288
    decoded, _ = round_trip(value)
    assert set(decoded[1:BLOCK].tolist()) <= {1.0, 1.125}  # stochastic rounding to a neighbour,
    assert abs(decoded[value != 1.75].double().mean().item() - (1.0 + 2**-6)) < 2e-3  # unbiased on average


def test_float8_adam_step_is_adams_and_its_compiled_kernel_matches_eager():
    """``adam_float8_``: each step is fp32 Adam's from the decoded moments, whose new values are stored within e4m3's
    precision (the second moment as its root), and the compiled kernel (inductor's CPU code here, Triton's on CUDA)
    gives the eager result to float rounding."""
    from tinyagent_ft.optim import lowbit
    torch.manual_seed(0)
    betas, eps, blocks = (0.9, 0.999), 1e-8, 6
    state = lowbit.new_moments(blocks * lowbit.BLOCK, "float8", "cpu")
    moments = [(state[k], state[k + "_scale"]) for k in lowbit.MOMENTS]
    for step in (1, 2, 3):
        grad = (torch.randn(blocks, lowbit.BLOCK) * torch.logspace(-4, 0, lowbit.BLOCK)).to(torch.bfloat16)
        before = {k: t.clone() for k, t in state.items()}
        direction = lowbit.adam_float8_(grad, *moments, betas, step, eps, torch.Generator().manual_seed(step))
        grad = grad.float()  # as the step reads it
        m = lowbit.decode_float8(before["exp_avg"], before["exp_avg_scale"]).lerp(grad, 1 - betas[0])
        root = (lowbit.decode_float8(before["exp_avg_sq"], before["exp_avg_sq_scale"]).square() * betas[1]
                + grad.square() * (1 - betas[1])).sqrt()
        torch.testing.assert_close(direction, m / (root / (1 - betas[1] ** step) ** 0.5 + eps), rtol=1e-5, atol=0)
        for stored, exact in ((moments[0], m), (moments[1], root)):
            normal = exact.abs() >= 2**-6 * exact.abs().amax(1, keepdim=True)
            assert ((lowbit.decode_float8(*stored) - exact).abs() / exact.abs())[normal].max() <= 2**-3
    runs = []
    devices = [("cpu", lowbit._adam_float8), ("cpu", torch.compile(lowbit._adam_float8, dynamic=True, fullgraph=True))]
    if torch.cuda.is_available():  # Triton's kernel, as the optimizer runs it on CUDA
        devices[1] = ("cuda", lowbit.fused(lowbit._adam_float8, torch.device("cuda")))
    for device, fn in devices:
        st = {k: t.to(device, copy=True) for k, t in before.items()}
        out = fn(grad.view(-1).to(device), *(st[k].view(-1) for k in ("exp_avg", "exp_avg_scale", "exp_avg_sq",
                 "exp_avg_sq_scale")), *betas, (1 - betas[1] ** 3) ** -0.5, eps, torch.tensor(5, device=device),
                 torch.tensor(7, device=device))
        runs.append((out.cpu(), {k: (t.view(torch.uint8) if t.dtype == lowbit.FP8 else t).cpu() for k, t in st.items()}))
    (eager, st_e), (compiled, st_c) = runs  # the compiler may divide by a reciprocal: a few ulps apart
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=0)
    for key in lowbit.MOMENTS:
        torch.testing.assert_close(st_c[key + "_scale"], st_e[key + "_scale"], rtol=1e-6, atol=0)
        assert (st_c[key] != st_e[key]).float().mean() < 0.01
    weights = []  # and with a bf16 weight updated in the same pass: the direction's update, one rounding of each
    for fn in (lowbit._adam_float8_into, torch.compile(lowbit._adam_float8_into, dynamic=True, fullgraph=True)):
        st, w = {k: t.clone() for k, t in before.items()}, torch.ones(grad.numel() - 100, dtype=torch.bfloat16)
        fn(w, grad.view(-1), *(st[k].view(-1) for k in ("exp_avg", "exp_avg_scale", "exp_avg_sq", "exp_avg_sq_scale")),
           *betas, (1 - betas[1] ** 3) ** -0.5, eps, torch.tensor(5), torch.tensor(7), -1e-3, 0.999, torch.tensor(9))
        weights.append(w.float())
    expected = 0.999 - 1e-3 * eager[:len(weights[0])]
    assert all(((w - expected).abs() <= 2**-8 * 1.01).all() for w in weights)  # one bf16 step below 1.0 at most
    assert (weights[0] != weights[1]).float().mean() < 0.01


@pytest.mark.parametrize("dtype", ["bfloat16", "float8"])
def test_low_precision_moments_shrink_the_state_and_train_like_float32(tmp_path, dtype):
    from tinyagent_ft.optim import state_bytes
    runs = {}
    for kind in ("float32", dtype):
        model = small_model()
        opt = NaturalGaLoreAdamW(build_param_groups(model, rank=4, targets=(r"^[24]$",), update_proj_gap=3),
                                 lr=1e-2, state_dtype=kind)
        train(model, opt, 40, seed=0)
        x, y = torch.randint(0, 20, (256, 4), generator=torch.Generator().manual_seed(9)), torch.arange(256) % 20
        runs[kind] = (float(nn.functional.cross_entropy(model(x), y)), opt)
    (loss32, opt32), (loss_low, opt_low) = runs["float32"], runs[dtype]
    stored = {"bfloat16": torch.bfloat16, "float8": torch.float8_e4m3fn}[dtype]
    moments = lambda o: [v for st in o.state.values() for k, v in st.items() if k in ("exp_avg", "exp_avg_sq")]  # noqa: E731
    assert all(m.dtype == stored for m in moments(opt_low))
    assert state_bytes(opt_low) < state_bytes(opt32) and abs(loss_low - loss32) < 0.03 * loss32
    torch.save(opt_low.state_dict(), tmp_path / "opt.pt")  # a checkpoint keeps the moments as stored
    model = small_model()
    resumed = NaturalGaLoreAdamW(build_param_groups(model, rank=4, targets=(r"^[24]$",), update_proj_gap=3),
                                 lr=1e-2, state_dtype=dtype)
    resumed.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    assert all(m.dtype == stored for m in moments(resumed))
    train(model, resumed, 2, seed=3)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_invalid_state_dtype():
    with pytest.raises(ValueError, match="state_dtype"):
        NaturalGaLoreAdamW(small_model().parameters(), state_dtype="float16")


def test_a_step_cut_into_pieces_equals_the_whole(monkeypatch):
    from tinyagent_ft.optim import natural_galore
    a, b = small_model(), small_model()
    opt_a, opt_b = make_opt(a), make_opt(b)
    train(a, opt_a, 5)
    monkeypatch.setattr(natural_galore, "CHUNK", 256)  # the embedding (320 values) is cut in two
    train(b, opt_b, 5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_bfloat16_weights_keep_small_updates_by_stochastic_rounding():
    torch.manual_seed(0)
    w32 = nn.Parameter(torch.ones(4096))
    w16 = nn.Parameter(torch.ones(4096, dtype=torch.bfloat16))
    lr = 1e-4  # Adam's step is ~lr: 1/80 of bf16's spacing at 1.0 (2**-7), lost by round-to-nearest
    opts = [NaturalGaLoreAdamW([w], lr=lr) for w in (w32, w16)]
    for _ in range(200):
        for w, opt in zip((w32, w16), opts):
            w.grad = torch.ones_like(w)
            opt.step()
    assert abs(w32.mean().item() - (1 - 200 * lr)) < 1e-5
    assert abs(w16.double().mean().item() - w32.mean().item()) < 2e-4  # moved on average as the fp32 weight
    assert w16.dtype == torch.bfloat16 and (torch.ones(1, dtype=torch.bfloat16) - lr).item() == 1.0  # nearest: stuck


@pytest.mark.parametrize("accum,queue", [(1, None), (3, None), (1, 1)])
def test_layerwise_matches_normal_mode(accum, queue, monkeypatch):
    """Whether the queue is updated once after backward or after every weight (queue=1)."""
    from tinyagent_ft.optim import layerwise
    if queue:
        monkeypatch.setattr(layerwise, "QUEUE_VALUES", queue)
    a, b = small_model(), small_model()
    opt_a = make_opt(a)
    train(a, opt_a, 7, accum=accum)
    lw = LayerwiseOptimizer(make_opt(b), grad_accumulation_steps=accum, max_grad_norm=None)
    train(b, lw, 7, accum=accum)
    assert all(p.grad is None for p in b.parameters())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5), (pa - pb).abs().max()
    assert lw.grad_norm() > 0


@pytest.mark.parametrize("queue", [None, 150])  # all at once; or 2-3 of the five 32 x 32 weights per batch
def test_layerwise_steps_weights_of_one_shape_stacked(queue, monkeypatch):
    """Layer-wise updates of weights of one shape go through the stacked state: the whole shape at once, or the rows
    that backward has reached by each batch (consecutive rows, latest layers first), to the bit as weight by weight.
    (Not compared with normal mode here: Adam magnifies the last bits of the noise-level gradient entries of so small
    a model, which a projection one weight at a time and a batched one round differently.)"""
    from tinyagent_ft.optim import layerwise
    if queue:
        monkeypatch.setattr(layerwise, "QUEUE_VALUES", queue)

    def run(stacked: bool):
        torch.manual_seed(0)
        hidden = [m for _ in range(5) for m in (nn.Tanh(), nn.Linear(32, 32))]
        model = nn.Sequential(nn.Embedding(20, 16), nn.Flatten(), nn.Linear(64, 32), *hidden, nn.Tanh(), nn.Linear(32, 20))
        opt = NaturalGaLoreAdamW(build_param_groups(model, rank=4, targets=(r"^\d+$",), update_proj_gap=3), lr=1e-2)
        if not stacked:
            opt._stacked_step = lambda gi, g, params, grads, projected: list(range(len(params)))
        batches = []
        update = opt._update_slabs
        opt._update_slabs = lambda group, slabs, Rs: (batches.extend(len(s.params) for s in slabs),
                                                      update(group, slabs, Rs))
        train(model, LayerwiseOptimizer(opt), 7)
        return list(model.parameters()), batches

    (stacked, batches), (per_weight, none) = run(True), run(False)
    assert set(batches) == ({5} if queue is None else {2, 3}) and not none
    assert all(torch.equal(a, b) for a, b in zip(stacked, per_weight))


def test_layerwise_clips_per_parameter():
    b = small_model()
    lw = LayerwiseOptimizer(make_opt(b), max_grad_norm=1e-4)
    ref = small_model()
    train(b, lw, 1)
    moved = max((pb - pr).abs().max() for pb, pr in zip(b.parameters(), ref.parameters()))
    assert moved > 0 and lw.grad_norm() > 1e-4


def test_param_groups_helper():
    model = small_model()
    groups = build_param_groups(model, rank=4, targets=(r"^[24]$", r"nothing"))
    assert len(groups[0]["params"]) == 2 and all(p.dim() == 2 for p in groups[0]["params"])
    assert len(groups[1]["params"]) == 3  # embedding + two biases
    with pytest.raises(ValueError, match=r"matched no nn.Linear module"):
        build_param_groups(model, rank=4, targets=(r"q_proj",))
    with pytest.raises(TypeError, match="unknown options"):
        NaturalGaLoreAdamW(model.parameters(), rnak=3)
    with pytest.raises(ValueError, match="side must be one of"):
        NaturalGaLoreAdamW([{"params": [model[2].weight], "rank": 2, "side": "diagonal"}])


def run_ddp_worker(out: Path, *args: str) -> tuple[dict, dict]:
    """Both ranks' snapshots of tests/ddp_optim_worker.py run on 2 gloo processes."""
    script, env = Path(__file__).parent / "ddp_optim_worker.py", {**os.environ, "OMP_NUM_THREADS": "1"}
    out.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(out), *args], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return tuple(torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))


@pytest.mark.parametrize("method,state_dtype", [("randomized", "float32"), ("power", "float32"), ("power", "float8")])
def test_ddp_ranks_agree_through_refreshes_and_resume(tmp_path, method, state_dtype):
    """Two gloo ranks on different data: after every refresh both hold the same projectors and weights,
    and a run stopped at a checkpoint and resumed into fresh objects ends where the straight run does
    (with float8 moments too: stochastic rounding draws the same bits on both ranks and after resume)."""
    r0, r1 = run_ddp_worker(tmp_path, method, state_dtype)
    for run in ("straight", "resumed"):
        for part in ("weights", "projectors"):
            a, b = r0[run][part], r1[run][part]
            assert a.keys() == b.keys() and a
            assert all(torch.equal(a[k], b[k]) for k in a), (run, part)
    for part in ("weights", "projectors"):
        a, b = r0["straight"][part], r0["resumed"][part]
        assert all(torch.equal(a[k], b[k]) for k in a), part
    if state_dtype == "float32":  # the three (48, 48) weights step stacked, also after the resume
        assert r0["straight"]["stacked"] == r0["resumed"]["stacked"] == 3
    assert "layer-wise mode steps inside backward" in (tmp_path / "layerwise_error.txt").read_text()


@pytest.mark.parametrize("state_dtype", ["float32", "float8"])
def test_sharded_step_trains_as_the_replicated_one_and_resumes(tmp_path, state_dtype):
    """Each rank steps its own weights and broadcasts them: both ranks end with the same weights, a run resumed
    from the checkpoint rank 0 wrote (the gathered state) ends where the straight run does, and each weight's
    projector lives on one rank only. With fp32 moments the weights equal the replicated run's."""
    r0, r1 = run_ddp_worker(tmp_path / "sharded", "power", state_dtype, "sharded")
    for run in ("straight", "resumed"):
        a, b = r0[run]["weights"], r1[run]["weights"]
        assert all(torch.equal(a[k], b[k]) for k in a), run
    for r in (r0, r1):
        for part in ("weights", "projectors"):
            a, b = r["straight"][part], r["resumed"][part]
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    owned = [{k.split(".")[0] for k in r["straight"]["projectors"]} for r in (r0, r1)]
    assert not owned[0] & owned[1] and len(owned[0] | owned[1]) == 5  # the 5 projected weights, each on one rank
    if state_dtype == "float32":  # ranks own whole shapes: the three (48, 48) weights on one, stacked, also after the resume
        assert sorted(r["resumed"]["stacked"] for r in (r0, r1)) == [0, 3]
    if state_dtype == "float32":
        replicated, _ = run_ddp_worker(tmp_path / "replicated", "power", state_dtype, "replicated")
        a, b = r0["straight"]["weights"], replicated["straight"]["weights"]
        assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_staggered_refreshes_spread_over_the_gap():
    torch.manual_seed(6)
    ws = [nn.Parameter(torch.randn(10, 10)) for _ in range(4)]
    opt = NaturalGaLoreAdamW([{"params": ws, "rank": 2, "update_proj_gap": 4, "stagger_refresh": True}], lr=1e-3)
    refreshed = {i: [] for i in range(4)}
    for step in range(1, 11):
        before = [None if opt.state[w].get("P") is None else opt.state[w]["P"].clone() for w in ws]
        for w in ws:
            w.grad = torch.randn(10, 10)
        opt.step()
        for i, (w, b) in enumerate(zip(ws, before)):
            if b is None or not torch.equal(b, opt.state[w]["P"]):
                refreshed[i].append(step)
    assert refreshed == {0: [1, 5, 9], 1: [1, 2, 6, 10], 2: [1, 3, 7], 3: [1, 4, 8]}


@pytest.mark.parametrize("side", ["two_sided", "std"])
def test_power_refresh_converges_to_the_dominant_subspace(side):
    """Warm-started subspace iterations from a projector of an unrelated gradient reach the SVD subspace of
    a gradient that keeps its dominant directions."""
    from tinyagent_ft.optim.projector import compute_projectors
    torch.manual_seed(7)
    U, _ = torch.linalg.qr(torch.randn(40, 40))
    V, _ = torch.linalg.qr(torch.randn(24, 24))
    G = U[:, :24] @ torch.diag(torch.cat([torch.tensor([1.0, 0.8, 0.6, 0.5]), torch.linspace(0.1, 0.01, 20)])) @ V.T
    P, Q = compute_projectors(torch.randn(40, 24), 4, side, "power", None, torch.float32)
    for _ in range(6):
        P, Q = compute_projectors(G, 4, side, "power", (P, Q), torch.float32)
    Pe, Qe = compute_projectors(G, 4, side, "svd", None, torch.float32)
    for a, b in ((P, Pe), (Q, Qe)):
        if b is not None:
            span = (lambda M: M @ M.T) if a.shape[0] > a.shape[1] else (lambda M: M.T @ M)
            assert torch.allclose(span(a), span(b), atol=1e-4)


def test_buckets_keep_order_and_bound():
    """The sharded step's broadcasts and the stacked step's merged histories are grouped so."""
    from tinyagent_ft.optim.projector import buckets as group
    sizes = [4, 5, 3, 12, 1, 9]
    buckets = group(sizes, 10)
    assert [i for b in buckets for i in b] == list(range(len(sizes)))  # each weight once, in order
    assert [[sizes[i] for i in b] for b in buckets] == [[4, 5], [3], [12], [1, 9]]  # a larger weight goes alone


def test_sharded_state_gathers_as_raw_bytes_exactly(tmp_path):
    """The gathered state (the structure pickled, the tensors sent as raw bytes) equals the local optimizer's,
    tensor by tensor and dtype by dtype: float8 codes, fp32 scales and projectors, the rounding generator."""
    import torch.distributed as dist

    from tinyagent_ft.optim import ShardedNaturalGaLore
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(7, 9), nn.Linear(9, 5))
        opt = ShardedNaturalGaLore(build_param_groups(model, rank=2, targets=(r"^0$",)), lr=1e-2, state_dtype="float8")
        for _ in range(2):
            model(torch.randn(3, 7)).pow(2).mean().backward()
            opt.step()
        opt.consolidate_state_dict(to=0)
        gathered, local = opt.state_dict(), opt.optim.state_dict()
        # the gathered state is indexed as the wrapper's groups order the weights, the local one as its share does
        everywhere = {id(p): i for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
        index = {j: everywhere[id(p)] for j, p in enumerate(p for g in opt.optim.param_groups for p in g["params"])}
    finally:
        dist.destroy_process_group()
    assert len(gathered["state"]) == len(local["state"]) == 4
    for j, st in local["state"].items():
        for k, v in st.items():
            g = gathered["state"][index[j]][k]
            if torch.is_tensor(v):
                assert g.dtype == v.dtype and torch.equal(g.view(torch.uint8), v.view(torch.uint8)), (j, k)
            else:
                assert g == v, (j, k)
    assert torch.equal(gathered["rounding_generators"][0], local["rounding_generator"])


@pytest.mark.parametrize("kind", ["float32", "bfloat16"])
def test_moments_of_many_pieces_are_read_and_written_in_one_batch(kind):
    """Pieces of several tensors (whole ones, a tail with a partial block, one not a whole number of blocks) come back
    as written, within the format's precision, and what lies outside the pieces is left as it was."""
    from tinyagent_ft.optim.lowbit import new_moments, read_moments, write_moments
    torch.manual_seed(0)
    sizes, ranges = [300, 512, 1000], [(0, 300), (0, 512), (256, 1000)]
    states = [{} for _ in sizes]
    for st, n in zip(states, sizes):
        st.update(new_moments(n, kind, "cpu"))
    head = read_moments([states[2]], "exp_avg_sq", kind, [(0, 256)])
    head[0][0].copy_(torch.rand(256))
    write_moments([states[2]], "exp_avg_sq", kind, [(0, 256)], head[1], None)
    before = read_moments([states[2]], "exp_avg_sq", kind, [(0, 256)])[0][0].clone()
    for key in ("exp_avg", "exp_avg_sq"):
        values, buffer = read_moments(states, key, kind, ranges)
        assert [v.numel() for v in values] == [300, 512, 744] and all(float(v.abs().sum()) == 0 for v in values[:2])
        wanted = [torch.rand(v.numel()) + 0.5 for v in values]
        torch._foreach_copy_(values, wanted)
        write_moments(states, key, kind, ranges, buffer, None)
        back, _ = read_moments(states, key, kind, ranges)
        for b, w in zip(back, wanted):
            assert ((b - w).abs() / w).max() <= 2**-7
    assert torch.equal(read_moments([states[2]], "exp_avg_sq", kind, [(0, 256)])[0][0], before)


@pytest.mark.parametrize("k", [512, 300])  # whole blocks, and rows that end in a partial block
def test_stacked_moments_round_trip(k):
    """A slab's bfloat16 moments (B rows of k values) come back as written within bf16's precision, and each row
    reads as that weight's own moments read by the per-weight path."""
    from tinyagent_ft.optim.lowbit import new_moments, read_moments, read_stacked, write_stacked
    torch.manual_seed(0)
    tensors = new_moments(k, "bfloat16", "cpu", batch=(3,))
    for key in ("exp_avg", "exp_avg_sq"):
        values, buffer = read_stacked(tensors, key, "bfloat16")
        assert values.shape == (3, k) and float(values.abs().sum()) == 0
        wanted = torch.rand(3, k) + 0.5
        values.copy_(wanted)
        write_stacked(tensors, key, "bfloat16", buffer, None)
        back, _ = read_stacked(tensors, key, "bfloat16")
        assert ((back - wanted).abs() / wanted).max() <= 2**-7
        rows = [{name: t[j] for name, t in tensors.items()} for j in range(3)]
        per_weight, _ = read_moments(rows, key, "bfloat16", [(0, k)] * 3)
        assert all(torch.equal(a, b) for a, b in zip(per_weight, back))


@pytest.mark.parametrize("k", [512, 300])  # a slab's rows of whole blocks, and rows that end in a partial block
def test_float8_adam_of_pieces_and_of_a_slab_match_piece_by_piece(monkeypatch, k):
    """The float8 Adam step of a batch of pieces (whole tensors, a tail with a partial block, one starting past the
    first block) and of a slab's rows gives, with the rounding's bits fixed, what stepping each piece alone gives;
    what lies outside the pieces is left as it was."""
    from tinyagent_ft.optim import lowbit
    monkeypatch.setattr(lowbit, "rounding_bits", lambda index, seed, bits: torch.full_like(index, 1 << (bits - 1)))
    betas, eps = (0.9, 0.999), 1e-8
    as_bytes = lambda st: {key: t.view(torch.uint8) if t.dtype == lowbit.FP8 else t for key, t in st.items()}  # noqa: E731

    def moments(n: int, batch: tuple = ()) -> dict:  # as earlier steps left them: every scale
        gen = torch.Generator().manual_seed(n)
        st = lowbit.new_moments(n, "float8", "cpu", batch)
        for key in lowbit.MOMENTS:
            st[key].copy_((torch.rand(st[key].shape, generator=gen) * 400).to(lowbit.FP8))
            st[key + "_scale"].copy_(torch.rand(st[key + "_scale"].shape, generator=gen) * 1e-3)
        return st

    torch.manual_seed(0)
    sizes, ranges = [300, 512, 1000], [(0, 300), (0, 512), (256, 1000)]
    grads = [torch.randn(hi - lo).to(torch.bfloat16) for lo, hi in ranges]
    batch, alone = [moments(n) for n in sizes], [moments(n) for n in sizes]
    out = lowbit.adam_float8_pieces(batch, grads, ranges, betas, 2, eps, None)
    expected = [lowbit.adam_float8_pieces([st], [g], [r], betas, 2, eps, None)[0]
                for st, g, r in zip(alone, grads, ranges)]
    assert [d.numel() for d in out] == [300, 512, 744] and all(torch.equal(a, b) for a, b in zip(out, expected))
    assert all(torch.equal(a[key], b[key]) for x, y in zip(batch, alone) for a, b in [(as_bytes(x), as_bytes(y))]
               for key in a)
    weights = [torch.randn(n).to(torch.bfloat16) for n in sizes]  # and with the weights updated in the same pass
    fused, separate = [w.clone() for w in weights], [w.clone() for w in weights]
    assert lowbit.adam_float8_pieces([moments(n) for n in sizes], grads, ranges, betas, 2, eps, None,
                                     [w[lo:hi] for w, (lo, hi) in zip(fused, ranges)], -0.01, 0.999) is None
    lowbit.add_rounded_many([w[lo:hi] for w, (lo, hi) in zip(separate, ranges)], expected, -0.01, 0.999, None)
    assert all(torch.equal(a, b) for a, b in zip(fused, separate)) and not torch.equal(fused[2], weights[2])
    assert torch.equal(fused[2][:256], weights[2][:256])
    alone_fused = weights[0].clone()  # a piece alone: in place, no gathering
    lowbit.adam_float8_pieces([moments(300)], grads[:1], ranges[:1], betas, 2, eps, None, [alone_fused], -0.01, 0.999)
    assert torch.equal(alone_fused, separate[0])
    first_block = as_bytes(moments(1000))
    assert all(torch.equal(as_bytes(batch[2])[key][0], first_block[key][0]) for key in first_block)  # before lo = 256
    assert not torch.equal(as_bytes(batch[2])["exp_avg"][1], first_block["exp_avg"][1])
    slab, R = moments(k, (3,)), torch.randn(3, k)
    rows = [{name: t[j].clone() for name, t in slab.items()} for j in range(3)]
    stacked = lowbit.adam_float8_stacked(slab, R, betas, 2, eps, None)
    by_row = torch.stack([lowbit.adam_float8_pieces([st], [R[j]], [(0, k)], betas, 2, eps, None)[0]
                          for j, st in enumerate(rows)])
    assert stacked.shape == (3, k) and torch.equal(stacked, by_row)
    assert all(torch.equal(as_bytes(slab)[key][j], as_bytes(rows[j])[key]) for j in range(3) for key in slab)


def run_optim_benchmark(*args: str) -> subprocess.CompletedProcess:
    """``python benchmarks/optim/ARGS...`` as a user runs it, this checkout importable."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, *args], cwd=root / "benchmarks" / "optim", capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)


def test_interleaved_benchmark_names_a_checkout_without_the_optimizer_in_one_line(tmp_path):
    """``benchmarks/optim/interleaved.py --before DIR`` where DIR holds no ``tinyagent_ft/optim``: one line, exit 2,
    before any model is built."""
    run = run_optim_benchmark("interleaved.py", "--before", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == f"error: --before {tmp_path}: no tinyagent_ft/optim/__init__.py there"


@pytest.mark.skipif(torch.cuda.is_available(), reason="they time CUDA steps there")
@pytest.mark.parametrize("script,what", [("host_phases.py", "a CUDA step"), ("call_costs.py", "CUDA calls")])
def test_cuda_timing_benchmarks_say_in_one_line_that_no_gpu_is_visible(script, what):
    """The host-time benchmarks need a GPU: without one, one line and exit 1, before any model is built."""
    run = run_optim_benchmark(script)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {script} times {what}, and no GPU is visible"]
