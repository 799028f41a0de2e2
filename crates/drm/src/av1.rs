//! Where the tile data of an AV1 temporal unit is (AV1 specification 5.5, 5.9, 5.11), so that
//! only tile data is encrypted. Finding the end of a frame header means parsing all of it,
//! which needs the sequence header and the state of the eight reference slots (frame sizes,
//! order hints, segmentation features), kept here across samples.

use crate::{DrmError, Result};
use reel_media::av1::{self, Av1Config};
use reel_media::bits::BitReader;

const KEY_FRAME: u32 = 0;
const INTRA_ONLY_FRAME: u32 = 2;
const SWITCH_FRAME: u32 = 3;
const PRIMARY_REF_NONE: u32 = 7;
const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;

fn bad(problem: impl Into<String>) -> DrmError {
    DrmError::Sample {
        problem: format!("AV1: {}", problem.into()),
    }
}

fn m(e: reel_media::MediaError) -> DrmError {
    bad(e.to_string())
}

#[derive(Debug, Clone, Default)]
struct Sequence {
    reduced_still_picture_header: bool,
    decoder_model_info_present: bool,
    equal_picture_interval: bool,
    buffer_removal_time_length: u32,
    frame_presentation_time_length: u32,
    operating_points: Vec<(u32, bool)>, // (idc, decoder_model_present_for_this_op)
    frame_width_bits: u32,
    frame_height_bits: u32,
    max_frame_width: u32,
    max_frame_height: u32,
    frame_id_numbers_present: bool,
    delta_frame_id_length: u32,
    additional_frame_id_length: u32,
    use_128x128_superblock: bool,
    enable_warped_motion: bool,
    enable_order_hint: bool,
    enable_ref_frame_mvs: bool,
    seq_force_screen_content_tools: u32,
    seq_force_integer_mv: u32,
    order_hint_bits: u32,
    enable_superres: bool,
    enable_cdef: bool,
    enable_restoration: bool,
    num_planes: u32,
    mono_chrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    separate_uv_delta_q: bool,
    film_grain_params_present: bool,
}

