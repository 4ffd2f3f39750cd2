"""Throughput of satclip inside Spark, Dask and Ray beside the command line, on this machine.

Writes N random points (default 2 000 000) as a Parquet dataset of 8 files, then embeds it with
a model (default: the built-in one) five ways, each reading Parquet and writing Parquet:
`satclip embed` on the dataset directory, `satclip embed` on one file holding every point, Spark
`local[*]` with `satclip.spark.embed`, a Dask LocalCluster (one worker process per core) with
`satclip.dask.embed`, and Ray with `satclip.ray.embed` (one actor holding every core: on this
2-vCPU machine, with batches of 8 192, it took 20-22 s for 2 M points where one single-threaded
actor per core took 26-28 s).
Each engine runs in a Python process of its own, as a user's job would: run one after another
in the same process, Ray took 30-70 % longer behind Spark's JVM and Dask's cluster. Each output
is deleted before the next run. Prints a Markdown table; run it in the bindings' test venv:

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

FILES = 8


def spark(data, out, model, cores):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    import satclip.spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false").config("spark.driver.memory", "4g").getOrCreate()
    satclip_run = timed(lambda: satclip.spark.embed(session.read.parquet(data), model).write.parquet(out))
    shutil.rmtree(out)
    write_run = timed(lambda: satclip.spark.write_parquet(session.read.parquet(data), out, model))
    shutil.rmtree(out)
    # Spark's own cost for the same job: a constant 256-float array per row instead of the model.
    constant = F.array(*[F.lit(0.0).cast("float") for _ in range(256)])
    constant_run = timed(lambda: session.read.parquet(data).withColumn("embedding", constant).write.parquet(out))
    session.stop()
    return [
        ("Spark local, satclip.spark.embed, Spark's Parquet writer", satclip_run),
        ("Spark local, satclip.spark.write_parquet", write_run),
        ("Spark local, a constant array column instead (Spark's own cost)", constant_run),
    ]


def dask(data, out, model, cores):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import satclip.dask

    with LocalCluster(n_workers=cores, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        embed_run = timed(lambda: satclip.dask.embed(dd.read_parquet(data), model).to_parquet(out))
        shutil.rmtree(out)
        write_run = timed(lambda: satclip.dask.write_parquet(dd.read_parquet(data), out, model))
    return [("Dask LocalCluster, satclip.dask.embed, Dask's to_parquet", embed_run), ("Dask LocalCluster, satclip.dask.write_parquet", write_run)]


def ray(data, out, model, cores):
    import ray
    import ray.data

    import satclip.ray

    ray.init(num_cpus=cores + 1, include_dashboard=False, log_to_driver=False)
    embed_run = timed(lambda: satclip.ray.embed(ray.data.read_parquet(data), model, num_cpus=cores).write_parquet(out))
    shutil.rmtree(out)
    write_run = timed(lambda: satclip.ray.write_parquet(ray.data.read_parquet(data), out, model))
    shutil.rmtree(out)
    whole_run = timed(lambda: satclip.ray.write_parquet(ray.data.read_parquet(data), out, model, num_cpus=cores))
    ray.shutdown()
    return [
        ("Ray local, satclip.ray.embed (one actor of every core), Ray's write_parquet", embed_run),
        ("Ray local, satclip.ray.write_parquet (write tasks of one core)", write_run),
        ("Ray local, satclip.ray.write_parquet (write tasks of every core)", whole_run),
    ]


ENGINES = {"spark": spark, "dask": dask, "ray": ray}


def timed(run):
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(work, n, binary, model):
    rng = np.random.default_rng(0)
    data = os.path.join(work, "points")
    os.makedirs(data)
    per = n // FILES
    for i in range(FILES):
        table = pa.table({"id": np.arange(i * per, (i + 1) * per), "lon": rng.uniform(-180, 180, per), "lat": rng.uniform(-90, 90, per)})
        pq.write_table(table, os.path.join(data, f"part-{i}.parquet"))
    single = os.path.join(work, "single.parquet")
    pq.write_table(pq.read_table(data), single)
    out = os.path.join(work, "out")
    results = []

    def clean():
        shutil.rmtree(out, ignore_errors=True)
        if os.path.isfile(out + ".parquet"):
            os.remove(out + ".parquet")

    for label, source, target in [
        ("`satclip embed`, dataset directory (8 files)", data, out),
        ("`satclip embed`, one file", single, out + ".parquet"),
    ]:
        results.append((label, timed(lambda: subprocess.run([binary, "embed", "--encoder", model, "--input", source, "--output", target], check=True))))
        clean()
    for engine in ENGINES:
        # A fresh interpreter per engine: it prints its rows as `seconds<TAB>label` lines.
        lines = subprocess.run([sys.executable, __file__, "--engine", engine, data, out, model], check=True, stdout=subprocess.PIPE, text=True).stdout
        for line in lines.splitlines():
            seconds, label = line.split("\t", 1)
            results.append((label, float(seconds)))
        clean()
    return per * FILES, results


if __name__ == "__main__":
    cores = os.cpu_count()
    if sys.argv[1:2] == ["--engine"]:
        engine, data, out, model = sys.argv[2:6]
        for label, seconds in ENGINES[engine](data, out, model, cores):
            print(f"{seconds}\t{label}", flush=True)
        sys.exit(0)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/satclip"
    model = sys.argv[3] if len(sys.argv) > 3 else "default"
    with tempfile.TemporaryDirectory() as work:
        rows, results = main(work, n, binary, model)
    cli = rows / results[0][1]
    print(f"{rows} points, model {model} (f32), Parquet in and out, {cores} cores\n")
    print("| run | seconds | points/s | of the CLI's dataset rate |")
    print("|---|---|---|---|")
    for label, seconds in results:
        rate = rows / seconds
        print(f"| {label} | {seconds:.1f} | {rate:,.0f} | {rate / cli:.2f} |")
