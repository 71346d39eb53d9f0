"""Speed of dbl_kit.metrics.retrieval_metrics against a per-query argsort loop (the VSE evaluation style).

    python bench/metrics_speed.py [--images 1000] [--captions-per-image 5] [--repeats 5]

Both run on the same random similarity matrix in one process; the script checks that they agree, then prints
their times and the ratio. Timings depend on the machine and its load: compare ratios from one run.
"""
import argparse
import time

import numpy as np

from dbl_kit.metrics import retrieval_metrics


def loop_metrics(sims, k):
    "One argsort per query, as in VSE++/SCAN's evaluation code."
    n_img, n_cap = sims.shape
    i2t = np.zeros(n_img)
    for i in range(n_img):
        order = np.argsort(sims[i])[::-1]
        i2t[i] = min(np.where(order == c)[0][0] for c in range(i * k, i * k + k)) + 1
    t2i = np.zeros(n_cap)
    for j in range(n_cap):
        order = np.argsort(sims[:, j])[::-1]
        t2i[j] = np.where(order == j // k)[0][0] + 1
    out = {}
    for name, r in (("i2t", i2t), ("t2i", t2i)):
        out.update({f"{name}_r{K}": 100.0 * np.mean(r <= K) for K in (1, 5, 10)})
        out[f"{name}_medr"], out[f"{name}_meanr"] = float(np.floor(np.median(r))), float(r.mean())
    out["rsum"] = sum(out[f"{d}_r{K}"] for d in ("i2t", "t2i") for K in (1, 5, 10))
    return out


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--captions-per-image", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, k = args.images, args.captions_per_image
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((n, n * k)).astype(np.float32)
    sims += 2.0 * (np.arange(n * k)[None] // k == np.arange(n)[:, None])   # realistic recalls, not all zero

    fast, fast_result = best_time(lambda: retrieval_metrics(sims, k), args.repeats)
    slow, slow_result = best_time(lambda: loop_metrics(sims, k), 1)
    assert all(abs(fast_result[key] - slow_result[key]) < 1e-9 for key in fast_result), "results differ"
    print(f"similarity matrix {n} x {n * k} float32, rsum {fast_result['rsum']:.2f} (both agree)")
    print(f"retrieval_metrics (best of {args.repeats}): {fast * 1000:8.1f} ms")
    print(f"argsort loop       (1 run):    {slow * 1000:8.1f} ms")
    print(f"speed-up: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
