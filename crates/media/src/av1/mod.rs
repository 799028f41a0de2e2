//! AV1 bitstreams: OBU walking, the `av1C` record of the AV1 Codec ISO Media File Format
//! Binding, and the headers (AV1 specification section 5) down to where tile data is.

mod frame_header;
mod sequence_header;
mod tile_group;

pub use frame_header::{FrameHeader, FrameSize, FrameType, ReferenceSlots, Segmentation, TileInfo};
pub use sequence_header::{DecoderModelInfo, FrameIdLengths, OperatingPoint, SequenceHeader};
pub use tile_group::{ObuLayout, TileLocator};

use crate::{MediaError, Result};

pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
pub const OBU_FRAME_HEADER: u8 = 3;
pub const OBU_TILE_GROUP: u8 = 4;
pub const OBU_METADATA: u8 = 5;
pub const OBU_FRAME: u8 = 6;
pub const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
pub const OBU_PADDING: u8 = 15;

/// One OBU inside a temporal unit, as byte ranges into the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu {
    pub obu_type: u8,
    /// `temporal_id` and `spatial_id` of the extension header; 0 without one.
    pub temporal_id: u8,
    pub spatial_id: u8,
    /// Offset of the OBU header.
    pub start: usize,
    /// Offset of the payload (after header, extension and size field).
    pub payload_start: usize,
    /// Offset one past the payload.
    pub end: usize,
}

/// Reads a `leb128()` value; returns (value, bytes used).
pub fn read_leb128(data: &[u8]) -> Result<(u64, usize)> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let byte = *data.get(i).ok_or(MediaError::Truncated {
            what: "AV1 leb128",
            needed: i + 1,
            had: data.len(),
        })?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(MediaError::Invalid {
        what: "AV1 leb128",
        problem: "longer than 8 bytes".into(),
    })
}

/// Writes `value` as `leb128()`.
pub fn write_leb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Walks the OBUs of a temporal unit in low-overhead bitstream format (every OBU carries
/// `obu_has_size_field`; the last may omit it and run to the end). Never trusts a size field.
pub fn obus(data: &[u8]) -> Result<Vec<Obu>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        if header & 0x80 != 0 {
            return Err(MediaError::Invalid {
                what: "AV1 OBU header",
                problem: format!("forbidden bit set at byte {pos}"),
            });
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut p = pos + 1 + usize::from(has_extension);
        if p > data.len() {
            return Err(MediaError::Truncated {
                what: "AV1 OBU header",
                needed: p,
                had: data.len(),
            });
        }
        let size = if has_size {
            let (size, n) = read_leb128(&data[p..])?;
            p += n;
            usize::try_from(size).map_err(|_| MediaError::Invalid {
                what: "AV1 OBU size",
                problem: format!("{size} does not fit in memory"),
            })?
        } else {
            data.len() - p
        };
        let end =
            p.checked_add(size)
                .filter(|&e| e <= data.len())
                .ok_or(MediaError::Truncated {
                    what: "AV1 OBU payload",
                    needed: p.saturating_add(size),
                    had: data.len(),
                })?;
        let extension = if has_extension { data[pos + 1] } else { 0 };
        out.push(Obu {
            obu_type,
            temporal_id: extension >> 5,
            spatial_id: (extension >> 3) & 3,
            start: pos,
            payload_start: p,
            end,
        });
        pos = end;
    }
    Ok(out)
}

/// Removes temporal delimiter (and padding) OBUs: an ISO-BMFF AV1 sample must not carry them.
pub fn strip_temporal_delimiters(data: &[u8]) -> Result<Vec<u8>> {
    let list = obus(data)?;
    let mut out = Vec::with_capacity(data.len());
    for obu in list {
        if obu.obu_type != OBU_TEMPORAL_DELIMITER && obu.obu_type != OBU_PADDING {
            out.extend_from_slice(&data[obu.start..obu.end]);
        }
    }
    Ok(out)
}

/// `metadata_type` values of HDR static metadata (AV1 specification 6.7.1).
const METADATA_TYPE_HDR_CLL: u64 = 1;
const METADATA_TYPE_HDR_MDCV: u64 = 2;

/// The HDR static metadata in the metadata OBUs of a temporal unit (AV1 specification 5.8.3,
/// 5.8.4), in the units of the ISO-BMFF `mdcv` and `clli` boxes; `None` when it has none.
pub fn hdr_metadata(data: &[u8]) -> Result<Option<crate::HdrMetadata>> {
    let mut found = crate::HdrMetadata::default();
    for obu in obus(data)? {
        if obu.obu_type != OBU_METADATA {
            continue;
        }
        let payload = &data[obu.payload_start..obu.end];
        let (kind, n) = read_leb128(payload)?;
        let body = &payload[n..];
        match kind {
            METADATA_TYPE_HDR_CLL => found.light = Some(metadata_hdr_cll(body)?),
            METADATA_TYPE_HDR_MDCV => found.mastering = Some(metadata_hdr_mdcv(body)?),
            _ => {}
        }
    }
    Ok((found != crate::HdrMetadata::default()).then_some(found))
}

