"""Plots a training run's loss curve (metrics.jsonl written by `satclip train`) to a PNG.

Usage: python scripts/plot_metrics.py RUN_DIR OUT.png   (needs matplotlib; bench/.venv has it)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

run, out = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
steps = [r["step"] for r in rows]
train = [r["train_loss"] for r in rows]
val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
ax.plot(steps, train, lw=0.8, alpha=0.6, label="train loss (per step)")
if val:
    ax.plot([s for s, _ in val], [v for _, v in val], lw=2, label="validation loss (per epoch)")
ax.set_xlabel("optimiser step (batch 8192)")
ax.set_ylabel("symmetric CLIP loss")
ax.set_title("satclip-bluemarble-l10 pretraining")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(out)
print(f"wrote {out}")
