"""The Python bindings against the official fixtures and the Rust command line.

Run after installing the wheel: `python -m unittest discover -s bindings/python/tests -v`.
Tests that need ../shared (the official fixtures) or the installed open data (GeoCLIP's
weights) skip with the reason.
"""

import os
import pathlib
import tempfile
import unittest

import numpy as np

import satclip

ROOT = pathlib.Path(__file__).resolve().parents[3]
SHARED = pathlib.Path(os.environ.get("SATCLIP_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
DATA = pathlib.Path(os.environ.get("SATCLIP_DATA", ROOT / "data"))


def skip(why):
    """Skips, or fails under SATCLIP_REQUIRE_DATA (CI), so that CI cannot pass by skipping."""
    if os.environ.get("SATCLIP_REQUIRE_DATA", "0") != "0":
        raise AssertionError(f"SATCLIP_REQUIRE_DATA is set and this test's data is missing: {why}")
    raise unittest.SkipTest(why)


def fixture(name):
    path = FIXTURES / name
    if not path.exists():
        skip(f"{path} is not available")
    return path


class OfficialCheckpoints(unittest.TestCase):
    def test_resnet18_l10_matches_the_official_embeddings(self):
        ckpt = fixture("satclip-resnet18-l10.ckpt")
        coords = np.load(fixture("coords.npy"))
        expected = np.load(fixture("loc_emb_resnet18_l10.npy"))
        encoder = satclip.Encoder(str(ckpt))
        self.assertEqual(encoder.dim, 256)
        got = encoder.embed(coords, dtype="float64")
        self.assertEqual(got.shape, expected.shape)
        self.assertLess(np.abs(got - expected).max(), 1e-9)
        fast = encoder.embed(coords)
        self.assertLess(np.abs(fast - expected).max(), 1e-5)


class BuiltinModel(unittest.TestCase):
    def test_defaults_embed_and_validate(self):
        encoder = satclip.Encoder()
        self.assertIn("default", repr(encoder))
        points = np.array([[-122.42, 37.77], [139.69, 35.69]])
        emb = encoder.embed(points)
        self.assertEqual((emb.shape, emb.dtype), ((2, 256), np.float32))
        self.assertTrue(np.isfinite(emb).all())
        self.assertEqual(encoder.embed(points, dtype="float64").dtype, np.float64)
        with self.assertRaisesRegex(ValueError, r"lonlat\[1\].*lat"):
            encoder.embed(np.array([[0.0, 0.0], [0.0, 95.0]]))
        with self.assertRaisesRegex(ValueError, "expected \\[N, 2\\]"):
            encoder.embed(np.zeros((3, 3)))
        with self.assertRaisesRegex(ValueError, "dtype"):
            encoder.embed(points, dtype="float16")

    def test_missing_and_unknown_encoders_are_clear(self):
        with self.assertRaisesRegex(FileNotFoundError, "name it `vit16-l40` \\(or `microsoft/SatCLIP-ViT16-L40`\\)"):
            satclip.Encoder("satclip-vit16-l40.ckpt")
        with self.assertRaisesRegex(FileNotFoundError, "sh-l40"):
            satclip.Encoder("sh-l11")

    def test_every_listed_encoder_loads_with_its_listed_width(self):
        listed = {name: dim for name, dim, _ in satclip.encoders()}
        self.assertEqual(listed["default"], 256)
        # The released models download (HuggingFaceCache covers them against a stand-in Hub).
        here = {m["name"] for m in satclip.models() if m["status"] in ("built in", "computed")}
        self.assertEqual(len(here), 6)
        for name in here:
            self.assertEqual(satclip.Encoder(name).dim, listed[name], name)
        weights = DATA / "geoclip_location_encoder.pth"
        if not weights.exists() and "SATCLIP_GEOCLIP_WEIGHTS" not in os.environ:
            skip(f"{weights} is not installed (scripts/install-data.sh)")
        os.environ.setdefault("SATCLIP_GEOCLIP_WEIGHTS", str(weights))
        self.assertEqual(satclip.Encoder("geoclip").dim, listed["geoclip"])

    def test_embed_file_streams_the_same_numbers_as_embed(self):
        cities = ROOT / "examples" / "cities.csv"
        table = np.genfromtxt(cities, delimiter=",", names=True, dtype=None, encoding="utf-8")
        lonlat = np.column_stack([table["lon"], table["lat"]]).astype(np.float64)
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp, "cities.npy")
            self.assertEqual(satclip.embed_file(str(cities), str(out)), 24)
            written = np.load(out)
        self.assertEqual(written.dtype, np.float32)
        np.testing.assert_array_equal(written, satclip.Encoder().embed(lonlat))
        with self.assertRaisesRegex(ValueError, "row 1, field `lat`"):
            with tempfile.TemporaryDirectory() as tmp:
                bad = pathlib.Path(tmp, "bad.csv")
                bad.write_text("lon,lat\n10,100\n")
                satclip.embed_file(str(bad), str(pathlib.Path(tmp, "x.npy")))

    def test_a_table_of_embeddings_is_an_encoder_of_its_points(self):
        """Features computed elsewhere (here, `embed_file`'s own Parquet output) load as an
        encoder by path, as `satclip eval --encoder NAME=TABLE` uses them: each point gets its
        row, bit for bit, and a point the table lacks raises, naming it."""
        cities = ROOT / "examples" / "cities.csv"
        table = np.genfromtxt(cities, delimiter=",", names=True, dtype=None, encoding="utf-8")
        lonlat = np.column_stack([table["lon"], table["lat"]]).astype(np.float64)
        with tempfile.TemporaryDirectory() as tmp:
            features = pathlib.Path(tmp, "features.parquet")
            satclip.embed_file(str(cities), str(features))
            encoder = satclip.Encoder(str(features))
            self.assertEqual(encoder.dim, 256)
            got = encoder.embed(lonlat[::-1], dtype="float64")
            with self.assertRaisesRegex(ValueError, r"point 1 \(lon 0\.5, lat 0\.5\) is not covered"):
                encoder.embed(np.array([lonlat[0], [0.5, 0.5]]))
        # The table holds float32 values; the encoder gives them back unchanged.
        np.testing.assert_array_equal(got, satclip.Encoder().embed(lonlat[::-1]).astype(np.float64))

    def test_embed_file_on_invalid_null_keeps_every_row(self):
        with tempfile.TemporaryDirectory() as tmp:
            dirty = pathlib.Path(tmp, "dirty.csv")
            dirty.write_text("lon,lat\n10,50\n,50\n20,95\n-70,-30\n")
            out = pathlib.Path(tmp, "dirty.npy")
            with self.assertWarnsRegex(UserWarning, r"2 of 4 rows had no valid point .*the first: .*row 2, field `lon`: empty value"):
                self.assertEqual(satclip.embed_file(str(dirty), str(out), on_invalid="null"), 4)
            written = np.load(out)
            with self.assertRaisesRegex(ValueError, "on_invalid is 'skip'; use 'raise' or 'null'"):
                satclip.embed_file(str(dirty), str(out), on_invalid="skip")
        self.assertEqual(written.shape, (4, 256))
        self.assertEqual(np.isnan(written).all(axis=1).tolist(), [False, True, True, False])
        expected = satclip.Encoder().embed(np.array([[10.0, 50.0], [-70.0, -30.0]]))
        np.testing.assert_array_equal(written[[0, 3]], expected)


class GeoClip(unittest.TestCase):
    def test_geoclip_golden_norm(self):
        weights = DATA / "geoclip_location_encoder.pth"
        if not weights.exists() and "SATCLIP_GEOCLIP_WEIGHTS" not in os.environ:
            skip(f"{weights} is not installed (scripts/install-data.sh)")
        os.environ.setdefault("SATCLIP_GEOCLIP_WEIGHTS", str(weights))
        encoder = satclip.Encoder("geoclip")
        emb = encoder.embed(np.array([[-74.006, 40.7128]]), dtype="float64")
        # shared/notes/peers.md §3.7: New York's embedding norm.
        self.assertAlmostEqual(float(np.linalg.norm(emb[0])), 0.2243472918, places=9)


class WhatNumPyUsersPass(unittest.TestCase):
    """Any real dtype, lists, one pair and frames give the numbers of a float64 array."""

    def setUp(self):
        self.encoder = satclip.Encoder("wrap")
        self.points = np.array([[-122.0, 37.0], [139.0, 35.0], [2.0, 48.0]])
        self.expected = self.encoder.embed(self.points, dtype="float64")

    def test_integer_and_float32_arrays_lists_and_one_pair(self):
        np.testing.assert_array_equal(self.encoder.embed(self.points.astype(np.int32), dtype="float64"), self.expected)
        np.testing.assert_allclose(
            self.encoder.embed(self.points.astype(np.float32), dtype="float64"), self.expected, rtol=1e-6
        )
        np.testing.assert_array_equal(self.encoder.embed(self.points.tolist(), dtype="float64"), self.expected)
        one = self.encoder.embed((-122.0, 37.0), dtype="float64")
        self.assertEqual(one.shape, (self.encoder.dim,))
        np.testing.assert_array_equal(one, self.expected[0])
        with self.assertRaisesRegex(ValueError, "must be numbers"):
            self.encoder.embed([["a", "b"]])
        with self.assertRaisesRegex(ValueError, "one \\(lon, lat\\) pair"):
            self.encoder.embed([1.0, 2.0, 3.0])

    def test_pandas_frames_by_column_name_and_geometry(self):
        import pandas as pd

        frame = pd.DataFrame({"name": ["a", "b", "c"], "Longitude": self.points[:, 0], "lat": self.points[:, 1]})
        np.testing.assert_array_equal(self.encoder.embed(frame, dtype="float64"), self.expected)
        renamed = frame.rename(columns={"Longitude": "x", "lat": "y"})
        np.testing.assert_array_equal(self.encoder.embed(renamed, dtype="float64", lon_col="x", lat_col="y"), self.expected)
        with self.assertRaisesRegex(ValueError, "lon_col= and lat_col="):
            self.encoder.embed(renamed)

        class Points:  # what a GeoSeries of points offers
            x = pd.Series(self.points[:, 0])
            y = pd.Series(self.points[:, 1])

        class GeoFrame:  # a GeoDataFrame without lon/lat columns
            columns = ["name", "geometry"]
            geometry = Points()

        np.testing.assert_array_equal(self.encoder.embed(GeoFrame(), dtype="float64"), self.expected)

    def test_file_errors_name_keyword_arguments_not_flags(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = pathlib.Path(tmp, "xy.csv")
            bad.write_text("x,y\n1,2\n")
            with self.assertRaisesRegex(ValueError, "lon_col=") as caught:
                satclip.embed_file(str(bad), str(pathlib.Path(tmp, "o.npy")))
            self.assertNotIn("--lon-col", str(caught.exception))
            wrapped = pathlib.Path(tmp, "w.csv")
            wrapped.write_text("lon,lat\n190,2\n")
            self.assertEqual(satclip.embed_file(str(wrapped), str(pathlib.Path(tmp, "w.npy")), wrap_lon=True), 1)


class FineTuning(unittest.TestCase):
    def test_finetune_writes_a_model_the_encoder_loads(self):
        # A field of latitude and longitude the built-in model's frozen embedding does not hold exactly.
        rng = np.random.default_rng(0)
        lon, lat = rng.uniform(-180, 180, 600), np.degrees(np.arcsin(rng.uniform(-1, 1, 600)))
        target = np.cos(np.radians(lat)) * 30 + 5 * np.sin(np.radians(3 * lon))
        with tempfile.TemporaryDirectory() as tmp:
            task = pathlib.Path(tmp, "field.csv")
            task.write_text("lon,lat,target\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(lon, lat, target)))
            out = pathlib.Path(tmp, "tuned")
            report = satclip.finetune(str(task), str(out), epochs=20, learning_rate=3e-4)
            self.assertEqual((report["kind"], report["n_train"] + report["n_val"]), ("regression", 600))
            self.assertEqual(len(report["val_losses"]), report["epochs_run"] + 1)
            self.assertLessEqual(report["val_losses"][report["best_epoch"]], report["val_losses"][0])
            tuned, frozen = satclip.Encoder(str(out)), satclip.Encoder("default")
            points = np.stack([lon[:5], lat[:5]], axis=1)
            self.assertEqual(tuned.embed(points).shape, (5, 256))
            if report["best_epoch"] > 0:
                self.assertFalse(np.allclose(tuned.embed(points), frozen.embed(points)))
            with self.assertRaisesRegex(ValueError, "is not empty"):
                satclip.finetune(str(task), str(out))
            with self.assertRaisesRegex(ValueError, "neither regression nor classification"):
                satclip.finetune(str(task), str(pathlib.Path(tmp, "other")), kind="ordinal")
            with self.assertRaisesRegex(ValueError, "cv_blocks=0 is not in"):
                satclip.finetune(str(task), str(pathlib.Path(tmp, "other")), cv_blocks=0)
            blocks = satclip.finetune(str(task), str(pathlib.Path(tmp, "blocks")), epochs=2, cv_blocks=30)
            self.assertEqual((report["cv"], blocks["cv"]), ("interleaved", {"spatial_blocks": {"degrees": 30.0}}))
            self.assertIn("in blocks of 30°", blocks["head_init"])

            # Predictions: the head on the tuned embedding, in the task's units, as the CLI writes them.
            model = satclip.FineTuned(str(out))
            self.assertEqual((model.kind, model.classes), ("regression", None))
            predicted = model.predict(points)
            self.assertEqual(predicted.shape, (5,))
            self.assertAlmostEqual(float(model.predict(points[0])), float(predicted[0]), places=12)
            residual = model.predict(np.stack([lon, lat], axis=1)) - target
            self.assertLess(np.mean(residual**2), 0.2 * np.var(target))
            with self.assertRaisesRegex(ValueError, "not class probabilities"):
                model.predict_proba(points)

    def test_a_fine_tuned_classifier_predicts_names_and_probabilities(self):
        rng = np.random.default_rng(1)
        lon, lat = rng.uniform(-180, 180, 300), rng.uniform(-80, 80, 300)
        with tempfile.TemporaryDirectory() as tmp:
            task = pathlib.Path(tmp, "hemisphere.csv")
            rows = "".join(f"{a},{b},{'north' if b > 0 else 'south'}\n" for a, b in zip(lon, lat))
            task.write_text("lon,lat,target\n" + rows)
            out = pathlib.Path(tmp, "tuned")
            satclip.finetune(str(task), str(out), epochs=2)
            model = satclip.FineTuned(str(out))
            self.assertEqual((model.kind, model.classes), ("classification", ["north", "south"]))
            places = [[10.75, 59.91], [18.42, -33.92]]
            self.assertEqual(model.predict(places), ["north", "south"])
            self.assertEqual(model.predict(places[1]), "south")
            p = model.predict_proba(places)
            self.assertEqual(p.shape, (2, 2))
            np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
            self.assertTrue(p[0, 0] > 0.5 and p[1, 1] > 0.5)
        with self.assertRaisesRegex(ValueError, "written by `satclip finetune`"):
            satclip.FineTuned(str(pathlib.Path(__file__).parent))


class _StandInHub:
    """The Hugging Face Hub's answers for one file, on 127.0.0.1: the resolve URL gives the commit,
    SHA-256 and size in headers and redirects to /lfs/<sha256> on another origin (a second port, as
    the Hub sends clients to its storage hosts), which serves the bytes."""

    def __init__(self, repo, filename, commit, data):
        import hashlib
        import http.server
        import threading

        sha = hashlib.sha256(data).hexdigest()
        self.transfers = 0
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body):
                resolve = {f"/{repo}/resolve/{rev}/{filename}" for rev in ("main", commit)}
                if self.path in resolve:
                    self.send_response(302)
                    self.send_header("Location", f"{hub.storage}/lfs/{sha}")
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("X-Linked-Etag", f'"{sha}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                    self.send_header("ETag", '"0123456789abcdef0123456789abcdef01234567"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == f"/lfs/{sha}":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        hub.transfers += 1
                        self.wfile.write(data)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
        self.endpoint, self.storage = (f"http://127.0.0.1:{s.server_address[1]}" for s in self.servers)
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


class HuggingFaceCache(unittest.TestCase):
    """satclip and huggingface_hub share one cache: each finds, offline, what the other fetched."""

    REPO, FILE, COMMIT = "microsoft/SatCLIP-ResNet18-L10", "satclip-resnet18-l10.ckpt", "5" * 40

    def setUp(self):
        self.ckpt = fixture("satclip-resnet18-l10.ckpt")
        self.hub = _StandInHub(self.REPO, self.FILE, self.COMMIT, self.ckpt.read_bytes())
        self.tmp = tempfile.TemporaryDirectory()
        self.saved = dict(os.environ)

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved)
        self.hub.close()
        self.tmp.cleanup()

    def huggingface_hub(self, cache, offline):
        import subprocess
        import sys

        flag = "1" if offline else "0"
        env = dict(os.environ, HF_ENDPOINT=self.hub.endpoint, HF_HUB_CACHE=cache, HF_HUB_OFFLINE=flag)
        code = f"from huggingface_hub import hf_hub_download; print(hf_hub_download({self.REPO!r}, {self.FILE!r}))"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def use(self, cache, offline):
        os.environ.update(HF_ENDPOINT=self.hub.endpoint, HF_HUB_CACHE=cache, HF_HUB_OFFLINE="1" if offline else "0")

    def test_huggingface_hub_finds_what_satclip_fetched(self):
        cache = os.path.join(self.tmp.name, "a")
        self.use(cache, offline=False)
        path = satclip.download("microsoft/SatCLIP-ResNet18-L10")
        points = [[2.35, 48.86], [-58.38, -34.6]]
        by_name = satclip.Encoder("resnet18-l10").embed(points, dtype="float64")
        by_file = satclip.Encoder(str(self.ckpt)).embed(points, dtype="float64")
        np.testing.assert_array_equal(by_name, by_file)
        self.assertEqual(self.hub.transfers, 1)
        self.assertEqual(self.huggingface_hub(cache, offline=True), path)
        row = next(m for m in satclip.models() if m["name"] == "resnet18-l10")
        self.assertEqual((row["status"], row["path"], row["L"]), ("cached", path, 10))

    def test_satclip_finds_what_huggingface_hub_fetched(self):
        cache = os.path.join(self.tmp.name, "b")
        path = self.huggingface_hub(cache, offline=False)
        self.assertEqual(self.hub.transfers, 1)
        self.use(cache, offline=True)
        self.assertEqual(satclip.download("resnet18-l10"), path)
        self.assertEqual(satclip.Encoder("microsoft/SatCLIP-ResNet18-L10").dim, 256)
        self.assertEqual(self.hub.transfers, 1)

    def test_offline_without_the_file_says_what_to_do(self):
        self.use(os.path.join(self.tmp.name, "empty"), offline=True)
        with self.assertRaisesRegex(ValueError, "HF_HUB_OFFLINE is set.*satclip download"):
            satclip.Encoder("vit16-l40")


if __name__ == "__main__":
    unittest.main()
