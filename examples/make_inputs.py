#!/usr/bin/env python3
"""Writes the example inputs beside this file from cities.csv: the same 24 cities as Parquet
(lon/lat columns), NPY ([N, 2] float64, lon then lat) and GeoParquet (WKB points, as geopandas
writes them). Needs numpy and pyarrow. Usage: python3 examples/make_inputs.py
"""

import csv
import json
import pathlib
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = pathlib.Path(__file__).resolve().parent

with open(HERE / "cities.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
names = [r["name"] for r in rows]
lon = np.array([float(r["lon"]) for r in rows])
lat = np.array([float(r["lat"]) for r in rows])

pq.write_table(pa.table({"name": names, "lon": lon, "lat": lat}), HERE / "cities.parquet")
np.save(HERE / "cities.npy", np.column_stack([lon, lat]))

geometry = [struct.pack("<BI2d", 1, 1, x, y) for x, y in zip(lon, lat)]
geo = {
    "version": "1.1.0",
    "primary_column": "geometry",
    "columns": {
        "geometry": {
            "encoding": "WKB",
            "geometry_types": ["Point"],
            "bbox": [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
        }
    },
}
table = pa.table({"name": names, "geometry": pa.array(geometry, pa.binary())})
pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), HERE / "cities.geoparquet")
print("wrote cities.parquet, cities.npy, cities.geoparquet")