fn parse_sequence(payload: &[u8]) -> Result<Sequence> {
    let mut r = BitReader::new(payload, "AV1 sequence header");
    let mut s = Sequence::default();
    let profile = r.bits(3).map_err(m)?;
    r.bit().map_err(m)?; // still_picture
    s.reduced_still_picture_header = r.bit().map_err(m)?;
    if s.reduced_still_picture_header {
        r.bits(5).map_err(m)?;
        s.operating_points.push((0, false));
    } else {
        let mut buffer_delay_length = 0;
        if r.bit().map_err(m)? {
            // timing_info()
            r.bits(32).map_err(m)?;
            r.bits(32).map_err(m)?;
            s.equal_picture_interval = r.bit().map_err(m)?;
            if s.equal_picture_interval {
                r.uvlc().map_err(m)?;
            }
            s.decoder_model_info_present = r.bit().map_err(m)?;
            if s.decoder_model_info_present {
                buffer_delay_length = r.bits(5).map_err(m)? + 1;
                r.bits(32).map_err(m)?;
                s.buffer_removal_time_length = r.bits(5).map_err(m)? + 1;
                s.frame_presentation_time_length = r.bits(5).map_err(m)? + 1;
            }
        }
        let initial_display_delay_present = r.bit().map_err(m)?;
        let count = r.bits(5).map_err(m)? + 1;
        for _ in 0..count {
            let idc = r.bits(12).map_err(m)?;
            let level = r.bits(5).map_err(m)?;
            if level > 7 {
                r.bit().map_err(m)?;
            }
            let mut model = false;
            if s.decoder_model_info_present {
                model = r.bit().map_err(m)?;
                if model {
                    r.bits(buffer_delay_length).map_err(m)?;
                    r.bits(buffer_delay_length).map_err(m)?;
                    r.bit().map_err(m)?;
                }
            }
            if initial_display_delay_present && r.bit().map_err(m)? {
                r.bits(4).map_err(m)?;
            }
            s.operating_points.push((idc, model));
        }
    }
    s.frame_width_bits = r.bits(4).map_err(m)? + 1;
    s.frame_height_bits = r.bits(4).map_err(m)? + 1;
    s.max_frame_width = r.bits(s.frame_width_bits).map_err(m)? + 1;
    s.max_frame_height = r.bits(s.frame_height_bits).map_err(m)? + 1;
    if !s.reduced_still_picture_header {
        s.frame_id_numbers_present = r.bit().map_err(m)?;
    }
    if s.frame_id_numbers_present {
        s.delta_frame_id_length = r.bits(4).map_err(m)? + 2;
        s.additional_frame_id_length = r.bits(3).map_err(m)? + 1;
    }
    s.use_128x128_superblock = r.bit().map_err(m)?;
    r.bits(2).map_err(m)?; // filter intra, intra edge filter
    s.seq_force_screen_content_tools = 2;
    s.seq_force_integer_mv = 2;
    if !s.reduced_still_picture_header {
        r.bits(2).map_err(m)?; // interintra, masked compound
        s.enable_warped_motion = r.bit().map_err(m)?;
        r.bit().map_err(m)?; // dual filter
        s.enable_order_hint = r.bit().map_err(m)?;
        if s.enable_order_hint {
            r.bit().map_err(m)?; // jnt_comp
            s.enable_ref_frame_mvs = r.bit().map_err(m)?;
        }
        s.seq_force_screen_content_tools = if r.bit().map_err(m)? {
            2
        } else {
            r.bits(1).map_err(m)?
        };
        s.seq_force_integer_mv = if s.seq_force_screen_content_tools > 0 {
            if r.bit().map_err(m)? {
                2
            } else {
                r.bits(1).map_err(m)?
            }
        } else {
            2
        };
        if s.enable_order_hint {
            s.order_hint_bits = r.bits(3).map_err(m)? + 1;
        }
    }
    s.enable_superres = r.bit().map_err(m)?;
    s.enable_cdef = r.bit().map_err(m)?;
    s.enable_restoration = r.bit().map_err(m)?;
    // color_config()
    let high_bitdepth = r.bit().map_err(m)?;
    let bit_depth = if profile == 2 && high_bitdepth {
        if r.bit().map_err(m)? {
            12
        } else {
            10
        }
    } else if high_bitdepth {
        10
    } else {
        8
    };
    s.mono_chrome = if profile == 1 {
        false
    } else {
        r.bit().map_err(m)?
    };
    s.num_planes = if s.mono_chrome { 1 } else { 3 };
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if r.bit().map_err(m)? {
        cp = r.bits(8).map_err(m)?;
        tc = r.bits(8).map_err(m)?;
        mc = r.bits(8).map_err(m)?;
    }
    if s.mono_chrome {
        r.bit().map_err(m)?;
        s.subsampling_x = true;
        s.subsampling_y = true;
    } else {
        if cp == 1 && tc == 13 && mc == 0 {
            (s.subsampling_x, s.subsampling_y) = (false, false);
        } else {
            r.bit().map_err(m)?; // color_range
            (s.subsampling_x, s.subsampling_y) = match profile {
                0 => (true, true),
                1 => (false, false),
                _ if bit_depth == 12 => {
                    let x = r.bit().map_err(m)?;
                    (x, if x { r.bit().map_err(m)? } else { false })
                }
                _ => (true, false),
            };
            if s.subsampling_x && s.subsampling_y {
                r.bits(2).map_err(m)?;
            }
        }
        s.separate_uv_delta_q = r.bit().map_err(m)?;
    }
    s.film_grain_params_present = r.bit().map_err(m)?;
    Ok(s)
}

/// What a reference slot remembers that later frame headers need to be parsed.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    valid: bool,
    frame_type: u32,
    upscaled_width: u32,
    frame_height: u32,
    render_width: u32,
    render_height: u32,
    order_hint: u32,
    seg_enabled: [[bool; 8]; 8],
    seg_data: [[i32; 8]; 8],
}

/// The parts of a frame header the tile groups need, and what the frame leaves in the slots.
#[derive(Debug, Clone, Default)]
struct Frame {
    tile_cols: u32,
    tile_rows: u32,
    tile_cols_log2: u32,
    tile_rows_log2: u32,
    tile_size_bytes: u32,
    refresh_frame_flags: u32,
    state: Slot,
}

/// Walks temporal units and reports the clear and protected runs of each.
pub(crate) struct TileParser {
    seq: Option<Sequence>,
    slots: [Slot; 8],
    /// The header of the frame whose tile groups are being read.
    frame: Option<Frame>,
}

const SEG_BITS: [u32; 8] = [8, 6, 6, 6, 6, 3, 0, 0];
const SEG_SIGNED: [bool; 8] = [true, true, true, true, true, false, false, false];
const SEG_MAX: [i32; 8] = [255, 63, 63, 63, 63, 7, 0, 0];

fn tile_log2(blk: u32, target: u32) -> u32 {
    let mut k = 0;
    while (blk << k) < target {
        k += 1;
    }
    k
}

