//! Writing float32 GeoTIFFs: one strip per row, bands interleaved by pixel, uncompressed, with
//! the pixel scale, tie point and GeoKeys (EPSG 4326 or a projected EPSG code) that GDAL,
//! rasterio and QGIS read. Rows are streamed to a temporary file renamed into place by
//! [`GeoTiffWriter::finish`]; rasters past 4 GiB are written as BigTIFF.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::geotiff::{
    GeoReference, GEOGRAPHIC_TYPE_KEY, GEO_KEY_DIRECTORY, MODEL_PIXEL_SCALE, MODEL_TIEPOINT, PROJECTED_CS_TYPE_KEY,
};

const GDAL_NODATA: u16 = 42113;
/// GDAL's metadata tag: `<GDALMetadata><Item name="…">…</Item></GDALMetadata>`, which
/// `gdalinfo` lists and rasterio returns from `tags()`.
pub const GDAL_METADATA: u16 = 42112;
const GT_MODEL_TYPE_KEY: u16 = 1024;
const GT_RASTER_TYPE_KEY: u16 = 1025;
/// Classic TIFF offsets are 32-bit; leave room for the tag arrays after the pixels.
const CLASSIC_LIMIT: u64 = u32::MAX as u64 - (64 << 20);

// TIFF field types.
pub(crate) const ASCII: u16 = 2;
pub(crate) const SHORT: u16 = 3;
pub(crate) const LONG: u16 = 4;
const DOUBLE: u16 = 12;
pub(crate) const LONG8: u16 = 16;

/// What a raster holds and where it lies.
#[derive(Clone, Copy, Debug)]
pub struct RasterLayout {
    pub width: usize,
    pub height: usize,
    /// Float32 samples per pixel.
    pub bands: usize,
    pub georef: GeoReference,
    /// Recorded for GDAL (NaN is the usual choice for float rasters).
    pub nodata: Option<f32>,
}

pub struct GeoTiffWriter {
    file: AtomicFile,
    out: BufWriter<File>,
    layout: RasterLayout,
    rows_written: usize,
    big: bool,
    metadata: Vec<(String, String)>,
}

impl GeoTiffWriter {
    /// Starts `path`, as BigTIFF when the pixels alone would pass classic TIFF's 4 GiB.
    pub fn create(path: &Path, layout: RasterLayout) -> Result<Self> {
        let RasterLayout { width, height, bands, .. } = layout;
        let bytes = (width as u64).checked_mul(height as u64).and_then(|p| p.checked_mul(bands as u64 * 4));
        let bytes = bytes.filter(|&b| b > 0).ok_or_else(|| Error::format(path, "an empty raster"))?;
        Self::create_as(path, layout, bytes > CLASSIC_LIMIT)
    }

    pub(crate) fn create_as(path: &Path, layout: RasterLayout, big: bool) -> Result<Self> {
        let RasterLayout { width, height, bands, .. } = layout;
        if bands > u16::MAX as usize || width > u32::MAX as usize || height > u32::MAX as usize {
            return Err(Error::format(path, format!("{width}×{height}×{bands} is too large for a TIFF")));
        }
        let mut file = AtomicFile::create(path)?;
        let mut out = file.writer()?;
        // The first IFD's offset is patched in by `finish`.
        let header: &[u8] =
            if big { &[b'I', b'I', 43, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] } else { b"II\x2a\0\0\0\0\0" };
        out.write_all(header).map_err(|e| Error::io(path, e))?;
        Ok(Self { file, out, layout, rows_written: 0, big, metadata: Vec::new() })
    }

    /// Dataset-level metadata items (name, value) for GDAL's metadata tag.
    pub fn with_metadata(mut self, items: Vec<(String, String)>) -> Self {
        self.metadata = items;
        self
    }

