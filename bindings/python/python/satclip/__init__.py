"""SatCLIP location embeddings from the Rust core, with NumPy arrays in and out.

`satclip.Encoder(spec)` loads any model (`default`, `vit16-l40`, a `.ckpt`, `geoclip`, ...);
`satclip.finetune(task, out)` trains one end to end on a task file's labels, and
`satclip.FineTuned(out).predict(lonlat)` predicts with it;
`satclip.spark`, `satclip.dask` and `satclip.ray` embed the frames of those engines, or embed
and write them as the command line's Parquet files (`write_parquet`).
"""

from ._native import (  # noqa: F401
    Encoder,
    FineTuned,
    __version__,
    download,
    embed_file,
    encoders,
    finetune,
    models,
    points_from_wkb,
)

__all__ = ["Encoder", "FineTuned", "download", "embed_file", "encoders", "finetune", "models", "points_from_wkb", "__version__"]