impl TileParser {
    pub(crate) fn new(config: &Av1Config) -> Result<Self> {
        let mut p = Self {
            seq: None,
            slots: [Slot::default(); 8],
            frame: None,
        };
        let obu = &config.sequence_header_obu;
        for o in av1::obus(obu).map_err(m)? {
            if o.obu_type == av1::OBU_SEQUENCE_HEADER {
                p.seq = Some(parse_sequence(&obu[o.payload_start..o.end])?);
            }
        }
        Ok(p)
    }

    /// Calls `f(clear, protected)` for the runs of one temporal unit, in order.
    pub(crate) fn ranges(&mut self, sample: &[u8], mut f: impl FnMut(usize, usize)) -> Result<()> {
        let mut cursor = 0;
        for o in av1::obus(sample).map_err(m)? {
            let payload = &sample[o.payload_start..o.end];
            let (temporal_id, spatial_id) = if sample[o.start] & 0x04 != 0 {
                let ext = sample[o.start + 1];
                (u32::from(ext >> 5), u32::from((ext >> 3) & 3))
            } else {
                (0, 0)
            };
            match o.obu_type {
                av1::OBU_SEQUENCE_HEADER => self.seq = Some(parse_sequence(payload)?),
                av1::OBU_FRAME_HEADER if self.frame.is_none() => {
                    let mut r = BitReader::new(payload, "AV1 frame header");
                    self.frame_header(&mut r, temporal_id, spatial_id)?;
                }
                OBU_REDUNDANT_FRAME_HEADER => {}
                av1::OBU_FRAME | av1::OBU_TILE_GROUP => {
                    let mut r = BitReader::new(payload, "AV1 frame");
                    if o.obu_type == av1::OBU_FRAME {
                        if self.frame.is_some() {
                            return Err(bad("frame OBU while a frame's tiles are incomplete"));
                        }
                        self.frame_header(&mut r, temporal_id, spatial_id)?;
                        r.byte_align();
                    }
                    let base = o.payload_start + r.position() / 8;
                    for (start, len) in self.tile_group(&mut r, payload.len())? {
                        let at = o.payload_start + start;
                        debug_assert!(at >= base);
                        f(at - cursor, 0);
                        f(0, len);
                        cursor = at + len;
                    }
                }
                _ => {}
            }
            f(o.end - cursor, 0);
            cursor = o.end;
        }
        Ok(())
    }

    /// Reads a tile group and returns (offset in the OBU payload, length) of each tile's data.
    fn tile_group(&mut self, r: &mut BitReader, payload_len: usize) -> Result<Vec<(usize, usize)>> {
        let frame = self
            .frame
            .as_ref()
            .ok_or_else(|| bad("tile group without a frame header"))?;
        let num_tiles = frame.tile_cols * frame.tile_rows;
        let start_bits = r.position();
        let mut flag = false;
        if num_tiles > 1 {
            flag = r.bit().map_err(m)?;
        }
        let (tg_start, tg_end) = if num_tiles == 1 || !flag {
            (0, num_tiles - 1)
        } else {
            let bits = frame.tile_cols_log2 + frame.tile_rows_log2;
            (r.bits(bits).map_err(m)?, r.bits(bits).map_err(m)?)
        };
        if tg_end < tg_start || tg_end >= num_tiles {
            return Err(bad(format!(
                "tile group {tg_start}..{tg_end} of {num_tiles} tiles"
            )));
        }
        r.byte_align();
        let _ = start_bits;
        let mut pos = r.position() / 8;
        let mut tiles = Vec::new();
        for tile in tg_start..=tg_end {
            let size = if tile == tg_end {
                payload_len
                    .checked_sub(pos)
                    .ok_or_else(|| bad("tile group shorter than its header"))?
            } else {
                let n = frame.tile_size_bytes as usize;
                let bytes = pos + n;
                if bytes > payload_len {
                    return Err(bad("tile size field past the end of the OBU"));
                }
                let mut v = 0usize;
                for i in 0..n {
                    // The reader is not used for the tile sizes: they are whole bytes.
                    v |= usize::from(r_byte(r, pos + i)?) << (8 * i);
                }
                pos = bytes;
                v + 1
            };
            if pos + size > payload_len {
                return Err(bad("tile runs past the end of its OBU"));
            }
            tiles.push((pos, size));
            pos += size;
        }
        if tg_end == num_tiles - 1 {
            let frame = self.frame.take().expect("checked");
            self.update_slots(&frame);
        }
        Ok(tiles)
    }

    fn update_slots(&mut self, frame: &Frame) {
        for i in 0..8 {
            if frame.refresh_frame_flags & (1 << i) != 0 {
                self.slots[i] = frame.state;
                self.slots[i].valid = true;
            }
        }
    }

