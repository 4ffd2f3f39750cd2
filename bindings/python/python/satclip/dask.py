"""Embedding Dask DataFrames: `satclip.dask.embed(ddf, "vit16-l40", lon="lon", lat="lat")`.

Each partition (a pandas frame) goes to the Rust core as Arrow and comes back with an
`embedding` column of fixed-size float32 lists (`pd.ArrowDtype`); each worker process loads the
model once. Ship the wheel to workers with distributed's `PipInstall` plugin or a shared env.
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
