"""One training step of `dbl_kit`'s trainer for each of several cases, in one process or in each of `torchrun`'s;
rank 0 saves each case's learning branches' parameters after its step: the subject of tests/test_distributed.py.
The cases run one after another in the same process (group): a process start costs more than a case's step.

    python tests/ddp_step.py OUT_DIR CASES_JSON                                  # one process, global batch
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_step.py ...  # 2 ranks, half each

CASES_JSON maps a case's name to its `dbl_kit.train` parameters; OUT_DIR/<name>.safetensors is written per case."""
import json, sys, tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from dbl_kit.core import SCENARIOS, resolve_device
from dbl_kit.config import make_config
from dbl_kit.distributed import init_distributed
from dbl_kit.rundir import RunDir
from dbl_kit.trainer import RunContext, distribute, prepare_data, prepare_vocab, train_step


def one_step(cfg, group, device) -> dict:
    "The learning branches' weights, gradients and losses after the first training step of `cfg`'s first stage."
    folder, splits = prepare_data(cfg)
    vocab = prepare_vocab(cfg, splits["train"])
    ctx = RunContext(cfg, device, splits, vocab, RunDir(tempfile.mkdtemp(), _new=True, read_only=True), folder, dist=group)
    stage = next(SCENARIOS[cfg.scenario].stages(ctx))
    distribute(stage.scenario, ctx)
    stage.scenario.train()
    batch = next(iter(ctx.loader(stage.seed)))
    terms = train_step(stage.scenario, batch, ctx, 0, 10)
    tensors = {f"{b.name}/{k}": v.detach().clone() for b in stage.scenario.learning for k, v in b.model.state_dict().items()}
    tensors.update({f"grad/{b.name}/{k}": p.grad.detach().clone() for b in stage.scenario.learning
                    for k, p in b.model.named_parameters() if p.grad is not None})
    tensors.update({f"loss/{name}": t["total"].detach().reshape(1) for name, t in terms.items()})
    tensors["batch_rows"] = torch.tensor([len(batch["image_ids"])])
    return tensors


out, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
torch.set_num_threads(1)
group, device = init_distributed(resolve_device("cpu"))
for name, params in cases.items():
    tensors = one_step(make_config(**params), group, device)
    if group.main: save_file(tensors, str(out / f"{name}.safetensors"))
group.barrier()                      # no rank leaves while another still works: gloo aborts a process torn down mid-use
if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()
