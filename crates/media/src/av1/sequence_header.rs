//! `sequence_header_obu()` (AV1 specification 5.5): what the `av1C` record and the codec
//! string need, and what every later frame header needs to be parsed.

use crate::bits::BitReader;
use crate::Result;

/// `decoder_model_info()` (5.5.4): the lengths of the fields frame headers carry for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderModelInfo {
    pub buffer_delay_length: u32,
    pub buffer_removal_time_length: u32,
    pub frame_presentation_time_length: u32,
}

/// One operating point of the sequence header's loop (5.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatingPoint {
    pub idc: u32,
    pub seq_level_idx: u8,
    pub seq_tier: u8,
    pub decoder_model_present: bool,
}

impl OperatingPoint {
    /// Whether a frame with these layer ids belongs to this operating point (5.9.2, the
    /// `buffer_removal_time` loop).
    pub fn includes(&self, temporal_id: u32, spatial_id: u32) -> bool {
        let in_temporal = (self.idc >> temporal_id) & 1 == 1;
        let in_spatial = (self.idc >> (spatial_id + 8)) & 1 == 1;
        self.idc == 0 || (in_temporal && in_spatial)
    }
}

/// `frame_id_numbers_present_flag` and its lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameIdLengths {
    pub delta_frame_id_length: u32,
    pub additional_frame_id_length: u32,
}

impl FrameIdLengths {
    /// `idLen` of 5.9.2: `additional_frame_id_length_minus_1 +
    /// delta_frame_id_length_minus_2 + 3`.
    pub fn id_len(&self) -> u32 {
        self.additional_frame_id_length + self.delta_frame_id_length
    }
}

/// The sequence header. The first fields are those of the `av1C` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    pub profile: u8,
    /// `seq_level_idx` and `seq_tier` of the first operating point.
    pub level_idx: u8,
    pub tier: u8,
    pub bit_depth: u8,
    pub monochrome: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub max_width: u32,
    pub max_height: u32,
    pub color_primaries: u8,
    pub transfer_characteristics: u8,
    pub matrix_coefficients: u8,
    pub full_range: bool,

    pub reduced_still_picture_header: bool,
    /// `timing_info()` present with `equal_picture_interval` set.
    pub equal_picture_interval: bool,
    pub decoder_model: Option<DecoderModelInfo>,
    pub operating_points: Vec<OperatingPoint>,
    pub frame_width_bits: u32,
    pub frame_height_bits: u32,
    pub frame_ids: Option<FrameIdLengths>,
    pub use_128x128_superblock: bool,
    pub enable_warped_motion: bool,
    pub enable_order_hint: bool,
    pub enable_ref_frame_mvs: bool,
    /// `seq_force_screen_content_tools`: 0, 1, or 2 (`SELECT_SCREEN_CONTENT_TOOLS`).
    pub seq_force_screen_content_tools: u32,
    /// `seq_force_integer_mv`: 0, 1, or 2 (`SELECT_INTEGER_MV`).
    pub seq_force_integer_mv: u32,
    /// `OrderHintBits` (0 without order hints).
    pub order_hint_bits: u32,
    pub enable_superres: bool,
    pub enable_cdef: bool,
    pub enable_restoration: bool,
    pub separate_uv_delta_q: bool,
    pub film_grain_params_present: bool,
}

/// `SELECT_SCREEN_CONTENT_TOOLS` and `SELECT_INTEGER_MV`: the frame header chooses.
pub const SELECT: u32 = 2;

/// What `color_config()` (5.5.2) yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ColorConfig {
    bit_depth: u8,
    monochrome: bool,
    color_primaries: u8,
    transfer_characteristics: u8,
    matrix_coefficients: u8,
    full_range: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    chroma_sample_position: u8,
    separate_uv_delta_q: bool,
}

/// The timing and operating-point part of the header (5.5.1 up to `frame_width_bits_minus_1`).
struct OperatingParameters {
    equal_picture_interval: bool,
    decoder_model: Option<DecoderModelInfo>,
    operating_points: Vec<OperatingPoint>,
}

