"""Embedding Ray Datasets: `satclip.ray.embed(ds, "vit16-l40", lon="lon", lat="lat")`.

`Dataset.map_batches` with an actor class: each actor loads the model once and embeds Arrow
batches in Rust. Ship the wheel with `runtime_env={"pip": [...]}` or a shared environment.
`satclip.ray.write_parquet(ds, path, ...)` embeds and writes in Ray's write tasks instead.
"""

from . import _arrow


class Embedder:
    """The callable Ray's actors hold: the model stays loaded between batches."""

    def __init__(self, model, lon, lat, geometry, on_invalid, column):
        self.args = (model, lon, lat, geometry, on_invalid, column)
        _arrow.encoder(model)

    def __call__(self, batch):
        model, lon, lat, geometry, on_invalid, column = self.args
        return _arrow.embed_batch(batch, model, lon, lat, geometry, on_invalid, column)


def embed(
    ds, model="default", lon="lon", lat="lat", geometry=None, on_invalid="raise", column="embedding", concurrency=1, batch_size=65536, **map_batches
):
    """`ds` with `column` appended (a fixed-size list of float32), by `concurrency` actors.
    Further keywords go to `Dataset.map_batches`. `num_cpus=` is each actor's share of its
    node, and the threads its Rust core runs (Ray says so in OMP_NUM_THREADS): one actor per
    node holding its cores (`num_cpus=os.cpu_count()`) is the fastest way, since every batch is
    embedded on all of them. On a 2-vCPU machine, 2 M points: 22 s that way, 26-28 s with one
    single-threaded actor per core. Batches of 65 536 rows (64 MB of embeddings at 256-d)
    took 10 % less time there than batches of 8 192. Ray's read and write tasks need a CPU of
    their own too (`ray.init(num_cpus=...)` counts logical CPUs, which may exceed the cores)."""
    import ray.data

    return ds.map_batches(
        Embedder,
        fn_constructor_args=(model, lon, lat, geometry, on_invalid, column),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        **map_batches,
    )


def write_parquet(ds, path, model="default", lon="lon", lat="lat", geometry=None, dtype="float32", mode="error", num_cpus=None, concurrency=None, on_invalid="raise"):
    """Embeds `ds` into a Parquet dataset at `path`, one `part-NNNNN.parquet` per write task (the
    file `satclip embed` writes, with GeoParquet metadata and the model's provenance), and
    returns the number of rows. It is a `Datasink`: Ray's write tasks embed the blocks they are
    given, so the embeddings never pass through the object store, where `embed(ds)` sends every
    one of them from the actor to the writer. `num_cpus` is each write task's share of its node
    and the threads its Rust core runs (Ray's default: one). Ray may give a small dataset to a
    single write task: 2 M points read from 8 files (48 MB) went to one, which took 23 s at one
    thread and 15 s with `num_cpus=2` on a 2-vCPU machine (the command line: 13 s). `path`
    must be a directory every worker sees; `mode="overwrite"` replaces its part files. An invalid
    point fails the job, naming the write task and row, or with `on_invalid="null"` gets a null
    embedding."""
    import ray
    from ray.data import Datasink
    from ray.data.block import BlockAccessor

    directory = _arrow.prepare_dataset(path, mode)

    class EmbeddingSink(Datasink):
        rows = 0

        def write(self, blocks, ctx):
            tables = (BlockAccessor.for_block(block).to_arrow() for block in blocks)
            part = ctx.task_idx
            # Ray reuses worker processes for tasks of any CPU share: each call runs on its own.
            threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
            return _arrow.write_part(tables, model, directory, part, lon, lat, geometry, dtype, f"Ray write task {part}", on_invalid, threads)

        def on_write_complete(self, write_result):
            self.rows = sum(write_result.write_returns)

    sink = EmbeddingSink()
    ds.write_datasink(sink, ray_remote_args={"num_cpus": num_cpus} if num_cpus else None, concurrency=concurrency)
    return sink.rows
