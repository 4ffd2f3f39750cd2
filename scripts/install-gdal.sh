#!/usr/bin/env bash
# A virtual environment with GDAL (through rasterio's wheels), rio-cogeo's validator and
# geopandas, for the tests that check satclip's Cloud-Optimized GeoTIFFs and GeoParquet with the
# GIS stack itself: target/gdal-venv.
# Usage: scripts/install-gdal.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/gdal-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import rasterio, rio_cogeo, geopandas" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet rasterio==1.4.4 rio-cogeo==7.0.4 geopandas==1.2.0 pyarrow==26.0.1
fi
"$venv/bin/python" -c "import rasterio; print('GDAL', rasterio.__gdal_version__, 'in', '$venv')"
