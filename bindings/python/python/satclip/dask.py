"""Embedding Dask DataFrames: `satclip.dask.embed(ddf, "vit16-l40", lon="lon", lat="lat")`.

Each partition (a pandas frame) goes to the Rust core as Arrow and comes back with an
`embedding` column of fixed-size float32 lists (`pd.ArrowDtype`); each worker process loads the
model once. Ship the wheel to workers with distributed's `PipInstall` plugin or a shared env.
`satclip.dask.write_parquet(ddf, path, ...)` embeds and writes in the same tasks instead.
"""

from . import _arrow


def embed(ddf, model="default", lon="lon", lat="lat", geometry=None, on_invalid="raise", column="embedding"):
    """`ddf` with `column` appended (see `satclip.spark.embed` for the arguments)."""
    import pandas as pd
    import pyarrow as pa

    if column in ddf.columns:
        raise ValueError(f"the frame already has a column `{column}`; pass column= another name")
    dim = _arrow.encoder(model).dim
    dtype = pd.ArrowDtype(pa.list_(pa.float32(), dim))
    meta = ddf._meta.assign(**{column: pd.Series([], dtype=dtype)})
    return ddf.map_partitions(_partition, model, lon, lat, geometry, on_invalid, column, meta=meta)


def _partition(frame, model, lon, lat, geometry, on_invalid, column, partition_info=None):
    import pandas as pd
    import pyarrow as pa

    used = [geometry] if geometry is not None else [lon, lat]
    batch = pa.RecordBatch.from_pandas(frame[used], preserve_index=False)
    where = f"partition {partition_info['number']}, " if partition_info else ""
    array = _arrow.embeddings(batch, model, lon, lat, geometry, on_invalid, where=where)
    out = frame.copy()
    out[column] = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([array])), index=frame.index)
    return out


def write_parquet(ddf, path, model="default", lon="lon", lat="lat", geometry=None, dtype="float32", mode="error", on_invalid="raise"):
    """Embeds `ddf` into a Parquet dataset at `path`, one `part-NNNNN.parquet` per partition
    (the file `satclip embed` writes, with GeoParquet metadata and the model's provenance, which
    `to_parquet` does not keep), and returns the number of rows. `path` must be a directory every
    worker sees; `mode="overwrite"` replaces its part files. An invalid point fails the job,
    naming the partition and row, or with `on_invalid="null"` gets a null embedding."""
    import dask

    directory = _arrow.prepare_dataset(path, mode)
    write = dask.delayed(_write_partition, pure=False)
    parts = [write(frame, i, model, directory, lon, lat, geometry, dtype, on_invalid) for i, frame in enumerate(ddf.to_delayed())]
    return sum(dask.compute(*parts))


def _write_partition(frame, part, model, directory, lon, lat, geometry, dtype, on_invalid):
    import pandas as pd
    import pyarrow as pa

    # A partition's slice of a RangeIndex says nothing; another index is kept as columns.
    table = pa.Table.from_pandas(frame, preserve_index=not isinstance(frame.index, pd.RangeIndex))
    return _arrow.write_part([table], model, directory, part, lon, lat, geometry, dtype, f"Dask partition {part}", on_invalid)
