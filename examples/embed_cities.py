#!/usr/bin/env python3
"""The Python API on the example cities: embeddings as NumPy, nearest neighbours by cosine.

Install the package first: pip install ./bindings/python  (or bindings/python/test.sh builds a
wheel). Usage: python3 examples/embed_cities.py
"""

import csv
import pathlib

import numpy as np

import satclip

HERE = pathlib.Path(__file__).resolve().parent
with open(HERE / "cities.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
names = [r["name"] for r in rows]
lonlat = np.array([[float(r["lon"]), float(r["lat"])] for r in rows])

encoder = satclip.Encoder()  # the built-in model; or a .ckpt path, "geoclip", "sh-l10", ...
emb = encoder.embed(lonlat)  # [24, 256] float32
unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
similarity = unit @ unit.T
for i, name in enumerate(names[:5]):
    nearest = np.argsort(-similarity[i])[1]
    print(f"{name:>15} is most like {names[nearest]} (cosine {similarity[i, nearest]:.3f})")