    fn get_relative_dist(seq: &Sequence, a: u32, b: u32) -> i32 {
        if !seq.enable_order_hint {
            return 0;
        }
        let diff = a as i32 - b as i32;
        let mm = 1i32 << (seq.order_hint_bits - 1);
        (diff & (mm - 1)) - (diff & mm)
    }

    /// Parses `uncompressed_header()`; leaves `self.frame` set when tile groups follow.
    fn frame_header(&mut self, r: &mut BitReader, temporal_id: u32, spatial_id: u32) -> Result<()> {
        let seq = self
            .seq
            .clone()
            .ok_or_else(|| bad("frame before any sequence header"))?;
        let id_len = if seq.frame_id_numbers_present {
            seq.additional_frame_id_length + seq.delta_frame_id_length + 1
        } else {
            0
        };
        let all_frames = 0xffu32;
        let mut f = Frame::default();
        let (frame_type, show_frame, showable_frame, error_resilient_mode);
        if seq.reduced_still_picture_header {
            frame_type = KEY_FRAME;
            show_frame = true;
            showable_frame = false;
            error_resilient_mode = true;
        } else {
            if r.bit().map_err(m)? {
                // show_existing_frame
                let idx = r.bits(3).map_err(m)? as usize;
                if seq.decoder_model_info_present && !seq.equal_picture_interval {
                    r.bits(seq.frame_presentation_time_length).map_err(m)?;
                }
                if seq.frame_id_numbers_present {
                    r.bits(id_len).map_err(m)?;
                }
                let slot = self.slots[idx];
                if slot.frame_type == KEY_FRAME {
                    // The shown key frame refreshes every slot.
                    self.slots = [slot; 8];
                }
                self.frame = None;
                return Ok(());
            }
            frame_type = r.bits(2).map_err(m)?;
            show_frame = r.bit().map_err(m)?;
            if show_frame && seq.decoder_model_info_present && !seq.equal_picture_interval {
                r.bits(seq.frame_presentation_time_length).map_err(m)?;
            }
            showable_frame = if show_frame {
                frame_type != KEY_FRAME
            } else {
                r.bit().map_err(m)?
            };
            error_resilient_mode =
                if frame_type == SWITCH_FRAME || (frame_type == KEY_FRAME && show_frame) {
                    true
                } else {
                    r.bit().map_err(m)?
                };
        }
        let frame_is_intra = frame_type == INTRA_ONLY_FRAME || frame_type == KEY_FRAME;
        if frame_type == KEY_FRAME && show_frame {
            for s in &mut self.slots {
                s.valid = false;
                s.order_hint = 0;
            }
        }
        let disable_cdf_update = r.bit().map_err(m)?;
        let allow_screen_content_tools = if seq.seq_force_screen_content_tools == 2 {
            r.bits(1).map_err(m)?
        } else {
            seq.seq_force_screen_content_tools
        };
        let mut force_integer_mv = if allow_screen_content_tools != 0 {
            if seq.seq_force_integer_mv == 2 {
                r.bits(1).map_err(m)?
            } else {
                seq.seq_force_integer_mv
            }
        } else {
            0
        };
        if frame_is_intra {
            force_integer_mv = 1;
        }
        if seq.frame_id_numbers_present {
            r.bits(id_len).map_err(m)?; // current_frame_id
        }
        let frame_size_override_flag = if frame_type == SWITCH_FRAME {
            true
        } else if seq.reduced_still_picture_header {
            false
        } else {
            r.bit().map_err(m)?
        };
        let order_hint = r.bits(seq.order_hint_bits).map_err(m)?;
        let primary_ref_frame = if frame_is_intra || error_resilient_mode {
            PRIMARY_REF_NONE
        } else {
            r.bits(3).map_err(m)?
        };
        if seq.decoder_model_info_present && r.bit().map_err(m)? {
            for &(idc, model) in &seq.operating_points {
                if model {
                    let in_t = (idc >> temporal_id) & 1 == 1;
                    let in_s = (idc >> (spatial_id + 8)) & 1 == 1;
                    if idc == 0 || (in_t && in_s) {
                        r.bits(seq.buffer_removal_time_length).map_err(m)?;
                    }
                }
            }
        }
        let mut allow_high_precision_mv = false;
        let mut allow_intrabc = false;
        f.refresh_frame_flags =
            if frame_type == SWITCH_FRAME || (frame_type == KEY_FRAME && show_frame) {
                all_frames
            } else {
                r.bits(8).map_err(m)?
            };
        if (!frame_is_intra || f.refresh_frame_flags != all_frames)
            && error_resilient_mode
            && seq.enable_order_hint
        {
            for i in 0..8 {
                let hint = r.bits(seq.order_hint_bits).map_err(m)?;
                if hint != self.slots[i].order_hint || !self.slots[i].valid {
                    self.slots[i] = Slot {
                        order_hint: hint,
                        ..Slot::default()
                    };
                }
            }
        }
        // Frame size.
        let mut size = FrameSize::default();
        let mut ref_frame_idx = [0usize; 7];
        if frame_is_intra {
            self.frame_size(r, &seq, frame_size_override_flag, &mut size)?;
            render_size(r, &mut size)?;
            if allow_screen_content_tools != 0 && size.upscaled_width == size.frame_width {
                allow_intrabc = r.bit().map_err(m)?;
            }
        } else {
            let short_signaling = seq.enable_order_hint && r.bit().map_err(m)?;
            if short_signaling {
                return Err(bad(
                    "frame_refs_short_signaling is not supported for encryption",
                ));
            }
            for idx in &mut ref_frame_idx {
                *idx = r.bits(3).map_err(m)? as usize;
                if seq.frame_id_numbers_present {
                    r.bits(seq.delta_frame_id_length).map_err(m)?;
                }
            }
            if frame_size_override_flag && !error_resilient_mode {
                // frame_size_with_refs()
                let mut found = false;
                for &idx in &ref_frame_idx {
                    if r.bit().map_err(m)? {
                        let s = self.slots[idx];
                        size.upscaled_width = s.upscaled_width;
                        size.frame_width = s.upscaled_width;
                        size.frame_height = s.frame_height;
                        size.render_width = s.render_width;
                        size.render_height = s.render_height;
                        found = true;
                        break;
                    }
                }
                if !found {
                    self.frame_size(r, &seq, frame_size_override_flag, &mut size)?;
                    render_size(r, &mut size)?;
                } else {
                    superres(r, &seq, &mut size)?;
                }
            } else {
                self.frame_size(r, &seq, frame_size_override_flag, &mut size)?;
                render_size(r, &mut size)?;
            }
            allow_high_precision_mv = if force_integer_mv != 0 {
                false
            } else {
                r.bit().map_err(m)?
            };
            if !r.bit().map_err(m)? {
                r.bits(2).map_err(m)?; // interpolation_filter
            }
            r.bit().map_err(m)?; // is_motion_mode_switchable
            if !error_resilient_mode && seq.enable_ref_frame_mvs {
                r.bit().map_err(m)?; // use_ref_frame_mvs
            }
        }
        if !(seq.reduced_still_picture_header || disable_cdf_update) {
            r.bit().map_err(m)?; // disable_frame_end_update_cdf
        }
        let mi_cols = 2 * ((size.frame_width + 7) >> 3);
        let mi_rows = 2 * ((size.frame_height + 7) >> 3);
        // tile_info()
        let (sb_cols, sb_rows, sb_shift) = if seq.use_128x128_superblock {
            ((mi_cols + 31) >> 5, (mi_rows + 31) >> 5, 5)
        } else {
            ((mi_cols + 15) >> 4, (mi_rows + 15) >> 4, 4)
        };
        let sb_size = sb_shift + 2;
        let max_tile_width_sb = 4096 >> sb_size;
        let mut max_tile_area_sb = (4096 * 2304) >> (2 * sb_size);
        let min_log2_tile_cols = tile_log2(max_tile_width_sb, sb_cols);
        let max_log2_tile_cols = tile_log2(1, sb_cols.min(64));
        let max_log2_tile_rows = tile_log2(1, sb_rows.min(64));
        let min_log2_tiles = min_log2_tile_cols.max(tile_log2(max_tile_area_sb, sb_rows * sb_cols));
        if r.bit().map_err(m)? {
            // uniform_tile_spacing_flag
            f.tile_cols_log2 = min_log2_tile_cols;
            while f.tile_cols_log2 < max_log2_tile_cols && r.bit().map_err(m)? {
                f.tile_cols_log2 += 1;
            }
            let w = (sb_cols + (1 << f.tile_cols_log2) - 1) >> f.tile_cols_log2;
            f.tile_cols = sb_cols.div_ceil(w.max(1));
            let min_log2_tile_rows = min_log2_tiles.saturating_sub(f.tile_cols_log2);
            f.tile_rows_log2 = min_log2_tile_rows;
            while f.tile_rows_log2 < max_log2_tile_rows && r.bit().map_err(m)? {
                f.tile_rows_log2 += 1;
            }
            let h = (sb_rows + (1 << f.tile_rows_log2) - 1) >> f.tile_rows_log2;
            f.tile_rows = sb_rows.div_ceil(h.max(1));
        } else {
            let (mut widest, mut start, mut i) = (0, 0, 0);
            while start < sb_cols {
                let max_width = (sb_cols - start).min(max_tile_width_sb);
                let s = r.ns(max_width).map_err(m)? + 1;
                widest = widest.max(s);
                start += s;
                i += 1;
            }
            f.tile_cols = i;
            f.tile_cols_log2 = tile_log2(1, i);
            max_tile_area_sb = if min_log2_tiles > 0 {
                (sb_rows * sb_cols) >> (min_log2_tiles + 1)
            } else {
                sb_rows * sb_cols
            };
            let max_tile_height_sb = (max_tile_area_sb / widest.max(1)).max(1);
            let (mut start, mut i) = (0, 0);
            while start < sb_rows {
                let max_height = (sb_rows - start).min(max_tile_height_sb);
                start += r.ns(max_height).map_err(m)? + 1;
                i += 1;
            }
            f.tile_rows = i;
            f.tile_rows_log2 = tile_log2(1, i);
        }
        f.tile_size_bytes = 4;
        if f.tile_cols_log2 > 0 || f.tile_rows_log2 > 0 {
            r.bits(f.tile_rows_log2 + f.tile_cols_log2).map_err(m)?;
            f.tile_size_bytes = r.bits(2).map_err(m)? + 1;
        }
        if f.tile_cols == 0 || f.tile_rows == 0 {
            return Err(bad("frame without tiles"));
        }
        // quantization_params()
        let base_q_idx = r.bits(8).map_err(m)?;
        let mut delta_q_nonzero = read_delta_q(r)? != 0;
        if seq.num_planes > 1 {
            let diff_uv_delta = seq.separate_uv_delta_q && r.bit().map_err(m)?;
            delta_q_nonzero |= read_delta_q(r)? != 0;
            delta_q_nonzero |= read_delta_q(r)? != 0;
            if diff_uv_delta {
                delta_q_nonzero |= read_delta_q(r)? != 0;
                delta_q_nonzero |= read_delta_q(r)? != 0;
            }
        }
        if r.bit().map_err(m)? {
            // using_qmatrix
            r.bits(8).map_err(m)?;
            if seq.separate_uv_delta_q {
                r.bits(4).map_err(m)?;
            }
        }
        // segmentation_params()
        let segmentation_enabled = r.bit().map_err(m)?;
        let (mut seg_enabled, mut seg_data) = ([[false; 8]; 8], [[0i32; 8]; 8]);
        if segmentation_enabled {
            let update_data = if primary_ref_frame == PRIMARY_REF_NONE {
                true
            } else {
                if r.bit().map_err(m)? {
                    r.bit().map_err(m)?; // temporal_update
                }
                r.bit().map_err(m)?
            };
            if update_data {
                for i in 0..8 {
                    for j in 0..8 {
                        seg_enabled[i][j] = r.bit().map_err(m)?;
                        if seg_enabled[i][j] {
                            let bits = SEG_BITS[j];
                            let v = if SEG_SIGNED[j] {
                                r.su(1 + bits).map_err(m)?
                            } else {
                                r.bits(bits).map_err(m)? as i32
                            };
                            let lo = if SEG_SIGNED[j] { -SEG_MAX[j] } else { 0 };
                            seg_data[i][j] = v.clamp(lo, SEG_MAX[j]);
                        }
                    }
                }
            } else {
                let prev = self.slots[ref_frame_idx[primary_ref_frame as usize] & 7];
                seg_enabled = prev.seg_enabled;
                seg_data = prev.seg_data;
            }
        }
        // delta_q_params(), delta_lf_params()
        let mut delta_q_present = false;
        if base_q_idx > 0 {
            delta_q_present = r.bit().map_err(m)?;
        }
        if delta_q_present {
            r.bits(2).map_err(m)?;
            let delta_lf_present = !allow_intrabc && r.bit().map_err(m)?;
            if delta_lf_present {
                r.bits(3).map_err(m)?;
            }
        }
        let mut coded_lossless = true;
        for seg in 0..8 {
            let q = if segmentation_enabled && seg_enabled[seg][0] {
                (base_q_idx as i32 + seg_data[seg][0]).clamp(0, 255)
            } else {
                base_q_idx as i32
            };
            if q != 0 || delta_q_nonzero {
                coded_lossless = false;
            }
        }
        let all_lossless = coded_lossless && size.frame_width == size.upscaled_width;
        // loop_filter_params()
        if !(coded_lossless || allow_intrabc) {
            let l0 = r.bits(6).map_err(m)?;
            let l1 = r.bits(6).map_err(m)?;
            if seq.num_planes > 1 && (l0 != 0 || l1 != 0) {
                r.bits(12).map_err(m)?;
            }
            r.bits(3).map_err(m)?; // sharpness
            if r.bit().map_err(m)? && r.bit().map_err(m)? {
                // delta_enabled and delta_update
                for _ in 0..10 {
                    if r.bit().map_err(m)? {
                        r.su(7).map_err(m)?;
                    }
                }
            }
        }
        // cdef_params()
        if !(coded_lossless || allow_intrabc || !seq.enable_cdef) {
            r.bits(2).map_err(m)?;
            let cdef_bits = r.bits(2).map_err(m)?;
            let per = if seq.num_planes > 1 { 12 } else { 6 };
            for _ in 0..(1 << cdef_bits) {
                r.bits(per).map_err(m)?;
            }
        }
        // lr_params()
        if !(all_lossless || allow_intrabc || !seq.enable_restoration) {
            let (mut uses_lr, mut uses_chroma_lr) = (false, false);
            for i in 0..seq.num_planes {
                if r.bits(2).map_err(m)? != 0 {
                    uses_lr = true;
                    if i > 0 {
                        uses_chroma_lr = true;
                    }
                }
            }
            if uses_lr {
                // lr_unit_shift, and lr_unit_extra_shift after a set shift with 64x64 blocks.
                let shift = r.bit().map_err(m)?;
                if shift && !seq.use_128x128_superblock {
                    r.bit().map_err(m)?;
                }
                if seq.subsampling_x && seq.subsampling_y && uses_chroma_lr {
                    r.bit().map_err(m)?;
                }
            }
        }
        // read_tx_mode()
        if !coded_lossless {
            r.bit().map_err(m)?;
        }
        // frame_reference_mode()
        let reference_select = !frame_is_intra && r.bit().map_err(m)?;
        // skip_mode_params()
        if !frame_is_intra && reference_select && seq.enable_order_hint {
            let dist = |a, b| Self::get_relative_dist(&seq, a, b);
            let (mut fwd, mut bwd): (Option<u32>, Option<u32>) = (None, None);
            for &idx in &ref_frame_idx {
                let h = self.slots[idx].order_hint;
                if dist(h, order_hint) < 0 {
                    if fwd.is_none_or(|fh| dist(h, fh) > 0) {
                        fwd = Some(h);
                    }
                } else if dist(h, order_hint) > 0 && bwd.is_none_or(|bh| dist(h, bh) < 0) {
                    bwd = Some(h);
                }
            }
            let allowed = match (fwd, bwd) {
                (None, _) => false,
                (Some(_), Some(_)) => true,
                (Some(fh), None) => ref_frame_idx
                    .iter()
                    .any(|&idx| dist(self.slots[idx].order_hint, fh) < 0),
            };
            if allowed {
                r.bit().map_err(m)?; // skip_mode_present
            }
        }
        if !(frame_is_intra || error_resilient_mode || !seq.enable_warped_motion) {
            r.bit().map_err(m)?; // allow_warped_motion
        }
        r.bit().map_err(m)?; // reduced_tx_set
                             // global_motion_params()
        if !frame_is_intra {
            for _ in 1..=7 {
                // 0 identity, 1 translation, 2 rotzoom, 3 affine
                let mut ty = 0;
                if r.bit().map_err(m)? {
                    ty = if r.bit().map_err(m)? {
                        2
                    } else if r.bit().map_err(m)? {
                        1
                    } else {
                        3
                    };
                }
                let params: &[usize] = match ty {
                    0 => &[],
                    1 => &[0, 1],
                    2 => &[2, 3, 0, 1],
                    _ => &[2, 3, 4, 5, 0, 1],
                };
                for &idx in params {
                    let abs_bits = if idx < 2 {
                        if ty == 1 {
                            9 - u32::from(!allow_high_precision_mv)
                        } else {
                            12
                        }
                    } else {
                        12
                    };
                    let mx = 1u32 << abs_bits;
                    decode_subexp(r, 2 * mx + 1)?;
                }
            }
        }
        // film_grain_params()
        if seq.film_grain_params_present && (show_frame || showable_frame) && r.bit().map_err(m)? {
            r.bits(16).map_err(m)?; // grain_seed
            let update_grain = if frame_type == 1 {
                r.bit().map_err(m)?
            } else {
                true
            };
            if !update_grain {
                r.bits(3).map_err(m)?;
            } else {
                let num_y = r.bits(4).map_err(m)?;
                r.skip(16 * num_y as usize).map_err(m)?;
                let csfl = !seq.mono_chrome && r.bit().map_err(m)?;
                let (mut num_cb, mut num_cr) = (0, 0);
                if !(seq.mono_chrome
                    || csfl
                    || (seq.subsampling_x && seq.subsampling_y && num_y == 0))
                {
                    num_cb = r.bits(4).map_err(m)?;
                    r.skip(16 * num_cb as usize).map_err(m)?;
                    num_cr = r.bits(4).map_err(m)?;
                    r.skip(16 * num_cr as usize).map_err(m)?;
                }
                r.bits(2).map_err(m)?; // grain_scaling_minus_8
                let lag = r.bits(2).map_err(m)?;
                let num_pos_luma = 2 * lag * (lag + 1);
                let num_pos_chroma = if num_y > 0 {
                    r.skip(8 * num_pos_luma as usize).map_err(m)?;
                    num_pos_luma + 1
                } else {
                    num_pos_luma
                };
                if csfl || num_cb > 0 {
                    r.skip(8 * num_pos_chroma as usize).map_err(m)?;
                }
                if csfl || num_cr > 0 {
                    r.skip(8 * num_pos_chroma as usize).map_err(m)?;
                }
                r.bits(4).map_err(m)?; // ar_coeff_shift, grain_scale_shift
                if num_cb > 0 {
                    r.bits(25).map_err(m)?;
                }
                if num_cr > 0 {
                    r.bits(25).map_err(m)?;
                }
                r.bits(2).map_err(m)?; // overlap, clip_to_restricted_range
            }
        }
        f.state = Slot {
            valid: true,
            frame_type,
            upscaled_width: size.upscaled_width,
            frame_height: size.frame_height,
            render_width: size.render_width,
            render_height: size.render_height,
            order_hint,
            seg_enabled,
            seg_data,
        };
        self.frame = Some(f);
        Ok(())
    }

