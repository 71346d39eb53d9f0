"""Run `dbl-kit ARGV...` in this process and stop it with SIGNAL at a chosen point: the subject of tests/test_nothing_lost.py.

    python tests/interrupt_runner.py POINT N SIGNAL ARGV_JSON

POINT `score`: at the N-th scoring of a model (`evaluate_model`). POINT `write`: in the middle of the N-th file write
(the temporary file holds half its bytes, not yet renamed). POINT `commit`: just before the finished folder is put in
place. SIGNAL `INT` (Ctrl-C) or `KILL`. Exits with the command's status."""
import json, os, signal, sys

import dbl_kit.core as core
import dbl_kit.evaluation as evaluation
import dbl_kit.published as published
import dbl_kit.rundir as rundir
from dbl_kit.cli import main
from stop_points import StopPoints, half_written

point, n, sig, argv = sys.argv[1], int(sys.argv[2]), getattr(signal, "SIG" + sys.argv[3]), json.loads(sys.argv[4])
points = StopPoints(point, n, ("score", "write", "commit"))
def stop(): os.kill(os.getpid(), sig)

real_eval, real_commit = evaluation.evaluate_model, rundir.Staged.commit

def evaluate_model(*args, **kwargs):
    if points.reached("score"): stop()
    return real_eval(*args, **kwargs)

atomic_path = half_written(core.atomic_path, points, stop)

def commit(self):
    if points.reached("commit"): stop()
    return real_commit(self)

evaluation.evaluate_model = published.evaluate_model = evaluate_model
core.atomic_path = rundir.atomic_path = atomic_path
rundir.Staged.commit = commit
sys.exit(main(argv))