/// `metadata_hdr_cll()`: max_cll and max_fall, in cd/m².
fn metadata_hdr_cll(body: &[u8]) -> Result<crate::ContentLightLevel> {
    let b = take(body, 4, "AV1 metadata_hdr_cll")?;
    Ok(crate::ContentLightLevel {
        max_cll: u16::from_be_bytes([b[0], b[1]]),
        max_fall: u16::from_be_bytes([b[2], b[3]]),
    })
}

/// `metadata_hdr_mdcv()`: the primaries (red, green, blue) and white point as 0.16 fixed
/// point, the luminance as 24.8 (max) and 18.14 (min) fixed point; converted to `mdcv` units
/// (0.00002 and 0.0001 cd/m²).
fn metadata_hdr_mdcv(body: &[u8]) -> Result<crate::MasteringDisplay> {
    let b = take(body, 24, "AV1 metadata_hdr_mdcv")?;
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let chroma = |v: u16| ((u64::from(v) * 50_000 + 32_768) >> 16) as u16;
    let xy = |i: usize| (chroma(u16_at(i)), chroma(u16_at(i + 2)));
    let scaled = |v: u32, frac_bits: u32| {
        ((u64::from(v) * 10_000 + (1 << (frac_bits - 1))) >> frac_bits).min(u64::from(u32::MAX))
            as u32
    };
    Ok(crate::MasteringDisplay {
        primaries: [xy(0), xy(4), xy(8)],
        white_point: xy(12),
        max_luminance: scaled(u32_at(16), 8),
        min_luminance: scaled(u32_at(20), 14),
    })
}

fn take<'a>(body: &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8]> {
    body.get(..n).ok_or(MediaError::Truncated {
        what,
        needed: n,
        had: body.len(),
    })
}

/// The `AV1CodecConfigurationRecord` (`av1C`): the sequence header and the fields derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    pub sequence_header: SequenceHeader,
    /// The complete sequence header OBU (header and payload), stored as `configOBUs`.
    pub sequence_header_obu: Vec<u8>,
}

impl Av1Config {
    /// Finds the sequence header OBU in a temporal unit (or a bare OBU) and builds the record.
    pub fn from_obus(data: &[u8]) -> Result<Self> {
        for obu in obus(data)? {
            if obu.obu_type == OBU_SEQUENCE_HEADER {
                let sequence_header = SequenceHeader::parse(&data[obu.payload_start..obu.end])?;
                // Store the OBU with an explicit size field, as the binding requires.
                let mut sequence_header_obu = vec![data[obu.start] | 0x02];
                if data[obu.start] & 0x04 != 0 {
                    sequence_header_obu.push(data[obu.start + 1]);
                }
                write_leb128(
                    (obu.end - obu.payload_start) as u64,
                    &mut sequence_header_obu,
                );
                sequence_header_obu.extend_from_slice(&data[obu.payload_start..obu.end]);
                return Ok(Self {
                    sequence_header,
                    sequence_header_obu,
                });
            }
        }
        Err(MediaError::Invalid {
            what: "AV1 stream",
            problem: "no sequence header OBU".into(),
        })
    }

    /// Parses an `av1C` box payload.
    pub fn from_record(record: &[u8]) -> Result<Self> {
        if record.len() < 4 {
            return Err(MediaError::Truncated {
                what: "av1C",
                needed: 4,
                had: record.len(),
            });
        }
        if record[0] != 0x81 {
            return Err(MediaError::Invalid {
                what: "av1C",
                problem: format!("marker/version byte is {:#04x}, expected 0x81", record[0]),
            });
        }
        Self::from_obus(&record[4..])
    }

    /// The `av1C` box payload.
    pub fn to_record(&self) -> Vec<u8> {
        let s = &self.sequence_header;
        let mut out = vec![
            0x81,
            (s.profile << 5) | (s.level_idx & 0x1f),
            (s.tier << 7)
                | (u8::from(s.bit_depth > 8) << 6)
                | (u8::from(s.bit_depth == 12) << 5)
                | (u8::from(s.monochrome) << 4)
                | (u8::from(s.subsampling_x) << 3)
                | (u8::from(s.subsampling_y) << 2)
                | (s.chroma_sample_position & 3),
            0,
        ];
        out.extend_from_slice(&self.sequence_header_obu);
        out
    }

