"""satclip inside Spark (local[2]), Dask (a LocalCluster of two worker processes) and Ray (local):
each gives exactly the embeddings `satclip embed` writes for the same points, follows the
invalid-row policy, and loads the model once per worker process; each one's `write_parquet`
writes the command line's files (GeoParquet metadata and provenance included).

The engines are installed by test.sh; a missing one skips (a failure under CI).
"""

import os
import sys
import tempfile
import unittest

import numpy as np

import satclip
from test_satclip import skip

N = 3000


def _points():
    rng = np.random.default_rng(7)
    lon = rng.uniform(-180, 180, N)
    lat = rng.uniform(-90, 90, N)
    return lon, lat


class _Engine:
    """Shared: the input table, the CLI's embeddings of it, and the checks."""

    @classmethod
    def setUpClass(cls):
        try:
            import pandas as pd
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            skip(f"pandas/pyarrow are not installed: {e}")
        lon, lat = _points()
        cls.frame = pd.DataFrame({"id": np.arange(N), "lon": lon, "lat": lat})
        cls.tmp = tempfile.TemporaryDirectory()
        source = os.path.join(cls.tmp.name, "points.parquet")
        target = os.path.join(cls.tmp.name, "embedded.parquet")
        pq.write_table(pa.Table.from_pandas(cls.frame, preserve_index=False), source)
        # The command line's own path (the Python binding calls the same Rust function).
        satclip.embed_file(source, target)
        table = pq.read_table(target)
        cls.expected = np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
        cls.provenance = pq.read_metadata(target).metadata[b"satclip"]
        bad = cls.frame.iloc[:6].copy()
        bad.loc[2, "lat"] = 95.0
        bad.loc[4, "lon"] = np.nan
        cls.bad = bad

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, frame):
        """`frame` (pandas, any order) has each id's CLI embedding, bit for bit."""
        frame = frame.sort_values("id")
        got = np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
        self.assertEqual(got.shape, (N, 256))
        np.testing.assert_array_equal(got, self.expected)

    def check_dataset(self, write):
        """`write(directory, mode)` (an engine's write_parquet) writes the command line's files,
        refuses a directory that holds files, and replaces its part files when told to."""
        import pyarrow.parquet as pq

        directory = os.path.join(self.tmp.name, f"dataset-{type(self).__name__}")
        self.assertEqual(write(directory, "error"), N)
        files = sorted(os.listdir(directory))
        self.assertTrue(len(files) > 1 and all(f.startswith("part-") and f.endswith(".parquet") for f in files), files)
        for name in files:
            metadata = pq.read_metadata(os.path.join(directory, name)).metadata
            self.assertEqual(metadata[b"satclip"], self.provenance, name)
            self.assertIn(b"geo", metadata, name)
        self.check(pq.read_table(directory).to_pandas())
        with self.assertRaises(FileExistsError):
            write(directory, "error")
        self.assertEqual(write(directory, "overwrite"), N)
        self.assertEqual(sorted(os.listdir(directory)), files)

    def check_nulls(self, frame):
        frame = frame.sort_values("id")
        import pandas as pd

        missing = [i for i, v in zip(frame["id"], frame["embedding"]) if np.ndim(v) == 0 and pd.isna(v)]
        self.assertEqual(missing, [2, 4])

    def check_null_dataset(self, write):
        """`write(directory)` (an engine's write_parquet with on_invalid="null") of the six rows
        with two bad points writes all six: null embeddings for the bad, the CLI's for the rest."""
        import pyarrow.parquet as pq

        directory = os.path.join(self.tmp.name, f"nulls-{type(self).__name__}")
        self.assertEqual(write(directory), 6)
        frame = pq.read_table(directory).to_pandas()
        self.check_nulls(frame)
        for i, v in zip(frame["id"], frame["embedding"]):
            if i not in (2, 4):
                np.testing.assert_array_equal(np.asarray(v, dtype=np.float32), self.expected[i])