impl SequenceHeader {
    /// Parses a sequence header OBU payload (not including the OBU header).
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = BitReader::new(payload, "AV1 sequence header");
        let profile = r.bits(3)? as u8;
        let _still_picture = r.bit()?;
        let reduced_still_picture_header = r.bit()?;
        let operating = if reduced_still_picture_header {
            OperatingParameters {
                equal_picture_interval: false,
                decoder_model: None,
                operating_points: vec![OperatingPoint {
                    idc: 0,
                    seq_level_idx: r.bits(5)? as u8,
                    seq_tier: 0,
                    decoder_model_present: false,
                }],
            }
        } else {
            operating_parameters(&mut r)?
        };
        let frame_width_bits = r.bits(4)? + 1;
        let frame_height_bits = r.bits(4)? + 1;
        let max_width = r.bits(frame_width_bits)? + 1;
        let max_height = r.bits(frame_height_bits)? + 1;
        let frame_ids = if !reduced_still_picture_header && r.bit()? {
            Some(FrameIdLengths {
                delta_frame_id_length: r.bits(4)? + 2,
                additional_frame_id_length: r.bits(3)? + 1,
            })
        } else {
            None
        };
        let use_128x128_superblock = r.bit()?;
        r.bits(2)?; // enable_filter_intra, enable_intra_edge_filter
        let mut header = Self {
            profile,
            level_idx: operating.operating_points[0].seq_level_idx,
            tier: operating.operating_points[0].seq_tier,
            bit_depth: 8,
            monochrome: false,
            subsampling_x: true,
            subsampling_y: true,
            chroma_sample_position: 0,
            max_width,
            max_height,
            color_primaries: 2,
            transfer_characteristics: 2,
            matrix_coefficients: 2,
            full_range: false,
            reduced_still_picture_header,
            equal_picture_interval: operating.equal_picture_interval,
            decoder_model: operating.decoder_model,
            operating_points: operating.operating_points,
            frame_width_bits,
            frame_height_bits,
            frame_ids,
            use_128x128_superblock,
            enable_warped_motion: false,
            enable_order_hint: false,
            enable_ref_frame_mvs: false,
            seq_force_screen_content_tools: SELECT,
            seq_force_integer_mv: SELECT,
            order_hint_bits: 0,
            enable_superres: false,
            enable_cdef: false,
            enable_restoration: false,
            separate_uv_delta_q: false,
            film_grain_params_present: false,
        };
        if !reduced_still_picture_header {
            header.inter_coding_tools(&mut r)?;
        }
        header.enable_superres = r.bit()?;
        header.enable_cdef = r.bit()?;
        header.enable_restoration = r.bit()?;
        header.set_color_config(color_config(&mut r, profile)?);
        header.film_grain_params_present = r.bit()?;
        Ok(header)
    }

    /// `NumPlanes`.
    pub fn num_planes(&self) -> u32 {
        if self.monochrome {
            1
        } else {
            3
        }
    }

    /// From `enable_interintra_compound` to `order_hint_bits_minus_1`.
    fn inter_coding_tools(&mut self, r: &mut BitReader) -> Result<()> {
        r.bits(2)?; // enable_interintra_compound, enable_masked_compound
        self.enable_warped_motion = r.bit()?;
        r.bit()?; // enable_dual_filter
        self.enable_order_hint = r.bit()?;
        if self.enable_order_hint {
            r.bit()?; // enable_jnt_comp
            self.enable_ref_frame_mvs = r.bit()?;
        }
        self.seq_force_screen_content_tools = if r.bit()? { SELECT } else { r.bits(1)? };
        self.seq_force_integer_mv = if self.seq_force_screen_content_tools > 0 {
            if r.bit()? {
                SELECT
            } else {
                r.bits(1)?
            }
        } else {
            SELECT
        };
        if self.enable_order_hint {
            self.order_hint_bits = r.bits(3)? + 1;
        }
        Ok(())
    }

    fn set_color_config(&mut self, c: ColorConfig) {
        self.bit_depth = c.bit_depth;
        self.monochrome = c.monochrome;
        self.color_primaries = c.color_primaries;
        self.transfer_characteristics = c.transfer_characteristics;
        self.matrix_coefficients = c.matrix_coefficients;
        self.full_range = c.full_range;
        self.subsampling_x = c.subsampling_x;
        self.subsampling_y = c.subsampling_y;
        self.chroma_sample_position = c.chroma_sample_position;
        self.separate_uv_delta_q = c.separate_uv_delta_q;
    }
}

