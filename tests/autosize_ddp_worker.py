"""Run under torchrun: the ranks' probes disagree about the throughput; both must take rank 0's size.

Writes ``<out>/rank<r>.json``: the size this rank would choose alone, and the one it got.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from rnnlm.training import autosize
from rnnlm.training.autosize import Size, size_for_budget
from rnnlm.core.config import ModelConfig, TrainConfig
from rnnlm.data.splits import TBPTTBatches
from rnnlm.core.device import dist_env

sys.path.insert(0, str(Path(__file__).parent))
from test_autosize import BIG, SMALL, TINY_GRID, synthetic_table  # noqa: E402

out = Path(sys.argv[1])
rank, world, _ = dist_env()
dist.init_process_group("gloo")
autosize.GRID = TINY_GRID
big_rate = 1e6 if rank == 0 else 1e3
autosize.probe = lambda *args, **kwargs: {SMALL: 1e6, BIG: big_rate}
model = ModelConfig(vocab_size=40, embed_size=8)
config = TrainConfig(max_time_s=30.0, batch_size=4, bptt=8)
batches = TBPTTBatches((np.arange(5000) % 40).astype(np.uint16), 4, 8, rank, world)
cpu = torch.device("cpu")
alone = size_for_budget(model, config, batches, cpu, None, None, 1, time.perf_counter, synthetic_table())
agreed = size_for_budget(model, config, batches, cpu, None, None, world, time.perf_counter, synthetic_table())
(out / f"rank{rank}.json").write_text(json.dumps({"alone": str(alone.size), "agreed": str(agreed.size)}))
dist.barrier()
dist.destroy_process_group()
assert isinstance(alone.size, Size)
