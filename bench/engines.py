"""Throughput of satclip inside Spark, Dask and Ray beside the command line, on this machine.

Writes N random points (default 2 000 000) as a Parquet dataset of 8 files, then embeds it with
a model (default: the built-in one) five ways, each reading Parquet and writing Parquet:
`satclip embed` on the dataset directory, `satclip embed` on one file holding every point, Spark
`local[*]` with `satclip.spark.embed`, a Dask LocalCluster (one worker process per core) with
`satclip.dask.embed`, and Ray with `satclip.ray.embed` (one actor holding every core: on this
2-vCPU machine it took 22 s for 2 M points where one single-threaded actor per core took 26-28 s).
Each output is deleted before the next run. Prints a Markdown table; run it in the bindings' test
venv:

    bindings/python/target/venv/bin/python bench/engines.py [N] [path/to/satclip] [model]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
BINARY = sys.argv[2] if len(sys.argv) > 2 else "target/release/satclip"
MODEL = sys.argv[3] if len(sys.argv) > 3 else "default"
CORES = os.cpu_count()
FILES = 8


def timed(label, run, rows):
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    results.append((label, seconds, rows / seconds))
    print(f"{label}: {seconds:.1f} s", file=sys.stderr)


def main(work):
    rng = np.random.default_rng(0)
    data = os.path.join(work, "points")
    os.makedirs(data)
    per = N // FILES
    for i in range(FILES):
        table = pa.table({"id": np.arange(i * per, (i + 1) * per), "lon": rng.uniform(-180, 180, per), "lat": rng.uniform(-90, 90, per)})
        pq.write_table(table, os.path.join(data, f"part-{i}.parquet"))
    single = os.path.join(work, "single.parquet")
    pq.write_table(pq.read_table(data), single)
    rows = per * FILES
    out = os.path.join(work, "out")

    def clean():
        shutil.rmtree(out, ignore_errors=True)
        if os.path.isfile(out + ".parquet"):
            os.remove(out + ".parquet")

    timed("`satclip embed`, dataset directory (8 files)", lambda: subprocess.run([BINARY, "embed", "--encoder", MODEL, "--input", data, "--output", out], check=True), rows)
    clean()
    timed("`satclip embed`, one file", lambda: subprocess.run([BINARY, "embed", "--encoder", MODEL, "--input", single, "--output", out + ".parquet"], check=True), rows)
    clean()

    import satclip

    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master(f"local[{CORES}]").config("spark.ui.enabled", "false").config("spark.driver.memory", "4g").getOrCreate()
    import satclip.spark

    timed("Spark local, satclip.spark.embed", lambda: satclip.spark.embed(spark.read.parquet(data), MODEL).write.parquet(out), rows)
    clean()
    # Spark's own cost for the same job: a constant 256-float array per row instead of the model.
    from pyspark.sql import functions as F

    constant = F.array(*[F.lit(0.0).cast("float") for _ in range(256)])
    timed("Spark local, a constant array column instead (Spark's own cost)", lambda: spark.read.parquet(data).withColumn("embedding", constant).write.parquet(out), rows)
    spark.stop()
    clean()

    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import satclip.dask

    with LocalCluster(n_workers=CORES, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        timed("Dask LocalCluster, satclip.dask.embed", lambda: satclip.dask.embed(dd.read_parquet(data), MODEL).to_parquet(out), rows)
    clean()

    import ray

    import satclip.ray

    ray.init(num_cpus=CORES + 1, include_dashboard=False, log_to_driver=False)
    timed(
        "Ray local, satclip.ray.embed",
        lambda: satclip.ray.embed(ray.data.read_parquet(data), MODEL, num_cpus=CORES).write_parquet(out),
        rows,
    )
    ray.shutdown()
    clean()


results = []
# Dask's and Ray's worker processes import this module: only the parent runs the benchmark.
if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        main(work)
    cli = results[0][2]
    print(f"{N} points, model {MODEL} (f32), Parquet in and out, {CORES} cores\n")
    print("| run | seconds | points/s | of the CLI's dataset rate |")
    print("|---|---|---|---|")
    for label, seconds, rate in results:
        print(f"| {label} | {seconds:.1f} | {rate:,.0f} | {rate / cli:.2f} |")
