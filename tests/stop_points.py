"""What the two stopping runners share (`kill_runner.py`, `interrupt_runner.py`): counting the points a run passes,
and a file write stopped halfway (the temporary file holds half its bytes and was never renamed)."""
import contextlib


class StopPoints:
    "Counts each kind of point a run passes; `reached(kind)` is True at the chosen one (`point`, its `n`-th time)."
    def __init__(self, point: str, n: int, kinds):
        self.point, self.n, self.counts = point, int(n), {k: 0 for k in kinds}

    def reached(self, kind) -> bool:
        self.counts[kind] += 1
        return self.counts[kind] == self.n and self.point == kind


def half_written(real_atomic_path, points: StopPoints, stop):
    "An `atomic_path` that, at the chosen write, cuts the temporary file to half its bytes and calls `stop()` before the rename."
    @contextlib.contextmanager
    def atomic_path(path):
        chosen = points.reached("write")
        with real_atomic_path(path) as tmp:
            yield tmp
            if chosen:
                data = tmp.read_bytes(); tmp.write_bytes(data[: len(data) // 2])
                stop()
    return atomic_path
