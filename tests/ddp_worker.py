"""Run under torchrun (or plainly, as the single-process reference): one training step, then report.

Writes ``<out>/rank<r>.json`` with the global mean loss of the step and the
flattened weights after it, so the test can compare ranks with each other and
with one process over the same global batch.
"""

import json
import sys

import numpy as np
import torch
import torch.distributed as dist

from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.data.splits import TBPTTBatches
from rnnlm.core.device import dist_env
from rnnlm.model.network import RNNLM
from rnnlm.training.trainer import Trainer

out, global_batch = sys.argv[1], int(sys.argv[2])
rank, world, _ = dist_env()
if world > 1:
    dist.init_process_group("gloo")
torch.manual_seed(rank)  # different per rank on purpose: DDP must broadcast rank 0's weights
torch.set_num_threads(1)
ids = (np.arange(3000) * 7 % 23).astype(np.uint8)
cfg = TrainConfig(batch_size=global_batch // world, bptt=8, max_time_s=None, max_steps=1, warmup_steps=1,
                  precision="fp32", device="cpu")
if rank == 0:
    torch.manual_seed(0)
model = RNNLM(ModelConfig(vocab_size=23, embed_size=8, hidden_size=16, dropout=0.0))
batches = TBPTTBatches(ids, cfg.batch_size, cfg.bptt, rank, world)
trainer = Trainer(model, cfg, batches, ids[:100], torch.device("cpu"), out, {}, rank=rank, world_size=world)
loss = trainer.train_step().detach()
if world > 1:
    dist.all_reduce(loss)
    loss /= world
weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump({"loss": float(loss), "weights": weights.tolist()}, f)
if world > 1:
    dist.barrier()  # leave together: a rank tearing gloo down while the other still talks aborts (SIGABRT)
    dist.destroy_process_group()
