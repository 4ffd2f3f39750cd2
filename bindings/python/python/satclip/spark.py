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
        for batch in batches:
            yield _arrow.embed_batch(batch, model, lon, lat, geometry, on_invalid, column, fixed_size=False, where=where)

    return df.mapInArrow(run, schema)
