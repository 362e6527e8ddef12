"""Worker for the 2-process gloo DDP test: train with NaturalGaLoreAdamW through several projector
refreshes, on different data per rank, and save the final weights of each rank."""
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from tinyagent_ft.optim import LayerwiseOptimizer, NaturalGaLoreAdamW, build_param_groups

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(24, 48), nn.Tanh(), nn.Linear(48, 24))
ddp = DDP(model)
opt = NaturalGaLoreAdamW(build_param_groups(model, rank=4, targets=(r"^[02]$",), update_proj_gap=4,
                                            svd_method="randomized"), lr=1e-2)
gen = torch.Generator().manual_seed(100 + rank)
for _ in range(13):
    x = torch.randn(16, 24, generator=gen)
    ddp(x).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
torch.save({k: v.detach() for k, v in model.state_dict().items()}, f"{sys.argv[1]}/rank{rank}.pt")
try:
    LayerwiseOptimizer(opt)
except NotImplementedError as exc:
    if rank == 0:
        open(f"{sys.argv[1]}/layerwise_error.txt", "w").write(str(exc))
dist.barrier()  # no rank tears gloo down while the other still works
dist.destroy_process_group()