/// `timing_info()`, `decoder_model_info()` and the operating points loop.
fn operating_parameters(r: &mut BitReader) -> Result<OperatingParameters> {
    let mut equal_picture_interval = false;
    let mut decoder_model = None;
    if r.bit()? {
        // timing_info(): num_units_in_display_tick, time_scale
        r.bits(32)?;
        r.bits(32)?;
        equal_picture_interval = r.bit()?;
        if equal_picture_interval {
            r.uvlc()?; // num_ticks_per_picture_minus_1
        }
        if r.bit()? {
            decoder_model = Some(decoder_model_info(r)?);
        }
    }
    let initial_display_delay_present = r.bit()?;
    let count = r.bits(5)? + 1;
    let mut operating_points = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let idc = r.bits(12)?;
        let seq_level_idx = r.bits(5)? as u8;
        let seq_tier = if seq_level_idx > 7 {
            r.bits(1)? as u8
        } else {
            0
        };
        let mut decoder_model_present = false;
        if let Some(model) = decoder_model {
            decoder_model_present = r.bit()?;
            if decoder_model_present {
                // operating_parameters_info(): decoder and encoder buffer delays, low_delay_mode
                r.bits(model.buffer_delay_length)?;
                r.bits(model.buffer_delay_length)?;
                r.bit()?;
            }
        }
        if initial_display_delay_present && r.bit()? {
            r.bits(4)?;
        }
        operating_points.push(OperatingPoint {
            idc,
            seq_level_idx,
            seq_tier,
            decoder_model_present,
        });
    }
    Ok(OperatingParameters {
        equal_picture_interval,
        decoder_model,
        operating_points,
    })
}

/// `decoder_model_info()` (5.5.4).
fn decoder_model_info(r: &mut BitReader) -> Result<DecoderModelInfo> {
    let buffer_delay_length = r.bits(5)? + 1;
    r.bits(32)?; // num_units_in_decoding_tick
    Ok(DecoderModelInfo {
        buffer_delay_length,
        buffer_removal_time_length: r.bits(5)? + 1,
        frame_presentation_time_length: r.bits(5)? + 1,
    })
}

