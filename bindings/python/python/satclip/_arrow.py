"""Arrow batches through the Rust core: the part every engine adapter shares.

Models are loaded once per process and kept (`encoder`), whether named by spec (a path, a Hub
name resolved through the Hugging Face cache) or given as the bytes of a checkpoint (written once
to a file named by its SHA-256). The embedding itself runs in Rust with the GIL released.
"""

import hashlib
import itertools
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


def embeddings(batch, model, lon="lon", lat="lat", geometry=None, on_invalid="raise", fixed_size=True, where="", first_row=0):
    """The embeddings of a batch's points as an Arrow array: a fixed-size list (or, for Spark, a
    list) of float32 per row. An invalid row (null, non-finite, |lat| > 90, |lon| > 180, not a
    point) raises ValueError naming it (`where`, then its row counted from `first_row`, the
    batch's place in its partition), or with `on_invalid="null"` gets a null embedding."""
    if on_invalid not in ("raise", "null"):
        raise ValueError(f"on_invalid is {on_invalid!r}; use 'raise' or 'null'")
    enc = encoder(model)
    points = lonlat(batch, lon, lat, geometry)
    valid = np.isfinite(points).all(axis=1) & (np.abs(points[:, 0]) <= 180) & (np.abs(points[:, 1]) <= 90)
    if on_invalid == "raise" and not valid.all():
        row = int(np.argmin(valid))
        what = f"{geometry} is not a 2-D point" if geometry is not None else f"{lon}={points[row, 0]}, {lat}={points[row, 1]}"
        raise ValueError(f"{where}row {first_row + row}: {what} (pass on_invalid='null' for a null embedding instead)")
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


def embed_batch(batch, model, lon="lon", lat="lat", geometry=None, on_invalid="raise", column="embedding", fixed_size=True, where="", first_row=0):
    """`batch` (a RecordBatch or Table) with an `embedding` column appended."""
    array = embeddings(batch, model, lon, lat, geometry, on_invalid, fixed_size, where, first_row)
    return batch.append_column(pa.field(column, array.type, nullable=True), array)


def prepare_dataset(path, mode):
    """The directory a `write_parquet` fills, made ready on the driver: refused when it holds
    files (mode="error"), or cleared of its part files (mode="overwrite"). Workers write into it
    through their own file system, so it must be a path every worker sees (local, or a shared
    mount); object stores go through the engine's writer (`embed(...)` then its Parquet
    writer)."""
    if mode not in ("error", "overwrite"):
        raise ValueError(f"mode is {mode!r}; use 'error' or 'overwrite'")
    path = os.fspath(path)
    if "://" in path and not path.startswith("file://"):
        raise ValueError(f"{path}: write_parquet writes through each worker's file system; give a path all of them see, or write embed(...) with the engine's own Parquet writer")
    path = os.path.abspath(path[len("file://") :] if path.startswith("file://") else path)
    if os.path.isdir(path) and os.listdir(path):
        if mode == "error":
            raise FileExistsError(f"{path} exists and is not empty; pass mode='overwrite' to replace its part files")
        for name in os.listdir(path):
            if name.startswith("part-") and name.endswith(".parquet"):
                os.remove(os.path.join(path, name))
    os.makedirs(path, exist_ok=True)
    return path


def write_part(batches, model, directory, part, lon, lat, geometry, dtype, source, on_invalid="raise", threads=None):
    """Embeds `batches` (RecordBatches or Tables, all of one schema) into
    `directory/part-NNNNN.parquet`: the file `satclip embed` writes for the same rows, with its
    GeoParquet metadata and provenance, renamed into place when complete (a retried task
    replaces it). Returns the rows written; a partition without rows writes no file. An invalid
    point raises, naming `source` and the row, or with `on_invalid="null"` gets a null
    embedding. `threads`: a pool of that many threads for this call instead of the process's."""
    batches = (b for item in batches for b in (item.to_batches() if isinstance(item, pa.Table) else [item]) if len(b))
    first = next(batches, None)
    if first is None:
        return 0
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    columns = {"geometry_col": geometry} if geometry is not None else {"lon_col": lon, "lat_col": lat}
    output = os.path.join(directory, f"part-{part:05d}.parquet")
    return encoder(model).write(reader, output, dtype=dtype, source=source, threads=threads, on_invalid=on_invalid, **columns)