    /// RFC 6381 codec string, e.g. `av01.0.08M.08`; with the optional fields (monochrome,
    /// chroma subsampling and sample position, colour primaries, transfer characteristics,
    /// matrix coefficients, full range: AV1-ISOBMFF "Codecs Parameter String") when the
    /// colour is not their default (BT.709, limited range), e.g.
    /// `av01.0.08M.10.0.110.09.16.09.0` for HDR10.
    pub fn codec_string(&self) -> String {
        let s = &self.sequence_header;
        let mut out = format!(
            "av01.{}.{:02}{}.{:02}",
            s.profile,
            s.level_idx,
            if s.tier == 0 { 'M' } else { 'H' },
            s.bit_depth
        );
        let colour = (
            s.color_primaries,
            s.transfer_characteristics,
            s.matrix_coefficients,
            s.full_range,
        );
        // 2 is "unspecified": a stream that describes no colour keeps the short form.
        let described = colour.0 != 2 || colour.1 != 2 || colour.2 != 2;
        if described && colour != (1, 1, 1, false) {
            out.push_str(&format!(
                ".{}.{}{}{}.{:02}.{:02}.{:02}.{}",
                u8::from(s.monochrome),
                u8::from(s.subsampling_x),
                u8::from(s.subsampling_y),
                s.chroma_sample_position,
                colour.0,
                colour.1,
                colour.2,
                u8::from(colour.3)
            ));
        }
        out
    }
}

