"""One training step of `dbl_kit`'s trainer, in one process or in each of `torchrun`'s; rank 0 saves the learning
branches' parameters after the step: the subject of tests/test_distributed.py.

    python tests/ddp_step.py OUT.safetensors PARAMS_JSON                                  # one process, global batch
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_step.py ...  # 2 ranks, half each"""
import json, sys, tempfile

import torch
from safetensors.torch import save_file

from dbl_kit.core import SCENARIOS, resolve_device
from dbl_kit.config import make_config
from dbl_kit.distributed import init_distributed
from dbl_kit.rundir import RunDir
from dbl_kit.trainer import RunContext, distribute, prepare_data, prepare_vocab, train_step

out, params = sys.argv[1], json.loads(sys.argv[2])
cfg = make_config(**params)
torch.set_num_threads(1)
group, device = init_distributed(resolve_device("cpu"))
folder, splits = prepare_data(cfg)
vocab = prepare_vocab(cfg, splits["train"])
ctx = RunContext(cfg, device, splits, vocab, RunDir(tempfile.mkdtemp(), _new=True, read_only=True), folder, dist=group)
stage = next(SCENARIOS[cfg.scenario].stages(ctx))
distribute(stage.scenario, ctx)
stage.scenario.train()
batch = next(iter(ctx.loader(stage.seed)))
terms = train_step(stage.scenario, batch, ctx, 0, 10)
if group.main:
    tensors = {f"{b.name}/{k}": v.detach().clone() for b in stage.scenario.learning for k, v in b.model.state_dict().items()}
    tensors.update({f"grad/{b.name}/{k}": p.grad.detach().clone() for b in stage.scenario.learning
                    for k, p in b.model.named_parameters() if p.grad is not None})
    tensors.update({f"loss/{name}": t["total"].detach().reshape(1) for name, t in terms.items()})
    tensors["batch_rows"] = torch.tensor([len(batch["image_ids"])])
    save_file(tensors, out)
group.barrier()                      # no rank leaves while another still works: gloo aborts a process torn down mid-use
if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()
