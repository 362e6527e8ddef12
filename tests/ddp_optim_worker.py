"""Worker for the 2-process DDP check (gloo on CPU in the tests, NCCL on GPUs through
benchmarks/train/ddp.sh): train with NaturalGaLoreAdamW through several projector refreshes on
different data per rank, once straight through and once stopped at a checkpoint and resumed into fresh
objects; save each rank's weights and projectors of both runs.

    torchrun --nproc_per_node 2 tests/ddp_optim_worker.py OUT_DIR [svd|randomized|power] [float32|bfloat16|float8]
        [replicated|sharded]

The third argument stores the Adam moments in that dtype (stochastic rounding: the ranks must draw the same bits);
the last one has every rank step every weight, or each rank its share (ShardedNaturalGaLore). Refreshes are not
staggered, so that both modes refresh every weight at the same steps.
"""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, ShardedNaturalGaLore, build_param_groups

STEPS, STOP = 13, 6  # refreshes every 4 steps: the resumed run crosses the refreshes at steps 9 and 13

out, method = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "randomized")
state_dtype = sys.argv[3] if len(sys.argv) > 3 else "float32"
sharded = len(sys.argv) > 4 and sys.argv[4] == "sharded"
cuda = torch.cuda.device_count() >= int(os.environ["WORLD_SIZE"])  # NCCL with a GPU per rank; else gloo on CPU
dist.init_process_group("nccl" if cuda else "gloo")
rank = dist.get_rank()
device = torch.device("cuda", rank) if cuda else torch.device("cpu")
if cuda:
    torch.cuda.set_device(device)


def build():
    torch.manual_seed(0)
    # three weights of one shape: their optimizer state is stacked (all three on one rank when sharded: ranks own whole shapes)
    hidden = [m for _ in range(3) for m in (nn.Tanh(), nn.Linear(48, 48))]
    model = nn.Sequential(nn.Linear(24, 48), *hidden, nn.Tanh(), nn.Linear(48, 24)).to(device)
    groups = build_param_groups(model, rank=4, targets=(r"^[02468]$",), update_proj_gap=4, svd_method=method,
                                stagger_refresh=False)
    opt = (ShardedNaturalGaLore if sharded else NaturalGaLoreAdamW)(groups, lr=1e-2, state_dtype=state_dtype)
    return model, DDP(model, device_ids=[rank] if cuda else None), opt


def batches():
    gen = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(16, 24, generator=gen).to(device) for _ in range(STEPS)]


def train(ddp, opt, data) -> None:
    for x in data:
        ddp(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


def snapshot(model, opt) -> dict:
    """Weights, the projectors this rank holds (sharded: those of its own weights only), and how many of its weights
    have their state stacked."""
    local = getattr(opt, "optim", opt)
    projectors = {f"{i}.{k}": v.detach().cpu() for i, p in enumerate(model.parameters())
                  for k, v in local.state[p].items() if k in ("P", "Q") and torch.is_tensor(v)}
    return {"weights": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "projectors": projectors,
            "stacked": sum(len(slab.params) for slab in local._slabs.values())}


data = batches()
model, ddp, opt = build()
train(ddp, opt, data)
straight = snapshot(model, opt)

model, ddp, opt = build()
train(ddp, opt, data[:STOP])
checkpoint = out / "checkpoint.pt"  # as the Trainer saves: rank 0 writes the whole state
if sharded:
    opt.consolidate_state_dict(to=0)
if rank == 0:
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, checkpoint)
dist.barrier()
model, ddp, opt = build()  # a new process would start here
saved = torch.load(checkpoint, weights_only=True, map_location=device)
model.load_state_dict(saved["model"])
opt.load_state_dict(saved["optimizer"])
train(ddp, opt, data[STOP:])
torch.save({"straight": straight, "resumed": snapshot(model, opt)}, out / f"rank{rank}.pt")
try:
    LayerwiseOptimizer(getattr(opt, "optim", opt))
except NotImplementedError as exc:
    if rank == 0:
        (out / "layerwise_error.txt").write_text(str(exc))
dist.barrier()  # no rank tears the process group down while the other still works
dist.destroy_process_group()
os._exit(0)  # everything is saved: skip the interpreter's teardown, where gloo's threads at times abort the process