class Spark(_Engine, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:
            skip(f"pyspark is not installed: {e}")
        # Spark's Python workers run this interpreter (the one with the wheel), as on a cluster
        # whose environment ships with spark.archives.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        cls.spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "700")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        # The invalid-row test fails tasks on purpose; the JVM would log each failure with its
        # stack trace (hundreds of lines). The exception still reaches the driver and the test.
        cls.spark.sparkContext.setLogLevel("OFF")

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()
        super().tearDownClass()

    def test_embeddings_equal_the_command_lines(self):
        import satclip.spark

        df = self.spark.createDataFrame(self.frame).repartition(4)
        out = satclip.spark.embed(df, "default").toPandas()
        self.check(out)
        # One load per Python worker process (Spark reuses them between tasks).
        counts = self.spark.sparkContext.parallelize(range(8), 8).map(lambda _: __import__("satclip._arrow").__dict__["_arrow"].loads("default")).collect()
        self.assertTrue(max(counts) <= 1, counts)

    def test_invalid_rows(self):
        import satclip.spark

        df = self.spark.createDataFrame(self.bad)
        self.check_nulls(satclip.spark.embed(df, "default", on_invalid="null").toPandas())
        with self.assertRaisesRegex(Exception, r"row \d+: lon=\S+, lat=\S+ \(pass on_invalid='null'"):
            satclip.spark.embed(df, "default").collect()
        # A bad row in the partition's third Arrow batch (700 rows each here) is named by its
        # place in the partition.
        import pandas as pd

        rows = pd.DataFrame({"lon": np.linspace(-170, 170, 2000), "lat": np.linspace(-80, 80, 2000)})
        rows.loc[1650, "lat"] = 95.0
        with self.assertRaisesRegex(Exception, r"partition 0, row 1650: lon=\S+, lat=95.0 "):
            satclip.spark.embed(self.spark.createDataFrame(rows).coalesce(1), "default").collect()

    def test_write_parquet_writes_the_command_lines_files(self):
        import satclip.spark

        df = self.spark.createDataFrame(self.frame).repartition(4)
        self.check_dataset(lambda path, mode: satclip.spark.write_parquet(df, path, "default", mode=mode))
        bad = os.path.join(self.tmp.name, "bad-spark")
        with self.assertRaisesRegex(Exception, r"Spark partition 0: row 3, field `lat`"):
            satclip.spark.write_parquet(self.spark.createDataFrame(self.bad).coalesce(1), bad)
        self.assertEqual(os.listdir(bad), [], "no file of a failed partition")
        self.check_null_dataset(
            lambda path: satclip.spark.write_parquet(self.spark.createDataFrame(self.bad).coalesce(1), path, on_invalid="null")
        )


class Dask(_Engine, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            import dask.dataframe  # noqa: F401
            from distributed import Client, LocalCluster
        except ImportError as e:
            skip(f"dask[dataframe] and distributed are not installed: {e}")
        cls.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        cls.client = Client(cls.cluster)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()
        super().tearDownClass()

    def test_embeddings_equal_the_command_lines(self):
        import dask.dataframe as dd

        import satclip.dask

        ddf = dd.from_pandas(self.frame, npartitions=6)
        self.check(satclip.dask.embed(ddf, "default").compute())
        loads = self.client.run(lambda: __import__("satclip._arrow").__dict__["_arrow"].loads("default"))
        self.assertEqual(sorted(loads.values()), [1, 1], loads)

    def test_invalid_rows(self):
        import dask.dataframe as dd

        import satclip.dask

        ddf = dd.from_pandas(self.bad, npartitions=2)
        self.check_nulls(satclip.dask.embed(ddf, "default", on_invalid="null").compute())
        with self.assertRaisesRegex(Exception, r"row \d+: lon=\S+, lat=\S+ \(pass on_invalid='null'"):
            satclip.dask.embed(ddf, "default").compute()

    def test_write_parquet_writes_the_command_lines_files(self):
        import dask.dataframe as dd

        import satclip.dask

        ddf = dd.from_pandas(self.frame, npartitions=6)
        self.check_dataset(lambda path, mode: satclip.dask.write_parquet(ddf, path, "default", mode=mode))
        with self.assertRaisesRegex(Exception, r"Dask partition 0: row 3, field `lat`"):
            satclip.dask.write_parquet(dd.from_pandas(self.bad, npartitions=1), os.path.join(self.tmp.name, "bad-dask"))
        self.check_null_dataset(lambda path: satclip.dask.write_parquet(dd.from_pandas(self.bad, npartitions=2), path, on_invalid="null"))


class Ray(_Engine, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            import ray
        except ImportError as e:
            skip(f"ray is not installed: {e}")
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)

    @classmethod
    def tearDownClass(cls):
        import ray

        ray.shutdown()
        super().tearDownClass()

    def test_embeddings_equal_the_command_lines(self):
        import ray

        import satclip.ray

        ds = ray.data.from_pandas(self.frame).repartition(4)
        self.check(satclip.ray.embed(ds, "default", concurrency=2, batch_size=1000).to_pandas())

    def test_invalid_rows(self):
        import ray

        import satclip.ray

        ds = ray.data.from_pandas(self.bad)
        self.check_nulls(satclip.ray.embed(ds, "default", on_invalid="null").to_pandas())
        with self.assertRaisesRegex(Exception, r"row \d+: lon=\S+, lat=\S+ \(pass on_invalid='null'"):
            satclip.ray.embed(ds, "default").to_pandas()

    def test_write_parquet_writes_the_command_lines_files(self):
        import ray

        import satclip.ray

        ds = ray.data.from_pandas(self.frame).repartition(4)
        self.check_dataset(lambda path, mode: satclip.ray.write_parquet(ds, path, "default", mode=mode))
        with self.assertRaisesRegex(Exception, r"Ray write task \d+: row 3, field `lat`"):
            satclip.ray.write_parquet(ray.data.from_pandas(self.bad), os.path.join(self.tmp.name, "bad-ray"))
        self.check_null_dataset(lambda path: satclip.ray.write_parquet(ray.data.from_pandas(self.bad), path, on_invalid="null"))


if __name__ == "__main__":
    unittest.main()