/// `color_config()` (5.5.2).
fn color_config(r: &mut BitReader, profile: u8) -> Result<ColorConfig> {
    let high_bitdepth = r.bit()?;
    let bit_depth = if profile == 2 && high_bitdepth {
        if r.bit()? {
            12
        } else {
            10
        }
    } else if high_bitdepth {
        10
    } else {
        8
    };
    let monochrome = profile != 1 && r.bit()?;
    let (mut cp, mut tc, mut mc) = (2u8, 2u8, 2u8);
    if r.bit()? {
        cp = r.bits(8)? as u8;
        tc = r.bits(8)? as u8;
        mc = r.bits(8)? as u8;
    }
    let mut c = ColorConfig {
        bit_depth,
        monochrome,
        color_primaries: cp,
        transfer_characteristics: tc,
        matrix_coefficients: mc,
        full_range: true,
        subsampling_x: true,
        subsampling_y: true,
        chroma_sample_position: 0,
        separate_uv_delta_q: false,
    };
    if monochrome {
        c.full_range = r.bit()?;
        return Ok(c);
    }
    // CP_BT_709, TC_SRGB, MC_IDENTITY: 4:4:4 full range, nothing more coded.
    if cp == 1 && tc == 13 && mc == 0 {
        (c.subsampling_x, c.subsampling_y) = (false, false);
    } else {
        c.full_range = r.bit()?;
        (c.subsampling_x, c.subsampling_y) = match profile {
            0 => (true, true),
            1 => (false, false),
            _ if bit_depth == 12 => {
                let x = r.bit()?;
                (x, x && r.bit()?)
            }
            _ => (true, false),
        };
        if c.subsampling_x && c.subsampling_y {
            c.chroma_sample_position = r.bits(2)? as u8;
        }
    }
    c.separate_uv_delta_q = r.bit()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;

    /// `color_config()` for 10-bit BT.2020 PQ, limited range, 4:2:0 with colocated chroma.
    #[test]
    fn color_config_reads_hdr10_description() {
        let mut w = BitWriter::default();
        w.flag(true); // high_bitdepth
        w.flag(false); // mono_chrome
        w.flag(true).u(9, 8).u(16, 8).u(9, 8); // BT.2020, PQ, BT.2020 NCL
        w.flag(false); // color_range
        w.u(2, 2); // chroma_sample_position: colocated
        w.flag(true); // separate_uv_delta_q
        let bytes = w.bytes();
        let mut r = BitReader::new(&bytes, "test");
        let c = color_config(&mut r, 0).unwrap();
        assert_eq!(c.bit_depth, 10);
        assert_eq!(
            (
                c.color_primaries,
                c.transfer_characteristics,
                c.matrix_coefficients
            ),
            (9, 16, 9)
        );
        assert!(!c.full_range && c.subsampling_x && c.subsampling_y && c.separate_uv_delta_q);
        assert_eq!(c.chroma_sample_position, 2);
        assert_eq!(r.position(), w.len());
    }

    /// sRGB identity matrix codes no range or subsampling bits.
    #[test]
    fn color_config_srgb_is_444_full_range() {
        let mut w = BitWriter::default();
        // Profile 1 codes no mono_chrome bit.
        w.flag(false).flag(true).u(1, 8).u(13, 8).u(0, 8);
        w.flag(false); // separate_uv_delta_q
        let bytes = w.bytes();
        let mut r = BitReader::new(&bytes, "test");
        let c = color_config(&mut r, 1).unwrap();
        assert!(c.full_range && !c.subsampling_x && !c.subsampling_y);
        assert_eq!(r.position(), w.len());
    }

    /// Timing info with a decoder model: the lengths frame headers need are kept, and each
    /// operating point's `decoder_model_present_for_this_op` is read.
    #[test]
    fn operating_parameters_keep_decoder_model_lengths() {
        let mut w = BitWriter::default();
        w.flag(true).u(1, 32).u(25, 32); // timing_info_present, tick, time_scale
        w.flag(true).flag(true); // equal_picture_interval, uvlc() = 0 is a single 1
        w.flag(true); // decoder_model_info_present
        w.u(9, 5).u(1, 32).u(22, 5).u(4, 5); // buffer_delay 10, tick, removal 23, presentation 5
        w.flag(false); // initial_display_delay_present
        w.u(1, 5); // two operating points
        w.u(0x103, 12)
            .u(9, 5)
            .u(1, 1)
            .flag(true)
            .u(0, 10)
            .u(0, 10)
            .flag(false);
        w.u(0x101, 12).u(4, 5).flag(false);
        let bytes = w.bytes();
        let mut r = BitReader::new(&bytes, "test");
        let p = operating_parameters(&mut r).unwrap();
        assert!(p.equal_picture_interval);
        assert_eq!(
            p.decoder_model,
            Some(DecoderModelInfo {
                buffer_delay_length: 10,
                buffer_removal_time_length: 23,
                frame_presentation_time_length: 5
            })
        );
        assert_eq!(p.operating_points.len(), 2);
        assert_eq!(
            (
                p.operating_points[0].seq_level_idx,
                p.operating_points[0].seq_tier
            ),
            (9, 1)
        );
        assert!(p.operating_points[0].decoder_model_present);
        assert!(!p.operating_points[1].decoder_model_present);
        assert!(p.operating_points[0].includes(1, 0) && !p.operating_points[0].includes(2, 0));
        assert_eq!(r.position(), w.len());
    }

    #[test]
    fn frame_id_length_is_the_sum_of_the_coded_lengths_plus_three() {
        let ids = FrameIdLengths {
            delta_frame_id_length: 12 + 2,
            additional_frame_id_length: 1,
        };
        assert_eq!(ids.id_len(), 15); // as libaom writes it, and FFmpeg reads it
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        for len in 0..4 {
            assert!(SequenceHeader::parse(&[0u8; 4][..len]).is_err());
        }
    }
}
