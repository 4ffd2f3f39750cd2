"""Arrow batches through the Rust core: the part every engine adapter shares.

Models are loaded once per process and kept (`encoder`), whether named by spec (a path, a Hub
name resolved through the Hugging Face cache) or given as the bytes of a checkpoint (written once
to a file named by its SHA-256). The embedding itself runs in Rust with the GIL released.
"""

import hashlib
import os
import tempfile
import threading

import numpy as np
import pyarrow as pa

from ._native import Encoder, points_from_wkb

_lock = threading.Lock()
_encoders = {}
_loads = {}


def _key(model):
    if isinstance(model, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(model).hexdigest()
    return str(model)


def _follow_thread_budget():
    """Engines give each worker a share of the cores and say so in OMP_NUM_THREADS (Dask sets it
    to 1 per worker process, Spark to spark.task.cpus, Ray to the actor's CPUs), as numpy's BLAS
    expects. The Rust core's thread pool follows the same budget unless RAYON_NUM_THREADS is set,
    instead of every worker process taking every core. It must be set before the pool starts:
    the first embedding in this process."""
    if "RAYON_NUM_THREADS" not in os.environ and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        os.environ["RAYON_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]


def encoder(model):
    """The loaded encoder for `model` (a spec or a checkpoint's bytes), loading it on first use."""
    key = _key(model)
    with _lock:
        found = _encoders.get(key)
        if found is None:
            _follow_thread_budget()
            spec = model
            if key.startswith("sha256:"):
                # Bytes shipped to a worker: one file per distinct checkpoint and machine.
                path = os.path.join(tempfile.gettempdir(), f"satclip-{key[7:23]}.ckpt")
                if not os.path.exists(path):
                    partial = f"{path}.{os.getpid()}.tmp"
                    with open(partial, "wb") as f:
                        f.write(bytes(model))
                    os.replace(partial, path)
                spec = path
            found = Encoder(spec)
            _encoders[key] = found
            _loads[key] = _loads.get(key, 0) + 1
        return found


def loads(model):
    """How many times this process loaded `model` (once, unless something is wrong)."""
    return _loads.get(_key(model), 0)


def _column(batch, name):
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise KeyError(f"no column `{name}`; the batch has: {', '.join(batch.schema.names)}")
    return batch.column(index)


def lonlat(batch, lon="lon", lat="lat", geometry=None):
    """`[N, 2]` float64 (lon, lat) of a batch, NaN where a value is null or not a point."""
    if geometry is not None:
        return points_from_wkb(_column(batch, geometry).to_pylist(), strict=False)
    columns = []
    for name in (lon, lat):
        array = _column(batch, name).cast(pa.float64())
        columns.append(array.to_numpy(zero_copy_only=False))
    return np.column_stack(columns) if len(batch) else np.zeros((0, 2))


def embeddings(batch, model, lon="lon", lat="lat", geometry=None, on_invalid="raise", fixed_size=True, where=""):
    """The embeddings of a batch's points as an Arrow array: a fixed-size list (or, for Spark, a
    list) of float32 per row. An invalid row (null, non-finite, |lat| > 90, |lon| > 180, not a
    point) raises ValueError naming it, or with `on_invalid="null"` gets a null embedding."""
    if on_invalid not in ("raise", "null"):
        raise ValueError(f"on_invalid is {on_invalid!r}; use 'raise' or 'null'")
    enc = encoder(model)
    points = lonlat(batch, lon, lat, geometry)
    valid = np.isfinite(points).all(axis=1) & (np.abs(points[:, 0]) <= 180) & (np.abs(points[:, 1]) <= 90)
    if on_invalid == "raise" and not valid.all():
        row = int(np.argmin(valid))
        what = f"{geometry} is not a 2-D point" if geometry is not None else f"{lon}={points[row, 0]}, {lat}={points[row, 1]}"
        raise ValueError(f"{where}row {row}: {what} (pass on_invalid='null' for a null embedding instead)")
    dim = enc.dim
    if valid.all():
        values = enc.embed(points) if len(points) else np.zeros((0, dim), dtype=np.float32)
    else:
        values = np.zeros((len(points), dim), dtype=np.float32)
        if valid.any():
            values[valid] = enc.embed(points[valid])
    flat = pa.array(values.reshape(-1), type=pa.float32())
    mask = None if valid.all() else pa.array(~valid)
    if fixed_size:
        return pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)
    offsets = pa.array(np.arange(0, (len(points) + 1) * dim, dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat, mask=mask)


def embed_batch(batch, model, lon="lon", lat="lat", geometry=None, on_invalid="raise", column="embedding", fixed_size=True, where=""):
    """`batch` (a RecordBatch or Table) with an `embedding` column appended."""
    array = embeddings(batch, model, lon, lat, geometry, on_invalid, fixed_size, where)
    return batch.append_column(pa.field(column, array.type, nullable=True), array)
