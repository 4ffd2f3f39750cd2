"""The practical limit for the location encoder on this CPU: numpy + OpenBLAS running only the
released SIREN's three matrix products (L^2 -> 512 -> 512 -> 256, f32, with biases) on features that
are already computed. No harmonics, no sines, no I/O: a whole encoder that matches this does its
other work for free. Also the f32 GEMM rate of OpenBLAS on 2048^3, as satclip-bench measures its own.

Prints JSON with the keys of `satclip-bench --json` for the embedding workloads.
"""

import argparse
import json
import os
import time

import numpy as np


def median_seconds(reps, f):
    f()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(reps):
            f()
        times.append((time.perf_counter() - start) / reps)
    return sorted(times)[3]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--towers", action="store_true", help="accepted for symmetry; nothing to do")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = 2048
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = {"gemm_peak_gflops": 2 * n**3 / median_seconds(1, lambda: a @ b) / 1e9, "threads": args.threads}
    batches = [1, 1000, 65_536] if args.quick else [1, 1000, 65_536, 1_000_000]
    for level in [] if args.towers else [10, 40]:
        d = level * level
        w = [rng.uniform(-0.05, 0.05, shape).astype(np.float32) for shape in ((d, 512), (512, 512), (512, 256))]
        bias = [np.zeros(k, np.float32) for k in (512, 512, 256)]
        for batch in batches:
            x = rng.uniform(-1, 1, (batch, d)).astype(np.float32)

            def products():
                h = x @ w[0] + bias[0]
                h = h @ w[1] + bias[1]
                return h @ w[2] + bias[2]

            reps = max(1, min(1000, 100_000 // batch))
            out[f"embed_l{level}_b{batch}"] = batch / median_seconds(reps, products)
    out["numpy"] = np.__version__
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