/// The lowest AV1 level (`seq_level_idx`, AV1 spec annex A.3) whose picture size and
/// display rate limits admit `width`x`height` at `frame_rate` frames per second.
pub fn level_for(width: u32, height: u32, frame_rate: f64) -> u8 {
    // (seq_level_idx, MaxPicSize, MaxHSize, MaxVSize, MaxDisplayRate)
    const LEVELS: [(u8, u64, u32, u32, u64); 12] = [
        (0, 147_456, 2048, 1152, 4_423_680),
        (1, 278_784, 2816, 1584, 8_363_520),
        (4, 665_856, 4352, 2448, 19_975_680),
        (5, 1_065_024, 5504, 3096, 31_950_720),
        (8, 2_359_296, 6144, 3456, 70_778_880),
        (9, 2_359_296, 6144, 3456, 141_557_760),
        (12, 8_912_896, 8192, 4352, 267_386_880),
        (13, 8_912_896, 8192, 4352, 534_773_760),
        (14, 8_912_896, 8192, 4352, 1_069_547_520),
        (16, 35_651_584, 16384, 8704, 1_069_547_520),
        (17, 35_651_584, 16384, 8704, 2_139_095_040),
        (18, 35_651_584, 16384, 8704, 4_278_190_080),
    ];
    let pic = u64::from(width) * u64::from(height);
    let rate = (pic as f64 * frame_rate).ceil() as u64;
    LEVELS
        .iter()
        .find(|&&(_, max_pic, max_w, max_h, max_rate)| {
            pic <= max_pic && width <= max_w && height <= max_h && rate <= max_rate
        })
        .map_or(31, |l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_for(1280, 720, 25.0), 5); // 3.1
        assert_eq!(level_for(1920, 1080, 30.0), 8); // 4.0
        assert_eq!(level_for(1920, 1080, 60.0), 9); // 4.1
        assert_eq!(level_for(426, 240, 25.0), 0); // 2.0
        assert_eq!(level_for(100_000, 10, 1.0), 31);
    }

    // A sequence header OBU for 8-bit 4:2:0 Main profile, level 4.0 (idx 8), 1280x720,
    // written by hand from the AV1 spec's syntax (reduced_still_picture_header = 0, one
    // operating point, no timing info).
    fn seq_header_obu() -> Vec<u8> {
        let mut w = crate::bits::BitWriter::default();
        let mut push = |v: u32, n: u32| {
            w.u(v, n);
        };
        push(0, 3); // profile
        push(0, 1); // still
        push(0, 1); // reduced
        push(0, 1); // timing info
        push(0, 1); // initial display delay
        push(0, 5); // op count - 1
        push(0, 12); // idc
        push(8, 5); // level 4.0
        push(0, 1); // tier (level > 7)
        push(10, 4); // width bits - 1 (11 bits)
        push(9, 4); // height bits - 1 (10 bits)
        push(1279, 11);
        push(719, 10);
        push(0, 1); // frame id numbers
        push(0, 3);
        push(0, 4);
        push(1, 1); // order hint
        push(0, 2);
        push(1, 1); // choose sct
        push(1, 1); // choose int mv
        push(6, 3); // order hint bits
        push(0, 3); // superres, cdef, restoration
        push(0, 1); // high bitdepth
        push(0, 1); // mono
        push(1, 1); // colour description
        push(1, 8);
        push(1, 8);
        push(1, 8);
        push(0, 1); // range
        push(0, 2); // csp
        push(0, 1); // separate uv
        push(0, 1); // film grain
        push(1, 1); // trailing one bit
        let payload = w.bytes(); // zero bits to the byte boundary
        let mut obu = vec![(OBU_SEQUENCE_HEADER << 3) | 0x02];
        write_leb128(payload.len() as u64, &mut obu);
        obu.extend(payload);
        obu
    }

    #[test]
    fn parses_sequence_header_and_builds_av1c() {
        let mut tu = vec![(OBU_TEMPORAL_DELIMITER << 3) | 0x02, 0];
        tu.extend(seq_header_obu());
        let cfg = Av1Config::from_obus(&tu).unwrap();
        let s = &cfg.sequence_header;
        assert_eq!((s.max_width, s.max_height), (1280, 720));
        assert_eq!((s.profile, s.level_idx, s.bit_depth), (0, 8, 8));
        assert_eq!((s.color_primaries, s.transfer_characteristics), (1, 1));
        assert!(s.subsampling_x && s.subsampling_y && !s.monochrome);
        assert_eq!(cfg.codec_string(), "av01.0.08M.08");
        let rec = cfg.to_record();
        assert_eq!(&rec[..4], &[0x81, 0x08, 0x0c, 0x00]);
        assert_eq!(Av1Config::from_record(&rec).unwrap(), cfg);
        let stripped = strip_temporal_delimiters(&tu).unwrap();
        assert_eq!(stripped, seq_header_obu());
    }

    /// The first temporal unit's OBUs before its frame, as SVT-AV1 1.4.1 (through ffmpeg's
    /// libsvtav1, `-svtav1-params mastering-display=G(0.2650,0.6900)B(0.1500,0.0600)
    /// R(0.6800,0.3200)WP(0.3127,0.3290)L(1000.0,0.0001):content-light=1000,400`, 10-bit BT.2020
    /// PQ) wrote them; ffprobe reads the same figures from the stream.
    const SVT_HDR10_SEQUENCE_HEADER: &str = "0a0e0000000cc4ff673efe5424402410";
    const SVT_HDR10_METADATA: &str =
        "2a060103e80190802a1a02ae1451ec43d7b0a426660f5c500d54390003e8000000000280";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hdr10_metadata_obus_in_mdcv_units() {
        let hdr = hdr_metadata(&hex(SVT_HDR10_METADATA)).unwrap().unwrap();
        assert_eq!(
            hdr.light,
            Some(crate::ContentLightLevel {
                max_cll: 1000,
                max_fall: 400
            })
        );
        let m = hdr.mastering.unwrap();
        // ffprobe: red 44564/65536, green 17367/65536 x 45220/65536, blue 9830/65536 x
        // 3932/65536, white 20493/65536 x 21561/65536, 256000/256 and 2/16384 cd/m².
        assert_eq!(m.primaries, [(34000, 16000), (13250, 34500), (7500, 3000)]);
        assert_eq!(m.white_point, (15635, 16450));
        assert_eq!(m.max_luminance, 10_000_000);
        assert_eq!(m.min_luminance, 1);
        // A temporal unit without metadata has none; a cut-short one is an error.
        assert_eq!(hdr_metadata(&hex(SVT_HDR10_SEQUENCE_HEADER)).unwrap(), None);
        let mut short = hex("2a0402ae1451");
        assert!(hdr_metadata(&short).is_err());
        short[1] = 9;
        assert!(hdr_metadata(&short).is_err(), "a size past the end");
    }

    #[test]
    fn codec_string_names_a_colour_other_than_bt709() {
        let cfg = Av1Config::from_obus(&hex(SVT_HDR10_SEQUENCE_HEADER)).unwrap();
        let s = &cfg.sequence_header;
        assert_eq!(
            (
                s.color_primaries,
                s.transfer_characteristics,
                s.matrix_coefficients
            ),
            (9, 16, 9)
        );
        assert_eq!(cfg.codec_string(), "av01.0.01M.10.0.110.09.16.09.0");
    }

    #[test]
    fn never_trusts_obu_size() {
        // Size field says 100 bytes, only 2 present.
        let data = [(OBU_FRAME << 3) | 0x02, 100, 0, 0];
        assert!(matches!(obus(&data), Err(MediaError::Truncated { .. })));
        let data = [0x80];
        assert!(obus(&data).is_err());
    }

    #[test]
    fn leb128_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, u32::MAX as u64] {
            let mut b = Vec::new();
            write_leb128(v, &mut b);
            assert_eq!(read_leb128(&b).unwrap(), (v, b.len()));
        }
    }
}
