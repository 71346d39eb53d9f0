"""Run `dbl_kit.train(**params)` in this process and SIGKILL it at a chosen point: the subject of tests/test_resume.py.

    python tests/kill_runner.py POINT N PARAMS_JSON

POINT `step`: killed right after training step N (of all stages together). POINT `write`: killed in the middle of the
run's N-th file write: the temporary file holds half of its bytes and has not been renamed yet, as when the machine
dies during a checkpoint. N = 0 never kills: it counts the steps and writes and prints them as JSON."""
import json, os, signal, sys

import dbl_kit.core as core
import dbl_kit.rundir as rundir
import dbl_kit.trainer as trainer
import dbl_kit

from stop_points import StopPoints, half_written

point, n, params = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
points = StopPoints(point, n, ("step", "write"))
def kill(): os.kill(os.getpid(), signal.SIGKILL)

real_step = trainer.train_step

def train_step(*args, **kwargs):
    out = real_step(*args, **kwargs)
    if points.reached("step"): kill()
    return out

atomic_path = half_written(core.atomic_path, points, kill)
trainer.train_step, core.atomic_path, rundir.atomic_path = train_step, atomic_path, atomic_path
dbl_kit.train(**params)
print(json.dumps(points.counts))