    /// Appends whole rows: `values[(row · width + col) · bands + band]`.
    pub fn write_rows(&mut self, values: &[f32]) -> Result<()> {
        let row = self.layout.width * self.layout.bands;
        if values.len() % row != 0 || self.rows_written + values.len() / row > self.layout.height {
            return Err(Error::format(
                self.file.target(),
                format!(
                    "{} values are not whole rows of the {} still to write",
                    values.len(),
                    self.layout.height - self.rows_written
                ),
            ));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.write_all(&bytes).map_err(|e| Error::io(self.file.target(), e))?;
        self.rows_written += values.len() / row;
        Ok(())
    }

    /// An offset or count as the format stores it: 8 bytes in BigTIFF, 4 in classic TIFF.
    fn offset_bytes(&self, value: u64) -> Vec<u8> {
        if self.big {
            value.to_le_bytes().to_vec()
        } else {
            (value as u32).to_le_bytes().to_vec()
        }
    }

    /// Writes the tags and renames the file into place; every row must have been written.
    pub fn finish(mut self) -> Result<()> {
        let path = self.file.target().to_path_buf();
        if self.rows_written != self.layout.height {
            return Err(Error::format(&path, format!("{} of {} rows written", self.rows_written, self.layout.height)));
        }
        let header_len = if self.big { 16u64 } else { 8 };
        let row_bytes = (self.layout.width * self.layout.bands * 4) as u64;
        let offsets: Vec<u64> = (0..self.layout.height as u64).map(|r| header_len + r * row_bytes).collect();
        let counts = vec![row_bytes; self.layout.height];
        let short = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let offsets_type = if self.big { LONG8 } else { LONG };
        let offsets_field = |v: &[u64]| v.iter().flat_map(|x| self.offset_bytes(*x)).collect::<Vec<u8>>();
        let mut fields: Vec<Field> = vec![
            (256, LONG, 1, (self.layout.width as u32).to_le_bytes().to_vec()),
            (257, LONG, 1, (self.layout.height as u32).to_le_bytes().to_vec()),
            (258, SHORT, self.layout.bands as u64, short(&vec![32; self.layout.bands])),
            (259, SHORT, 1, short(&[1])),
            (262, SHORT, 1, short(&[1])),
            (273, offsets_type, self.layout.height as u64, offsets_field(&offsets)),
            (277, SHORT, 1, short(&[self.layout.bands as u16])),
            (278, LONG, 1, 1u32.to_le_bytes().to_vec()),
            (279, offsets_type, self.layout.height as u64, offsets_field(&counts)),
            (284, SHORT, 1, short(&[1])),
            (339, SHORT, self.layout.bands as u64, short(&vec![3; self.layout.bands])),
        ];
        fields.extend(georeference_fields(&self.layout.georef));
        if self.layout.bands > 1 {
            // Grey is the first sample; the others are declared as extra ("unspecified") samples,
            // as GDAL expects of a multi-band MinIsBlack image.
            fields.push((338, SHORT, self.layout.bands as u64 - 1, short(&vec![0; self.layout.bands - 1])));
        }
        fields.extend(nodata_field(self.layout.nodata));
        fields.extend(metadata_field(&self.metadata));
        // A directory lists its tags in ascending order.
        fields.sort_by_key(|f| f.0);

        // Values too long for the entry go after the pixels (word-aligned), then the IFD.
        let inline = if self.big { 8 } else { 4 };
        let mut position = header_len + row_bytes * self.layout.height as u64;
        let mut entries = Vec::with_capacity(fields.len());
        let io = |e| Error::io(&path, e);
        for (tag, kind, count, bytes) in &fields {
            if bytes.len() <= inline {
                let mut value = bytes.clone();
                value.resize(inline, 0);
                entries.push((*tag, *kind, *count, value));
            } else {
                let offset = self.offset_bytes(position);
                self.out.write_all(bytes).map_err(io)?;
                position += bytes.len() as u64;
                if position % 2 == 1 {
                    self.out.write_all(&[0]).map_err(io)?;
                    position += 1;
                }
                entries.push((*tag, *kind, *count, offset));
            }
        }
        let ifd = position;
        let mut directory = Vec::new();
        if self.big {
            directory.extend((entries.len() as u64).to_le_bytes());
        } else {
            directory.extend((entries.len() as u16).to_le_bytes());
        }
        for (tag, kind, count, value) in entries {
            directory.extend(tag.to_le_bytes());
            directory.extend(kind.to_le_bytes());
            directory.extend(self.offset_bytes(count));
            directory.extend(value);
        }
        directory.extend(self.offset_bytes(0)); // no next directory
        let ifd = self.offset_bytes(ifd);
        self.out.write_all(&directory).map_err(io)?;
        self.out.flush().map_err(io)?;
        drop(self.out);
        let file = self.file.file();
        file.seek(SeekFrom::Start(if self.big { 8 } else { 4 })).map_err(io)?;
        file.write_all(&ifd).map_err(io)?;
        self.file.commit()
    }
}

/// A TIFF field: tag, type, count and the value's bytes.
pub(crate) type Field = (u16, u16, u64, Vec<u8>);

/// The georeferencing tags GDAL reads: pixel scale, tie point and GeoKeys (EPSG 4326 or a
/// projected EPSG code, PixelIsArea).
pub(crate) fn georeference_fields(g: &GeoReference) -> Vec<Field> {
    let short = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let doubles = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let geographic = g.epsg == 4326;
    let keys: Vec<u16> = [
        [1, 1, 0, 3],
        [GT_MODEL_TYPE_KEY, 0, 1, if geographic { 2 } else { 1 }],
        // PixelIsArea: the tie point is the corner of the top-left pixel.
        [GT_RASTER_TYPE_KEY, 0, 1, 1],
        [if geographic { GEOGRAPHIC_TYPE_KEY } else { PROJECTED_CS_TYPE_KEY }, 0, 1, g.epsg as u16],
    ]
    .concat();
    vec![
        (MODEL_PIXEL_SCALE, DOUBLE, 3, doubles(&[g.pixel_size[0], g.pixel_size[1], 0.0])),
        (MODEL_TIEPOINT, DOUBLE, 6, doubles(&[0.0, 0.0, 0.0, g.origin[0], g.origin[1], 0.0])),
        (GEO_KEY_DIRECTORY, SHORT, keys.len() as u64, short(&keys)),
    ]
}

/// GDAL's nodata tag, as text.
pub(crate) fn nodata_field(nodata: Option<f32>) -> Option<Field> {
    let nodata = nodata?;
    let mut text = if nodata.is_nan() { "nan".to_string() } else { nodata.to_string() }.into_bytes();
    text.push(0);
    Some((GDAL_NODATA, ASCII, text.len() as u64, text))
}

/// GDAL's metadata tag holding `items`, if there are any.
pub(crate) fn metadata_field(items: &[(String, String)]) -> Option<Field> {
    metadata_field_with_scales(items, &[])
}

/// GDAL's metadata tag with `items` and, per band, the scale and offset that turn stored
/// integers into values (GDAL's `role="scale"` / `role="offset"` items, which rasterio reads as
/// `scales` and `offsets`).
pub(crate) fn metadata_field_with_scales(items: &[(String, String)], scales: &[(f32, f32)]) -> Option<Field> {
    if items.is_empty() && scales.is_empty() {
        return None;
    }
    let mut xml = String::from("<GDALMetadata>\n");
    for (name, value) in items {
        xml.push_str(&format!("  <Item name=\"{}\">{}</Item>\n", xml_escape(name), xml_escape(value)));
    }
    for (band, (scale, offset)) in scales.iter().enumerate() {
        xml.push_str(&format!("  <Item name=\"SCALE\" sample=\"{band}\" role=\"scale\">{scale:e}</Item>\n"));
        xml.push_str(&format!("  <Item name=\"OFFSET\" sample=\"{band}\" role=\"offset\">{offset:e}</Item>\n"));
    }
    xml.push_str("</GDALMetadata>");
    let mut text = xml.into_bytes();
    text.push(0);
    Some((GDAL_METADATA, ASCII, text.len() as u64, text))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The items of a TIFF's GDAL metadata tag, if it has one.
pub fn read_gdal_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    crate::guard_decoder(path, "TIFF", || {
        let file = crate::open_regular(path)?;
        let bad = |e: tiff::TiffError| Error::format(path, format!("not a readable TIFF: {e}"));
        let mut limits = tiff::decoder::Limits::default();
        limits.ifd_value_size = 1 << 20;
        let mut decoder = tiff::decoder::Decoder::new(std::io::BufReader::new(file)).map_err(bad)?.with_limits(limits);
        let Some(xml) = decoder.find_tag(tiff::tags::Tag::Unknown(GDAL_METADATA)).map_err(bad)? else {
            return Ok(Vec::new());
        };
        let xml = xml.into_string().map_err(bad)?;
        let unescape =
            |t: &str| t.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
        let mut items = Vec::new();
        for part in xml.split("<Item ").skip(1) {
            let Some((head, rest)) = part.split_once('>') else { continue };
            let Some(value) = rest.split("</Item>").next() else { continue };
            let name = head.split("name=\"").nth(1).and_then(|n| n.split('"').next()).unwrap_or_default();
            items.push((unescape(name), unescape(value)));
        }
        Ok(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(big: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.tif");
        let georef = GeoReference { epsg: 4326, origin: [-10.0, 50.0], pixel_size: [0.5, 0.25] };
        let (width, height, bands) = (3, 5, 4);
        let values: Vec<f32> = (0..width * height * bands).map(|i| i as f32 * 0.5 - 7.0).collect();
        let layout = RasterLayout { width, height, bands, georef, nodata: Some(f32::NAN) };
        let mut writer = GeoTiffWriter::create_as(&path, layout, big).unwrap();
        writer.write_rows(&values[..2 * width * bands]).unwrap();
        assert!(!path.exists(), "nothing under the target name before finish");
        writer.write_rows(&values[2 * width * bands..]).unwrap();
        writer.finish().unwrap();
        let raster = crate::geotiff::read(&path).unwrap();
        assert_eq!((raster.width, raster.height, raster.bands), (width, height, bands));
        assert_eq!(raster.data, values);
        assert_eq!(raster.georef, Some(georef));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[2..4], if big { &[43, 0] } else { &[42, 0] });
    }

    #[test]
    fn classic_tiff_round_trips_values_and_georeference() {
        round_trip(false);
    }

    #[test]
    fn bigtiff_round_trips_values_and_georeference() {
        round_trip(true);
    }

    #[test]
    fn projected_rasters_keep_their_epsg_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("utm.tif");
        let georef = GeoReference { epsg: 32633, origin: [500_000.0, 5_000_000.0], pixel_size: [10.0, 10.0] };
        let layout = RasterLayout { width: 2, height: 2, bands: 1, georef, nodata: None };
        let mut writer = GeoTiffWriter::create(&path, layout).unwrap();
        writer.write_rows(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        writer.finish().unwrap();
        assert_eq!(crate::geotiff::read(&path).unwrap().georef, Some(georef));
    }

    #[test]
    fn missing_or_extra_rows_are_errors_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.tif");
        let georef = GeoReference { epsg: 4326, origin: [0.0, 0.0], pixel_size: [1.0, 1.0] };
        let layout = RasterLayout { width: 2, height: 2, bands: 1, georef, nodata: None };
        let mut writer = GeoTiffWriter::create(&path, layout).unwrap();
        assert!(writer.write_rows(&[1.0, 2.0, 3.0]).is_err(), "not whole rows");
        writer.write_rows(&[1.0, 2.0]).unwrap();
        let err = writer.finish().unwrap_err().to_string();
        assert!(err.contains("short.tif") && err.contains("1 of 2 rows"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
