"""Training step of an interaction head at published size (R=36, F=2048, E=1024, word 300, sim 256), its captions in
blocks by length (`interaction.width_blocks`, the engine's default) against one block padded to the batch's longest
caption (the engine before), interleaved rounds in one process, medians and their ratio.

    python tools/bench_width_blocks.py ave 32 15      # head, batch, rounds

The weights stay fixed (SGD with lr 0), so every round does the same work. A batch that does not fit the engine's
memory budget at once is checkpointed block by block in both arms (no difference to measure)."""
import statistics, sys, time

import torch

import dbl_kit.interaction as engine
from dbl_kit.bench_published import SIZES, kit_step, make_batch, no_dropout
from dbl_kit.config import make_config
from dbl_kit.models import build_model

head, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
cfg = make_config(model=head, embed_size=1024, word_dim=300, **({"sim_dim": 256} if head in ("sgr", "saf", "ave") else {}))
model = build_model(cfg, 8481, 2048, 36); no_dropout(model); model.show_progress = False
opt = torch.optim.SGD(model.parameters(), lr=0.0)
regions, tokens, lengths = make_batch(batch, SIZES["published"], 8481, 1)
arms = {"width": engine.width_blocks, "padded": lambda L, waste=0.1: [(0, len(L), int(L[-1]))]}
times = {k: [] for k in arms}
for r in range(rounds + 1):                               # round 0 warms up; the order alternates
    for name in (list(arms) if r % 2 else list(arms)[::-1]):
        engine.width_blocks = arms[name]
        t0 = time.perf_counter(); kit_step(model, opt, regions, tokens, lengths)
        if r: times[name].append(time.perf_counter() - t0)
p, w = statistics.median(times["padded"]), statistics.median(times["width"])
print(f"{head} batch {batch}: padded {p:.3f} s, width blocks {w:.3f} s, padded / width {p / w:.2f} ({rounds} rounds)")
