#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files of each
format, made here from scratch so that no third-party data or weights enter the repository.

The torch checkpoint is pickled by Python's own pickler through stand-ins for the torch names a
real `torch.save` writes (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`, persistent
storage ids), so the seed has the byte layout of a genuine Lightning checkpoint of a tiny SIREN.
Parquet seeds need pyarrow (`pip install pyarrow`); without it they are skipped.

Usage: python3 fuzz/make_corpus.py   (from the repository root)
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# --- torch stand-ins -------------------------------------------------------------------------

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("a stand-in, never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, step = [], 1
        for d in reversed(self.shape):
            stride.insert(0, step)
            step *= d
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None


def torch_save(root, storages, archive="archive"):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(root)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for s in storages:
            z.writestr(f"{archive}/data/{s.key}", struct.pack(f"<{len(s.values)}f", *s.values))
        z.writestr(f"{archive}/version", "3\n")
    return out.getvalue()


def tiny_siren(features=4, hidden=4, out=3, prefix="model.location.nnet."):
    """Shapes of a SIREN with one hidden layer on L = 2 spherical harmonics (4 features)."""
    shapes = [
        ("layers.0.weight", [hidden, features]),
        ("layers.0.bias", [hidden]),
        ("last_layer.weight", [out, hidden]),
        ("last_layer.bias", [out]),
    ]
    state, storages = collections.OrderedDict(), []
    for i, (name, shape) in enumerate(shapes):
        n = 1
        for d in shape:
            n *= d
        s = Storage(str(i), [((i + 1) * 0.01 * (k % 7 - 3)) for k in range(n)])
        storages.append(s)
        state[prefix + name] = Tensor(s, shape)
    return state, storages


HPARAMS = {
    "le_type": "sphericalharmonics",
    "pe_type": "siren",
    "legendre_polys": 2,
    "harmonics_calculation": "analytic",
    "frequency_num": 16,
    "min_radius": 1e-5,
    "max_radius": 0.01,
    "embed_dim": 3,
    "capacity": 4,
    "num_hidden_layers": 1,
    "vision_layers": "moco_resnet18",
}


def checkpoints():
    state, storages = tiny_siren()
    put("torch_checkpoint", "tiny-siren.ckpt", torch_save({"state_dict": state, "hyper_parameters": HPARAMS}, storages))
    state["model.logit_scale"] = Tensor(storages[1], [])
    put(
        "torch_checkpoint",
        "tiny-siren-logit-scale.ckpt",
        torch_save({"epoch": 3, "state_dict": state, "hyper_parameters": dict(HPARAMS, le_type="wrap")}, storages),
    )
    state, storages = tiny_siren(prefix="model.nnet.")
    put("torch_checkpoint", "tiny-siren-nnet.ckpt", torch_save({"state_dict": state, "hyper_parameters": HPARAMS}, storages, "tiny"))


def pickles():
    values = [
        {"a": [1, 2.5, "x"], "b": (None, True), "c": {1: b"bytes"}},
        collections.OrderedDict([("w", 1), ("x", [[], {}, ()])]),
        [(1, 2, 3), "ü", 2**70, -(2**40), 1e300, frozenset(), set([1])],
    ]
    for protocol in (0, 2, 4, 5):
        for i, v in enumerate(values):
            put("pickle", f"p{protocol}-{i}.pkl", pickle.dumps(v, protocol=protocol))
    state, storages = tiny_siren()
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump({"state_dict": state, "hyper_parameters": HPARAMS})
    put("pickle", "checkpoint-data.pkl", buf.getvalue())


# --- safetensors + config.json ---------------------------------------------------------------


def safetensors(tensors, dtype="F32"):
    header, data, offset = {"__metadata__": {"format": "pt"}}, b"", 0
    fmt, size = {"F32": ("f", 4), "F64": ("d", 8)}[dtype]
    for name, shape, values in tensors:
        raw = struct.pack(f"<{len(values)}{fmt}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def native_models():
    config = dict(HPARAMS, model_type="satclip-location-encoder", format_version=1)
    del config["vision_layers"]
    config = json.dumps(config).encode()
    state, _ = tiny_siren(prefix="location.nnet.")
    for dtype in ("F32", "F64"):
        tensors = [(n, t.shape, t.storage.values) for n, t in state.items()]
        put("native_model", f"tiny-{dtype}.bin", struct.pack("<H", len(config)) + config + safetensors(tensors, dtype))
    # A fine-tuned model's head (head.safetensors): three classes of a 4-d embedding.
    head = [("head.weight", [3, 4], [0.25 * i for i in range(12)]), ("head.bias", [3], [0.0, 1.0, -1.0])]
    put("native_model", "head-F64.bin", struct.pack("<H", 0) + safetensors(head, "F64"))


# --- GeoTIFF ---------------------------------------------------------------------------------


def tiff(width, height, bands, fmt, sample_format, epsg, tiled=False):
    """A little-endian baseline TIFF, band-interleaved by pixel, one strip, with GeoTIFF tags."""
    size = struct.calcsize(fmt)
    pixels = b"".join(struct.pack(f"<{fmt}", (x * 7 + y * 3 + b) % 200) for y in range(height) for x in range(width) for b in range(bands))
    entries, extra = [], b""
    data_at = 8
    ifd_at = data_at + len(pixels)
    count = 13
    extra_at = ifd_at + 2 + count * 12 + 4

    def tag(code, typ, values):
        nonlocal extra
        fmt_of = {3: "H", 4: "I", 12: "d"}[typ]
        raw = struct.pack(f"<{len(values)}{fmt_of}", *values)
        if len(raw) <= 4:
            entries.append(struct.pack("<HHI", code, typ, len(values)) + raw.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", code, typ, len(values), extra_at + len(extra)))
            extra += raw

    geo_key = 3072 if epsg != 4326 else 2048
    tag(256, 4, [width])
    tag(257, 4, [height])
    tag(258, 3, [size * 8] * bands)
    tag(259, 3, [1])
    tag(262, 3, [1])
    tag(273, 4, [data_at])
    tag(277, 3, [bands])
    tag(278, 4, [height])
    tag(279, 4, [len(pixels)])
    tag(339, 3, [sample_format] * bands)
    scale = (10.0, 10.0, 0.0) if epsg != 4326 else (0.0001, 0.0001, 0.0)
    origin = (500000.0, 4500000.0) if epsg != 4326 else (13.4, 52.5)
    tag(33550, 12, list(scale))
    tag(33922, 12, [0.0, 0.0, 0.0, origin[0], origin[1], 0.0])
    tag(34735, 3, [1, 1, 0, 2, 1024, 0, 1, 1 if epsg == 4326 else 2, geo_key, 0, 1, epsg])
    assert len(entries) == count
    ifd = struct.pack("<H", count) + b"".join(entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + pixels + ifd + extra


def geotiffs():
    put("geotiff", "s2-like-utm.tif", tiff(8, 8, 12, "H", 1, 32633))
    put("geotiff", "float-4326.tif", tiff(6, 5, 1, "f", 3, 4326))
    put("geotiff", "rgb-u8.tif", tiff(4, 4, 3, "B", 1, 4326))


# --- points, NPY, WKB, tasks -----------------------------------------------------------------


def npy(array_rows, dtype="<f8"):
    fmt = {"<f8": "d", "<f4": "f"}[dtype]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%d, 2), }" % (dtype, len(array_rows))
    header = header.encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    body = b"".join(struct.pack(f"<2{fmt}", *r) for r in array_rows)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


POINTS = [(-122.4194, 37.7749), (13.405, 52.52), (151.2093, -33.8688), (-60.0217, -3.119), (179.99, -89.9)]


def points():
    put("npy", "points-f8.npy", npy(POINTS))
    put("npy", "points-f4.npy", npy(POINTS, "<f4"))
    with open(os.path.join(os.path.dirname(ROOT), "..", "examples", "cities.csv"), "rb") as f:
        put("csv_points", "cities.csv", f.read())
    put("csv_points", "quoted.csv", b'"id","Longitude","LAT"\n"a, b",1.5,2.5\n\xef\xbb\xbfc,-1,-2\n')
    put("csv_points", "semicolon-ish.csv", b"lng,lat,extra\n10,20,\n-180,90,x\n")
    for name, (lon, lat) in zip(["le", "be"], POINTS):
        order = "<" if name == "le" else ">"
        put("wkb", f"point-{name}.wkb", struct.pack(f"{order}BI2d", 1 if name == "le" else 0, 1, lon, lat))
    put("wkb", "point-z.wkb", struct.pack("<BI3d", 1, 1001, 1.0, 2.0, 3.0))
    put("wkb", "ewkb-srid.wkb", struct.pack("<BII2d", 1, 0x20000001, 4326, 5.0, 6.0))
    task = "lon,lat,target,split\n" + "".join(
        f"{i * 3.1 - 150:.2f},{i * 1.7 - 60:.2f},{['forest', 'desert', 'tundra'][i % 3]},{['train', 'test'][i % 2]}\n" for i in range(40)
    )
    put("task", "classes.csv", task.encode())
    put("task", "regression.csv", ("lon,lat,target\n" + "".join(f"{i - 20},{i / 2},{i * 0.25}\n" for i in range(40))).encode())


def regions_and_npz():
    square = lambda x, y, s: [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"CONTINENT": "Europe"}, "geometry": {"type": "Polygon", "coordinates": square(0, 40, 20)}},
            {"type": "Feature", "properties": {"CONTINENT": "Africa", "REALM": "Afrotropic"},
             "geometry": {"type": "MultiPolygon", "coordinates": [square(-10, -10, 20), square(30, -30, 5)]}},
        ],
    }
    put("regions", "two-regions.geojson", json.dumps(collection).encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mask.npy", npy([(1.0, 0.0), (0.0, 1.0)]))
        z.writestr("other.npy", npy([(2.5, -1.0)], "<f4"))
    put("npz", "two-arrays.npz", out.getvalue())


def parquet():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow missing: Parquet seeds skipped")
        return
    table = pa.table({"name": [f"p{i}" for i in range(len(POINTS))], "lon": [p[0] for p in POINTS], "lat": [p[1] for p in POINTS]})
    for codec in ("snappy", "zstd", "none"):
        out = io.BytesIO()
        pq.write_table(table, out, compression=codec)
        put("parquet_points", f"lonlat-{codec}.parquet", out.getvalue())
    wkb = [struct.pack("<BI2d", 1, 1, lon, lat) for lon, lat in POINTS]
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"], "crs": None}},
    }
    table = pa.table({"id": list(range(len(POINTS))), "geometry": pa.array(wkb, pa.binary())})
    table = table.replace_schema_metadata({"geo": json.dumps(geo)})
    out = io.BytesIO()
    pq.write_table(table, out)
    put("parquet_points", "geoparquet-points.parquet", out.getvalue())


def arrow_streams():
    """Arrow IPC streams as clients POST them to `satclip serve` (the ipc_points target)."""
    try:
        import pyarrow as pa
    except ImportError:
        print("pyarrow missing: Arrow IPC seeds skipped")
        return
    tables = {
        "lonlat-f64.arrows": pa.table({"lon": [p[0] for p in POINTS], "lat": [p[1] for p in POINTS]}),
        "named-f32-extra.arrows": pa.table(
            {
                "id": pa.array([f"p{i}" for i in range(len(POINTS))]),
                "longitude": pa.array([p[0] for p in POINTS], pa.float32()),
                "latitude": pa.array([p[1] for p in POINTS], pa.float32()),
            }
        ),
        "dictionary-int.arrows": pa.table(
            {"lng": pa.array([1, 2, 3], pa.int32()), "lat": pa.array([4, 5, 6], pa.int16()), "k": pa.array(["a", "b", "a"]).dictionary_encode()}
        ),
    }
    for name, table in tables.items():
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=2):
                writer.write_batch(batch)
        put("ipc_points", name, sink.getvalue())


def feature_tables():
    """Tables of features by location (the feature_table target: a format byte, 0 CSV, 1 Parquet)."""
    put("feature_table", "csv-columns", b"\x00lon,lat,f0,f1\n1.5,2.5,0.1,0.2\n-3,4,1e3,-2\n")
    put("feature_table", "csv-emb", b"\x00lon,lat,name,emb_0,emb_1\n1,2,a,0.5,0.25\n")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        print("pyarrow missing: Parquet feature-table seeds skipped")
        return
    lists = {
        "fixed-f32": pa.array([[0.5, 1.0], [2.0, 3.0], [4.0, 5.0]], pa.list_(pa.float32(), 2)),
        "list-f64": pa.array([[0.5, 1.0], [2.0, 3.0], [4.0, 5.0]], pa.list_(pa.float64())),
    }
    for name, embedding in lists.items():
        table = pa.table({"lon": [p[0] for p in POINTS[:3]], "lat": [p[1] for p in POINTS[:3]], "embedding": embedding})
        out = io.BytesIO()
        pq.write_table(table, out)
        put("feature_table", f"parquet-{name}", b"\x01" + out.getvalue())


def service_requests():
    """JSON bodies of `satclip serve` (the serve_request target)."""
    put("serve_request", "embed.json", json.dumps({"coordinates": POINTS, "model": "default", "normalize": True}).encode())
    put("serve_request", "similarity.json", json.dumps({"a": POINTS[:2], "b": POINTS}).encode())
    put("serve_request", "bad-point.json", b'{"coordinates": [[1, 2], [3, 95], ["x", 1]]}')


if __name__ == "__main__":
    checkpoints()
    pickles()
    native_models()
    geotiffs()
    points()
    regions_and_npz()
    parquet()
    arrow_streams()
    feature_tables()
    service_requests()
    for target in sorted(os.listdir(ROOT)):
        print(target, len(os.listdir(os.path.join(ROOT, target))))