    fn frame_size(
        &self,
        r: &mut BitReader,
        seq: &Sequence,
        override_flag: bool,
        size: &mut FrameSize,
    ) -> Result<()> {
        if override_flag {
            size.frame_width = r.bits(seq.frame_width_bits).map_err(m)? + 1;
            size.frame_height = r.bits(seq.frame_height_bits).map_err(m)? + 1;
        } else {
            size.frame_width = seq.max_frame_width;
            size.frame_height = seq.max_frame_height;
        }
        superres(r, seq, size)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct FrameSize {
    upscaled_width: u32,
    frame_width: u32,
    frame_height: u32,
    render_width: u32,
    render_height: u32,
}

fn superres(r: &mut BitReader, seq: &Sequence, size: &mut FrameSize) -> Result<()> {
    let denom = if seq.enable_superres && r.bit().map_err(m)? {
        r.bits(3).map_err(m)? + 9
    } else {
        8
    };
    size.upscaled_width = size.frame_width;
    size.frame_width = (size.upscaled_width * 8 + denom / 2) / denom;
    Ok(())
}

fn render_size(r: &mut BitReader, size: &mut FrameSize) -> Result<()> {
    if r.bit().map_err(m)? {
        size.render_width = r.bits(16).map_err(m)? + 1;
        size.render_height = r.bits(16).map_err(m)? + 1;
    } else {
        size.render_width = size.upscaled_width;
        size.render_height = size.frame_height;
    }
    Ok(())
}

fn read_delta_q(r: &mut BitReader) -> Result<i32> {
    Ok(if r.bit().map_err(m)? {
        r.su(7).map_err(m)?
    } else {
        0
    })
}

/// `decode_subexp(numSyms)`: the bits it reads do not depend on the reference value of
/// `decode_signed_subexp_with_ref`, so the value itself is not needed.
fn decode_subexp(r: &mut BitReader, num_syms: u32) -> Result<()> {
    let (mut i, mut mk, k) = (0u32, 0u32, 3u32);
    loop {
        let b2 = if i > 0 { k + i - 1 } else { k };
        let a = 1u32 << b2;
        if num_syms <= mk + 3 * a {
            r.ns(num_syms - mk).map_err(m)?;
            return Ok(());
        }
        if r.bit().map_err(m)? {
            i += 1;
            mk += a;
        } else {
            r.bits(b2).map_err(m)?;
            return Ok(());
        }
    }
}

/// Reads one whole byte of the buffer behind `r` at byte offset `at`.
fn r_byte(r: &BitReader, at: usize) -> Result<u8> {
    r.byte_at(at).map_err(m)
}
