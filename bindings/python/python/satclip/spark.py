"""Embedding Spark DataFrames: `satclip.spark.embed(df, "vit16-l40", lon="lon", lat="lat")`.

Runs as `DataFrame.mapInArrow`: Arrow batches go straight from Spark to the Rust core and back,
and each Python worker loads the model once (Spark reuses its Python workers). The wheel must be
installed on the workers; see bindings/python/README.md for `spark.archives` with venv-pack.
"""

from . import _arrow


def embed(df, model="default", lon="lon", lat="lat", geometry=None, on_invalid="raise", column="embedding"):
    """`df` with `column` appended: `array<float>` of the model's width (null for invalid rows
    with `on_invalid="null"`). `model` is a spec (path, Hub name, `default`, ...) or the bytes of
    a checkpoint; `geometry` names a WKB point column to use instead of `lon`/`lat`."""
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    if column in df.columns:
        raise ValueError(f"the frame already has a column `{column}`; pass column= another name")
    schema = StructType(df.schema.fields + [StructField(column, ArrayType(FloatType(), containsNull=False), True)])

    def run(batches):
        from pyspark import TaskContext

        context = TaskContext.get()
        where = f"partition {context.partitionId()}, " if context is not None else ""
        # Spark cuts a partition into batches (spark.sql.execution.arrow.maxRecordsPerBatch);
        # rows are named by their place in the partition.
        first_row = 0
        for batch in batches:
            yield _arrow.embed_batch(batch, model, lon, lat, geometry, on_invalid, column, fixed_size=False, where=where, first_row=first_row)
            first_row += len(batch)

    return df.mapInArrow(run, schema)


def write_parquet(df, path, model="default", lon="lon", lat="lat", geometry=None, dtype="float32", mode="error", on_invalid="raise"):
    """Embeds `df` into a Parquet dataset at `path`, one `part-NNNNN.parquet` per partition, and
    returns the number of rows. Each file is the one `satclip embed` writes (the input's columns,
    an `embedding` list of `dtype`, GeoParquet metadata and the model's provenance), written by
    the Rust core in the task that embeds it. `embed(df).write.parquet(path)` gives the same
    values, but Spark's writer of `array<float>` columns took twice as long as the embedding
    itself (2 M points, 2 cores: 37.5 s against 12.3 s without the write) and keeps no
    provenance. `path` must be a directory every worker sees (local, or a shared mount);
    `mode="overwrite"` replaces its part files. An invalid point fails the job, naming the
    partition and row, or with `on_invalid="null"` gets a null embedding."""
    from pyspark.sql.types import LongType, StructField, StructType

    directory = _arrow.prepare_dataset(path, mode)

    def run(batches):
        import pyarrow as pa
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        rows = _arrow.write_part(batches, model, directory, part, lon, lat, geometry, dtype, f"Spark partition {part}", on_invalid)
        yield pa.RecordBatch.from_pydict({"rows": [rows]}, schema=pa.schema([("rows", pa.int64())]))

    counts = df.mapInArrow(run, StructType([StructField("rows", LongType(), False)])).collect()
    return sum(row.rows for row in counts)
