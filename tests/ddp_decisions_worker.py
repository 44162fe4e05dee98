"""Run under torchrun: rank 1's validation scores differ from rank 0's (worse, then better, in turn).

Before rank 0 decided for all, rank 1 disagreed about "improved", skipped the
collective save, and rank 0 waited alone until the timeout.  Writes
``<out>/rank<r>.json`` with the steps reached and the best score each rank holds.
"""

import gc
import json
import sys

import numpy as np
import torch
import torch.distributed as dist

from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.data.splits import TBPTTBatches
from rnnlm.core.device import dist_env
from rnnlm.evaluation.metrics import EvalResult
from rnnlm.model.network import RNNLM
from rnnlm.training.trainer import Trainer

out = sys.argv[1]
rank, world, _ = dist_env()
dist.init_process_group("gloo")
torch.manual_seed(0)
torch.set_num_threads(1)
ids = (np.arange(3000) * 7 % 23).astype(np.uint8)
cfg = TrainConfig(batch_size=2, bptt=8, max_time_s=None, max_steps=12, warmup_steps=1, eval_every_s=1e-9,
                  precision="fp32", device="cpu", eval_streams=2)
model = RNNLM(ModelConfig(vocab_size=23, embed_size=8, hidden_size=8, dropout=0.0))
trainer = Trainer(model, cfg, TBPTTBatches(ids, 2, 8, rank, world), ids[:200], torch.device("cpu"), out,
                  {"config": {"train": cfg.to_dict()}}, rank=rank, world_size=world)
honest, calls = trainer.validate, [0]


def skewed(probe=False):
    result = honest(probe)
    if rank == 1:
        calls[0] += 1
        return EvalResult(result.nats * (0.5 if calls[0] % 2 else 2.0), result.tokens, result.chars)
    return result


trainer.validate = skewed
summary = trainer.run()
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump({"steps": summary["steps"], "best": trainer.state.best_val_bpc}, f)
del trainer, skewed, honest  # the DDP reducer goes before the process group, as in rnnlm.train
gc.collect()
dist.barrier()
dist.destroy_process_group()
