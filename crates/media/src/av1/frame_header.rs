//! `uncompressed_header()` (AV1 specification 5.9), parsed to its end so that the tile group
//! that follows can be found. One function per syntax section, named as in the spec; only the
//! values that decide how many bits later sections take are kept. Parsing a frame header
//! needs what earlier frames left in the eight reference slots (sizes, order hints,
//! segmentation features), which [`ReferenceSlots`] keeps from one temporal unit to the next.

use super::sequence_header::{SequenceHeader, SELECT};
use crate::bits::BitReader;
use crate::{MediaError, Result};

const NUM_REF_FRAMES: usize = 8;
const REFS_PER_FRAME: usize = 7;
const PRIMARY_REF_NONE: u32 = 7;
const ALL_FRAMES: u8 = 0xff;
const MAX_TILE_WIDTH: u32 = 4096;
const MAX_TILE_AREA: u32 = 4096 * 2304;
const MAX_TILE_COLS: u32 = 64;
const MAX_TILE_ROWS: u32 = 64;
const MAX_SEGMENTS: usize = 8;
const SEG_LVL_MAX: usize = 8;
const SEGMENTATION_FEATURE_BITS: [u32; SEG_LVL_MAX] = [8, 6, 6, 6, 6, 3, 0, 0];
const SEGMENTATION_FEATURE_SIGNED: [bool; SEG_LVL_MAX] =
    [true, true, true, true, true, false, false, false];
const SEGMENTATION_FEATURE_MAX: [i32; SEG_LVL_MAX] = [255, 63, 63, 63, 63, 7, 0, 0];

fn invalid(problem: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        what: "AV1 frame header",
        problem: problem.into(),
    }
}

/// `frame_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameType {
    #[default]
    Key,
    Inter,
    IntraOnly,
    Switch,
}

impl FrameType {
    fn from_bits(v: u32) -> Self {
        match v {
            0 => Self::Key,
            1 => Self::Inter,
            2 => Self::IntraOnly,
            _ => Self::Switch,
        }
    }

    fn is_intra(self) -> bool {
        matches!(self, Self::Key | Self::IntraOnly)
    }
}

/// `FeatureEnabled` and `FeatureData` of `segmentation_params()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segmentation {
    pub enabled: bool,
    pub feature_enabled: [[bool; SEG_LVL_MAX]; MAX_SEGMENTS],
    pub feature_data: [[i32; SEG_LVL_MAX]; MAX_SEGMENTS],
}

/// `FrameWidth`, `FrameHeight`, `UpscaledWidth`, `RenderWidth`, `RenderHeight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameSize {
    pub frame_width: u32,
    pub frame_height: u32,
    pub upscaled_width: u32,
    pub render_width: u32,
    pub render_height: u32,
}

impl FrameSize {
    /// `MiCols`, `MiRows` (`compute_image_size()`).
    fn mi_cols_rows(&self) -> (u32, u32) {
        (
            2 * ((self.frame_width + 7) >> 3),
            2 * ((self.frame_height + 7) >> 3),
        )
    }
}

/// What `tile_info()` decides: the tile grid and the width of tile size fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TileInfo {
    pub tile_cols: u32,
    pub tile_rows: u32,
    pub tile_cols_log2: u32,
    pub tile_rows_log2: u32,
    /// `TileSizeBytes`.
    pub tile_size_bytes: u32,
}

impl TileInfo {
    pub fn num_tiles(&self) -> u32 {
        self.tile_cols * self.tile_rows
    }
}

/// A parsed frame header (not `show_existing_frame`), followed by tile groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_type: FrameType,
    pub show_frame: bool,
    pub order_hint: u32,
    pub refresh_frame_flags: u8,
    pub size: FrameSize,
    pub tile_info: TileInfo,
    pub segmentation: Segmentation,
}

/// What a reference slot remembers that later frame headers need (7.20).
#[derive(Debug, Clone, Copy, Default)]
struct RefSlot {
    valid: bool,
    frame_type: FrameType,
    size: FrameSize,
    order_hint: u32,
    segmentation: Segmentation,
}

/// The eight reference slots, as far as header parsing needs them.
#[derive(Debug, Clone, Default)]
pub struct ReferenceSlots {
    slots: [RefSlot; NUM_REF_FRAMES],
}

/// The first syntax elements: what kind of frame this is.
#[derive(Debug, Clone, Copy)]
struct FrameKind {
    frame_type: FrameType,
    show_frame: bool,
    showable_frame: bool,
    error_resilient_mode: bool,
}

/// `allow_screen_content_tools` and `force_integer_mv`.
#[derive(Debug, Clone, Copy)]
struct ScreenContent {
    allow_screen_content_tools: bool,
    force_integer_mv: bool,
}

/// The frame's size and, for inter frames, its references (the `FrameIsIntra` branch).
#[derive(Debug, Clone, Copy, Default)]
struct FrameRefs {
    size: FrameSize,
    ref_frame_idx: [usize; REFS_PER_FRAME],
    allow_intrabc: bool,
    allow_high_precision_mv: bool,
}

/// What `quantization_params()` decides for `CodedLossless`.
#[derive(Debug, Clone, Copy)]
struct Quantization {
    base_q_idx: u32,
    /// Any of `DeltaQYDc`, `DeltaQUDc`, `DeltaQUAc`, `DeltaQVDc`, `DeltaQVAc` is not zero.
    any_delta_nonzero: bool,
}

/// `CodedLossless` and `AllLossless`.
#[derive(Debug, Clone, Copy)]
struct Lossless {
    coded: bool,
    all: bool,
}

impl ReferenceSlots {
    /// Parses `uncompressed_header()`; `None` for `show_existing_frame` (no tile groups follow).
    pub fn uncompressed_header(
        &mut self,
        r: &mut BitReader,
        seq: &SequenceHeader,
        temporal_id: u32,
        spatial_id: u32,
    ) -> Result<Option<FrameHeader>> {
        let Some(kind) = self.frame_kind(r, seq)? else {
            return Ok(None);
        };
        let disable_cdf_update = r.bit()?;
        let screen = screen_content(r, seq, kind)?;
        if let Some(ids) = seq.frame_ids {
            r.bits(ids.id_len())?; // current_frame_id
        }
        let frame_size_override_flag = frame_size_override_flag(r, seq, kind)?;
        let order_hint = r.bits(seq.order_hint_bits)?;
        let primary_ref_frame = if kind.frame_type.is_intra() || kind.error_resilient_mode {
            PRIMARY_REF_NONE
        } else {
            r.bits(3)?
        };
        buffer_removal_times(r, seq, temporal_id, spatial_id)?;
        let refresh_frame_flags = refresh_frame_flags(r, kind)?;
        self.ref_order_hints(r, seq, kind, refresh_frame_flags)?;
        let refs = self.frame_size_and_refs(r, seq, kind, screen, frame_size_override_flag)?;
        if !(seq.reduced_still_picture_header || disable_cdf_update) {
            r.bit()?; // disable_frame_end_update_cdf
        }
        let tile_info = tile_info(r, seq, &refs.size)?;
        let quantization = quantization_params(r, seq)?;
        let segmentation = self.segmentation_params(r, primary_ref_frame, &refs)?;
        delta_q_and_lf_params(r, quantization.base_q_idx, refs.allow_intrabc)?;
        let lossless = Lossless::of(quantization, &segmentation, &refs.size);
        loop_filter_params(r, seq, lossless, refs.allow_intrabc)?;
        cdef_params(r, seq, lossless, refs.allow_intrabc)?;
        lr_params(r, seq, lossless, refs.allow_intrabc)?;
        if !lossless.coded {
            r.bit()?; // tx_mode_select
        }
        let reference_select = !kind.frame_type.is_intra() && r.bit()?;
        self.skip_mode_params(r, seq, kind, reference_select, &refs, order_hint)?;
        if !(kind.frame_type.is_intra() || kind.error_resilient_mode || !seq.enable_warped_motion) {
            r.bit()?; // allow_warped_motion
        }
        r.bit()?; // reduced_tx_set
        global_motion_params(r, kind, refs.allow_high_precision_mv)?;
        film_grain_params(r, seq, kind)?;
        Ok(Some(FrameHeader {
            frame_type: kind.frame_type,
            show_frame: kind.show_frame,
            order_hint,
            refresh_frame_flags,
            size: refs.size,
            tile_info,
            segmentation,
        }))
    }

    /// The reference frame update process (7.20) once a frame has been decoded.
    pub fn refresh(&mut self, frame: &FrameHeader) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if frame.refresh_frame_flags & (1 << i) != 0 {
                *slot = RefSlot {
                    valid: true,
                    frame_type: frame.frame_type,
                    size: frame.size,
                    order_hint: frame.order_hint,
                    segmentation: frame.segmentation,
                };
            }
        }
    }

    /// From `show_existing_frame` to `error_resilient_mode`. A shown existing key frame
    /// refreshes every slot (7.21) and ends the header.
    fn frame_kind(&mut self, r: &mut BitReader, seq: &SequenceHeader) -> Result<Option<FrameKind>> {
        if seq.reduced_still_picture_header {
            return Ok(Some(FrameKind {
                frame_type: FrameType::Key,
                show_frame: true,
                showable_frame: false,
                error_resilient_mode: true,
            }));
        }
        let presentation_time_coded = seq
            .decoder_model
            .filter(|_| !seq.equal_picture_interval)
            .map(|m| m.frame_presentation_time_length);
        if r.bit()? {
            // show_existing_frame
            let frame_to_show = r.bits(3)? as usize;
            if let Some(n) = presentation_time_coded {
                r.bits(n)?; // frame_presentation_time
            }
            if let Some(ids) = seq.frame_ids {
                r.bits(ids.id_len())?; // display_frame_id
            }
            let slot = self.slots[frame_to_show];
            if slot.frame_type == FrameType::Key {
                self.slots = [slot; NUM_REF_FRAMES];
            }
            return Ok(None);
        }
        let frame_type = FrameType::from_bits(r.bits(2)?);
        let show_frame = r.bit()?;
        if let (true, Some(n)) = (show_frame, presentation_time_coded) {
            r.bits(n)?; // frame_presentation_time
        }
        let showable_frame = if show_frame {
            frame_type != FrameType::Key
        } else {
            r.bit()?
        };
        let error_resilient_mode = frame_type == FrameType::Switch
            || (frame_type == FrameType::Key && show_frame)
            || r.bit()?;
        if frame_type == FrameType::Key && show_frame {
            for slot in &mut self.slots {
                slot.valid = false;
                slot.order_hint = 0;
            }
        }
        Ok(Some(FrameKind {
            frame_type,
            show_frame,
            showable_frame,
            error_resilient_mode,
        }))
    }

    /// `ref_order_hint[]` of error-resilient frames: slots whose hint differs are invalid.
    fn ref_order_hints(
        &mut self,
        r: &mut BitReader,
        seq: &SequenceHeader,
        kind: FrameKind,
        refresh_frame_flags: u8,
    ) -> Result<()> {
        let coded = (!kind.frame_type.is_intra() || refresh_frame_flags != ALL_FRAMES)
            && kind.error_resilient_mode
            && seq.enable_order_hint;
        if coded {
            for slot in &mut self.slots {
                let hint = r.bits(seq.order_hint_bits)?;
                if hint != slot.order_hint || !slot.valid {
                    *slot = RefSlot {
                        order_hint: hint,
                        ..RefSlot::default()
                    };
                }
            }
        }
        Ok(())
    }

    /// The `FrameIsIntra` branch: frame and render size, `allow_intrabc`, or the references,
    /// `frame_size_with_refs()`, `allow_high_precision_mv`, the interpolation filter and the
    /// motion-mode flags.
    fn frame_size_and_refs(
        &self,
        r: &mut BitReader,
        seq: &SequenceHeader,
        kind: FrameKind,
        screen: ScreenContent,
        frame_size_override_flag: bool,
    ) -> Result<FrameRefs> {
        let mut refs = FrameRefs::default();
        if kind.frame_type.is_intra() {
            refs.size = frame_size(r, seq, frame_size_override_flag)?;
            render_size(r, &mut refs.size)?;
            if screen.allow_screen_content_tools
                && refs.size.upscaled_width == refs.size.frame_width
            {
                refs.allow_intrabc = r.bit()?;
            }
            return Ok(refs);
        }
        if seq.enable_order_hint && r.bit()? {
            return Err(invalid(
                "frame_refs_short_signaling is not supported (no encoder Reel reads uses it)",
            ));
        }
        for idx in &mut refs.ref_frame_idx {
            *idx = r.bits(3)? as usize;
            if let Some(ids) = seq.frame_ids {
                r.bits(ids.delta_frame_id_length)?; // delta_frame_id_minus_1
            }
        }
        refs.size = if frame_size_override_flag && !kind.error_resilient_mode {
            self.frame_size_with_refs(r, seq, &refs.ref_frame_idx)?
        } else {
            let mut size = frame_size(r, seq, frame_size_override_flag)?;
            render_size(r, &mut size)?;
            size
        };
        refs.allow_high_precision_mv = !screen.force_integer_mv && r.bit()?;
        if !r.bit()? {
            r.bits(2)?; // is_filter_switchable == 0: interpolation_filter
        }
        r.bit()?; // is_motion_mode_switchable
        if !kind.error_resilient_mode && seq.enable_ref_frame_mvs {
            r.bit()?; // use_ref_frame_mvs
        }
        Ok(refs)
    }

    /// `frame_size_with_refs()` (5.9.7).
    fn frame_size_with_refs(
        &self,
        r: &mut BitReader,
        seq: &SequenceHeader,
        ref_frame_idx: &[usize; REFS_PER_FRAME],
    ) -> Result<FrameSize> {
        for &idx in ref_frame_idx {
            if r.bit()? {
                // found_ref
                let found = self.slots[idx].size;
                let mut size = FrameSize {
                    frame_width: found.upscaled_width,
                    ..found
                };
                superres_params(r, seq, &mut size)?;
                return Ok(size);
            }
        }
        let mut size = frame_size(r, seq, true)?;
        render_size(r, &mut size)?;
        Ok(size)
    }

    /// `segmentation_params()` (5.9.14). Without `segmentation_update_data` the features
    /// are those of the primary reference frame (`load_previous()`).
    fn segmentation_params(
        &self,
        r: &mut BitReader,
        primary_ref_frame: u32,
        refs: &FrameRefs,
    ) -> Result<Segmentation> {
        let mut seg = Segmentation {
            enabled: r.bit()?,
            ..Segmentation::default()
        };
        if !seg.enabled {
            return Ok(seg);
        }
        let update_data = if primary_ref_frame == PRIMARY_REF_NONE {
            true
        } else {
            if r.bit()? {
                r.bit()?; // segmentation_update_map, then segmentation_temporal_update
            }
            r.bit()?
        };
        if !update_data {
            let previous = self.slots[refs.ref_frame_idx[primary_ref_frame as usize]].segmentation;
            seg.feature_enabled = previous.feature_enabled;
            seg.feature_data = previous.feature_data;
            return Ok(seg);
        }
        for segment in 0..MAX_SEGMENTS {
            for feature in 0..SEG_LVL_MAX {
                let enabled = r.bit()?;
                seg.feature_enabled[segment][feature] = enabled;
                if enabled {
                    seg.feature_data[segment][feature] = feature_value(r, feature)?;
                }
            }
        }
        Ok(seg)
    }

    /// `skip_mode_params()` (5.9.22): `skip_mode_present` is coded only when a forward and
    /// a backward (or a second forward) reference exist.
    fn skip_mode_params(
        &self,
        r: &mut BitReader,
        seq: &SequenceHeader,
        kind: FrameKind,
        reference_select: bool,
        refs: &FrameRefs,
        order_hint: u32,
    ) -> Result<()> {
        if kind.frame_type.is_intra() || !reference_select || !seq.enable_order_hint {
            return Ok(());
        }
        let dist = |a: u32, b: u32| relative_dist(seq, a, b);
        let hints = refs.ref_frame_idx.map(|idx| self.slots[idx].order_hint);
        let (mut forward, mut backward): (Option<u32>, Option<u32>) = (None, None);
        for &hint in &hints {
            if dist(hint, order_hint) < 0 {
                if forward.is_none_or(|f| dist(hint, f) > 0) {
                    forward = Some(hint);
                }
            } else if dist(hint, order_hint) > 0 && backward.is_none_or(|b| dist(hint, b) < 0) {
                backward = Some(hint);
            }
        }
        let skip_mode_allowed = match (forward, backward) {
            (None, _) => false,
            (Some(_), Some(_)) => true,
            (Some(f), None) => hints.iter().any(|&hint| dist(hint, f) < 0),
        };
        if skip_mode_allowed {
            r.bit()?; // skip_mode_present
        }
        Ok(())
    }
}

/// `allow_screen_content_tools` and `force_integer_mv`.
fn screen_content(
    r: &mut BitReader,
    seq: &SequenceHeader,
    kind: FrameKind,
) -> Result<ScreenContent> {
    let allow_screen_content_tools = if seq.seq_force_screen_content_tools == SELECT {
        r.bit()?
    } else {
        seq.seq_force_screen_content_tools == 1
    };
    let mut force_integer_mv = allow_screen_content_tools
        && if seq.seq_force_integer_mv == SELECT {
            r.bit()?
        } else {
            seq.seq_force_integer_mv == 1
        };
    if kind.frame_type.is_intra() {
        force_integer_mv = true;
    }
    Ok(ScreenContent {
        allow_screen_content_tools,
        force_integer_mv,
    })
}

fn frame_size_override_flag(
    r: &mut BitReader,
    seq: &SequenceHeader,
    kind: FrameKind,
) -> Result<bool> {
    Ok(if kind.frame_type == FrameType::Switch {
        true
    } else {
        !seq.reduced_still_picture_header && r.bit()?
    })
}

/// The `buffer_removal_time` loop of the operating points that carry a decoder model.
fn buffer_removal_times(
    r: &mut BitReader,
    seq: &SequenceHeader,
    temporal_id: u32,
    spatial_id: u32,
) -> Result<()> {
    let Some(model) = seq.decoder_model else {
        return Ok(());
    };
    if !r.bit()? {
        return Ok(()); // buffer_removal_time_present_flag
    }
    for op in &seq.operating_points {
        if op.decoder_model_present && op.includes(temporal_id, spatial_id) {
            r.bits(model.buffer_removal_time_length)?;
        }
    }
    Ok(())
}

fn refresh_frame_flags(r: &mut BitReader, kind: FrameKind) -> Result<u8> {
    Ok(
        if kind.frame_type == FrameType::Switch
            || (kind.frame_type == FrameType::Key && kind.show_frame)
        {
            ALL_FRAMES
        } else {
            r.bits(8)? as u8
        },
    )
}

/// `frame_size()` (5.9.5) with `superres_params()`.
fn frame_size(r: &mut BitReader, seq: &SequenceHeader, override_flag: bool) -> Result<FrameSize> {
    let mut size = FrameSize::default();
    if override_flag {
        size.frame_width = r.bits(seq.frame_width_bits)? + 1;
        size.frame_height = r.bits(seq.frame_height_bits)? + 1;
    } else {
        size.frame_width = seq.max_width;
        size.frame_height = seq.max_height;
    }
    superres_params(r, seq, &mut size)?;
    Ok(size)
}

/// `superres_params()` (5.9.8): the coded width from the upscaled one.
fn superres_params(r: &mut BitReader, seq: &SequenceHeader, size: &mut FrameSize) -> Result<()> {
    const SUPERRES_NUM: u32 = 8;
    let denom = if seq.enable_superres && r.bit()? {
        r.bits(3)? + 9
    } else {
        SUPERRES_NUM
    };
    size.upscaled_width = size.frame_width;
    size.frame_width = (size.upscaled_width * SUPERRES_NUM + denom / 2) / denom;
    Ok(())
}

/// `render_size()` (5.9.6).
fn render_size(r: &mut BitReader, size: &mut FrameSize) -> Result<()> {
    if r.bit()? {
        size.render_width = r.bits(16)? + 1;
        size.render_height = r.bits(16)? + 1;
    } else {
        size.render_width = size.upscaled_width;
        size.render_height = size.frame_height;
    }
    Ok(())
}

/// `tile_log2(blkSize, target)`.
fn tile_log2(blk_size: u32, target: u32) -> u32 {
    let mut k = 0;
    while (blk_size << k) < target {
        k += 1;
    }
    k
}

/// `tile_info()` (5.9.15).
fn tile_info(r: &mut BitReader, seq: &SequenceHeader, size: &FrameSize) -> Result<TileInfo> {
    let (mi_cols, mi_rows) = size.mi_cols_rows();
    let sb_shift = if seq.use_128x128_superblock { 5 } else { 4 };
    let sb_cols = (mi_cols + (1 << sb_shift) - 1) >> sb_shift;
    let sb_rows = (mi_rows + (1 << sb_shift) - 1) >> sb_shift;
    let sb_size = sb_shift + 2;
    let max_tile_width_sb = MAX_TILE_WIDTH >> sb_size;
    let mut max_tile_area_sb = MAX_TILE_AREA >> (2 * sb_size);
    let min_log2_tile_cols = tile_log2(max_tile_width_sb, sb_cols);
    let max_log2_tile_cols = tile_log2(1, sb_cols.min(MAX_TILE_COLS));
    let max_log2_tile_rows = tile_log2(1, sb_rows.min(MAX_TILE_ROWS));
    let min_log2_tiles = min_log2_tile_cols.max(tile_log2(max_tile_area_sb, sb_rows * sb_cols));
    let mut info = TileInfo::default();
    if r.bit()? {
        // uniform_tile_spacing_flag
        info.tile_cols_log2 = min_log2_tile_cols;
        while info.tile_cols_log2 < max_log2_tile_cols && r.bit()? {
            info.tile_cols_log2 += 1; // increment_tile_cols_log2
        }
        let tile_width_sb = (sb_cols + (1 << info.tile_cols_log2) - 1) >> info.tile_cols_log2;
        info.tile_cols = sb_cols.div_ceil(tile_width_sb.max(1));
        info.tile_rows_log2 = min_log2_tiles.saturating_sub(info.tile_cols_log2);
        while info.tile_rows_log2 < max_log2_tile_rows && r.bit()? {
            info.tile_rows_log2 += 1; // increment_tile_rows_log2
        }
        let tile_height_sb = (sb_rows + (1 << info.tile_rows_log2) - 1) >> info.tile_rows_log2;
        info.tile_rows = sb_rows.div_ceil(tile_height_sb.max(1));
    } else {
        let (mut widest_tile_sb, mut start_sb) = (0, 0);
        while start_sb < sb_cols {
            let max_width = (sb_cols - start_sb).min(max_tile_width_sb);
            let size_sb = r.ns(max_width)? + 1; // width_in_sbs_minus_1
            widest_tile_sb = widest_tile_sb.max(size_sb);
            start_sb += size_sb;
            info.tile_cols += 1;
        }
        info.tile_cols_log2 = tile_log2(1, info.tile_cols);
        max_tile_area_sb = if min_log2_tiles > 0 {
            (sb_rows * sb_cols) >> (min_log2_tiles + 1)
        } else {
            sb_rows * sb_cols
        };
        let max_tile_height_sb = (max_tile_area_sb / widest_tile_sb.max(1)).max(1);
        let mut start_sb = 0;
        while start_sb < sb_rows {
            let max_height = (sb_rows - start_sb).min(max_tile_height_sb);
            start_sb += r.ns(max_height)? + 1; // height_in_sbs_minus_1
            info.tile_rows += 1;
        }
        info.tile_rows_log2 = tile_log2(1, info.tile_rows);
    }
    info.tile_size_bytes = 4;
    if info.tile_cols_log2 > 0 || info.tile_rows_log2 > 0 {
        r.bits(info.tile_rows_log2 + info.tile_cols_log2)?; // context_update_tile_id
        info.tile_size_bytes = r.bits(2)? + 1;
    }
    if info.num_tiles() == 0 {
        return Err(invalid("frame without tiles"));
    }
    Ok(info)
}

/// `read_delta_q()`: `delta_coded`, then `su(1+6)`.
fn read_delta_q(r: &mut BitReader) -> Result<i32> {
    Ok(if r.bit()? { r.su(7)? } else { 0 })
}

/// `quantization_params()` (5.9.12).
fn quantization_params(r: &mut BitReader, seq: &SequenceHeader) -> Result<Quantization> {
    let base_q_idx = r.bits(8)?;
    let mut any_delta_nonzero = read_delta_q(r)? != 0; // DeltaQYDc
    if seq.num_planes() > 1 {
        let diff_uv_delta = seq.separate_uv_delta_q && r.bit()?;
        any_delta_nonzero |= read_delta_q(r)? != 0; // DeltaQUDc
        any_delta_nonzero |= read_delta_q(r)? != 0; // DeltaQUAc
        if diff_uv_delta {
            any_delta_nonzero |= read_delta_q(r)? != 0; // DeltaQVDc
            any_delta_nonzero |= read_delta_q(r)? != 0; // DeltaQVAc
        }
    }
    if r.bit()? {
        // using_qmatrix: qm_y, qm_u, and qm_v when coded separately
        r.bits(8)?;
        if seq.separate_uv_delta_q {
            r.bits(4)?;
        }
    }
    Ok(Quantization {
        base_q_idx,
        any_delta_nonzero,
    })
}

/// One `feature_value` of `segmentation_params()`, clipped as the spec says.
fn feature_value(r: &mut BitReader, feature: usize) -> Result<i32> {
    let bits = SEGMENTATION_FEATURE_BITS[feature];
    let max = SEGMENTATION_FEATURE_MAX[feature];
    Ok(if SEGMENTATION_FEATURE_SIGNED[feature] {
        r.su(1 + bits)?.clamp(-max, max)
    } else {
        (r.bits(bits)? as i32).clamp(0, max)
    })
}

/// `delta_q_params()` and `delta_lf_params()` (5.9.17, 5.9.18).
fn delta_q_and_lf_params(r: &mut BitReader, base_q_idx: u32, allow_intrabc: bool) -> Result<()> {
    let delta_q_present = base_q_idx > 0 && r.bit()?;
    if delta_q_present {
        r.bits(2)?; // delta_q_res
        if !allow_intrabc && r.bit()? {
            r.bits(3)?; // delta_lf_present: delta_lf_res, delta_lf_multi
        }
    }
    Ok(())
}

impl Lossless {
    /// `CodedLossless`: every segment's `qindex` is 0 and no DC/AC delta is coded;
    /// `AllLossless`: also not scaled by superres.
    fn of(q: Quantization, seg: &Segmentation, size: &FrameSize) -> Self {
        let coded = !q.any_delta_nonzero
            && (0..MAX_SEGMENTS).all(|segment| {
                let qindex = if seg.enabled && seg.feature_enabled[segment][0] {
                    (q.base_q_idx as i32 + seg.feature_data[segment][0]).clamp(0, 255)
                } else {
                    q.base_q_idx as i32
                };
                qindex == 0
            });
        Self {
            coded,
            all: coded && size.frame_width == size.upscaled_width,
        }
    }
}

/// `loop_filter_params()` (5.9.11).
fn loop_filter_params(
    r: &mut BitReader,
    seq: &SequenceHeader,
    lossless: Lossless,
    allow_intrabc: bool,
) -> Result<()> {
    if lossless.coded || allow_intrabc {
        return Ok(());
    }
    let level_0 = r.bits(6)?;
    let level_1 = r.bits(6)?;
    if seq.num_planes() > 1 && (level_0 != 0 || level_1 != 0) {
        r.bits(12)?; // loop_filter_level[2], [3]
    }
    r.bits(3)?; // loop_filter_sharpness
    if r.bit()? && r.bit()? {
        // loop_filter_delta_enabled, loop_filter_delta_update: 8 reference and 2 mode deltas
        for _ in 0..10 {
            if r.bit()? {
                r.su(7)?;
            }
        }
    }
    Ok(())
}

/// `cdef_params()` (5.9.19).
fn cdef_params(
    r: &mut BitReader,
    seq: &SequenceHeader,
    lossless: Lossless,
    allow_intrabc: bool,
) -> Result<()> {
    if lossless.coded || allow_intrabc || !seq.enable_cdef {
        return Ok(());
    }
    r.bits(2)?; // cdef_damping_minus_3
    let cdef_bits = r.bits(2)?;
    let strength_bits = if seq.num_planes() > 1 { 12 } else { 6 };
    for _ in 0..(1 << cdef_bits) {
        r.bits(strength_bits)?;
    }
    Ok(())
}

/// `lr_params()` (5.9.20).
fn lr_params(
    r: &mut BitReader,
    seq: &SequenceHeader,
    lossless: Lossless,
    allow_intrabc: bool,
) -> Result<()> {
    if lossless.all || allow_intrabc || !seq.enable_restoration {
        return Ok(());
    }
    let (mut uses_lr, mut uses_chroma_lr) = (false, false);
    for plane in 0..seq.num_planes() {
        if r.bits(2)? != 0 {
            uses_lr = true;
            uses_chroma_lr |= plane > 0;
        }
    }
    if uses_lr {
        let lr_unit_shift = r.bit()?;
        if lr_unit_shift && !seq.use_128x128_superblock {
            r.bit()?; // lr_unit_extra_shift
        }
        if seq.subsampling_x && seq.subsampling_y && uses_chroma_lr {
            r.bit()?; // lr_uv_shift
        }
    }
    Ok(())
}

/// `get_relative_dist()`.
fn relative_dist(seq: &SequenceHeader, a: u32, b: u32) -> i32 {
    if !seq.enable_order_hint {
        return 0;
    }
    let diff = a as i32 - b as i32;
    let m = 1i32 << (seq.order_hint_bits - 1);
    (diff & (m - 1)) - (diff & m)
}

/// `global_motion_params()` (5.9.24).
fn global_motion_params(
    r: &mut BitReader,
    kind: FrameKind,
    allow_high_precision_mv: bool,
) -> Result<()> {
    #[derive(PartialEq)]
    enum Motion {
        Identity,
        Translation,
        RotZoom,
        Affine,
    }
    if kind.frame_type.is_intra() {
        return Ok(());
    }
    for _ in 0..REFS_PER_FRAME {
        let motion = if !r.bit()? {
            Motion::Identity
        } else if r.bit()? {
            Motion::RotZoom
        } else if r.bit()? {
            Motion::Translation
        } else {
            Motion::Affine
        };
        let params: &[usize] = match motion {
            Motion::Identity => &[],
            Motion::Translation => &[0, 1],
            Motion::RotZoom => &[2, 3, 0, 1],
            Motion::Affine => &[2, 3, 4, 5, 0, 1],
        };
        for &idx in params {
            // read_global_param(): GM_ABS_TRANS_ONLY_BITS, GM_ABS_TRANS_BITS, GM_ABS_ALPHA_BITS
            let abs_bits = match (idx < 2, &motion) {
                (true, Motion::Translation) => 9 - u32::from(!allow_high_precision_mv),
                _ => 12,
            };
            let mx = 1u32 << abs_bits;
            decode_subexp(r, 2 * mx + 1)?;
        }
    }
    Ok(())
}

/// `decode_subexp(numSyms)`: the bits it reads do not depend on the reference value of
/// `decode_signed_subexp_with_ref`, so the value itself is not needed.
fn decode_subexp(r: &mut BitReader, num_syms: u32) -> Result<()> {
    let k = 3u32;
    let (mut i, mut mk) = (0u32, 0u32);
    loop {
        let b2 = if i > 0 { k + i - 1 } else { k };
        let a = 1u32 << b2;
        if num_syms <= mk + 3 * a {
            r.ns(num_syms - mk)?; // subexp_final_bits
            return Ok(());
        }
        if !r.bit()? {
            r.bits(b2)?; // subexp_bits
            return Ok(());
        }
        i += 1;
        mk += a;
    }
}

/// `film_grain_params()` (5.9.30).
fn film_grain_params(r: &mut BitReader, seq: &SequenceHeader, kind: FrameKind) -> Result<()> {
    if !seq.film_grain_params_present || !(kind.show_frame || kind.showable_frame) || !r.bit()? {
        return Ok(()); // apply_grain
    }
    r.bits(16)?; // grain_seed
    let update_grain = kind.frame_type != FrameType::Inter || r.bit()?;
    if !update_grain {
        r.bits(3)?; // film_grain_params_ref_idx
        return Ok(());
    }
    let num_y_points = r.bits(4)?;
    r.skip(16 * num_y_points as usize)?; // point_y_value, point_y_scaling
    let chroma_scaling_from_luma = !seq.monochrome && r.bit()?;
    let (mut num_cb_points, mut num_cr_points) = (0, 0);
    if !(seq.monochrome
        || chroma_scaling_from_luma
        || (seq.subsampling_x && seq.subsampling_y && num_y_points == 0))
    {
        num_cb_points = r.bits(4)?;
        r.skip(16 * num_cb_points as usize)?;
        num_cr_points = r.bits(4)?;
        r.skip(16 * num_cr_points as usize)?;
    }
    r.bits(2)?; // grain_scaling_minus_8
    let ar_coeff_lag = r.bits(2)?;
    let num_pos_luma = 2 * ar_coeff_lag * (ar_coeff_lag + 1);
    let num_pos_chroma = if num_y_points > 0 {
        r.skip(8 * num_pos_luma as usize)?; // ar_coeffs_y_plus_128
        num_pos_luma + 1
    } else {
        num_pos_luma
    };
    if chroma_scaling_from_luma || num_cb_points > 0 {
        r.skip(8 * num_pos_chroma as usize)?; // ar_coeffs_cb_plus_128
    }
    if chroma_scaling_from_luma || num_cr_points > 0 {
        r.skip(8 * num_pos_chroma as usize)?; // ar_coeffs_cr_plus_128
    }
    r.bits(4)?; // ar_coeff_shift_minus_6, grain_scale_shift
    if num_cb_points > 0 {
        r.bits(25)?; // cb_mult, cb_luma_mult, cb_offset
    }
    if num_cr_points > 0 {
        r.bits(25)?; // cr_mult, cr_luma_mult, cr_offset
    }
    r.bits(2)?; // overlap_flag, clip_to_restricted_range
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;

    /// An 8-bit 4:2:0 sequence header with order hints (7 bits), CDEF and restoration on.
    fn sequence(width: u32, height: u32) -> SequenceHeader {
        SequenceHeader {
            profile: 0,
            level_idx: 8,
            tier: 0,
            bit_depth: 8,
            monochrome: false,
            subsampling_x: true,
            subsampling_y: true,
            chroma_sample_position: 0,
            max_width: width,
            max_height: height,
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            full_range: false,
            reduced_still_picture_header: false,
            equal_picture_interval: false,
            decoder_model: None,
            operating_points: Vec::new(),
            frame_width_bits: 16,
            frame_height_bits: 16,
            frame_ids: None,
            use_128x128_superblock: false,
            enable_warped_motion: true,
            enable_order_hint: true,
            enable_ref_frame_mvs: true,
            seq_force_screen_content_tools: SELECT,
            seq_force_integer_mv: SELECT,
            order_hint_bits: 7,
            enable_superres: false,
            enable_cdef: true,
            enable_restoration: true,
            separate_uv_delta_q: false,
            film_grain_params_present: false,
        }
    }

    fn reader(w: &BitWriter) -> Vec<u8> {
        w.bytes()
    }

    fn size(width: u32, height: u32) -> FrameSize {
        FrameSize {
            frame_width: width,
            frame_height: height,
            upscaled_width: width,
            render_width: width,
            render_height: height,
        }
    }

    #[test]
    fn tile_info_uniform_grid_of_a_1080p_frame() {
        // 1920x1080, 64x64 superblocks: 30x17 superblocks. Two increments of the column
        // log2 and one of the row log2 give a 4x2 grid; then context_update_tile_id (3
        // bits) and tile_size_bytes_minus_1.
        let mut w = BitWriter::default();
        w.flag(true); // uniform_tile_spacing_flag
        w.flag(true).flag(true).flag(false); // increment_tile_cols_log2 x2, stop
        w.flag(true).flag(false); // increment_tile_rows_log2, stop
        w.u(5, 3).u(1, 2);
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let info = tile_info(&mut r, &sequence(1920, 1080), &size(1920, 1080)).unwrap();
        assert_eq!(
            info,
            TileInfo {
                tile_cols: 4,
                tile_rows: 2,
                tile_cols_log2: 2,
                tile_rows_log2: 1,
                tile_size_bytes: 2
            }
        );
        assert_eq!(r.position(), w.len());
    }

    #[test]
    fn tile_info_single_tile_codes_no_size_field() {
        // 640x360: 10x6 superblocks; no increments, so one tile and nothing after.
        let mut w = BitWriter::default();
        w.flag(true).flag(false).flag(false);
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let info = tile_info(&mut r, &sequence(640, 360), &size(640, 360)).unwrap();
        assert_eq!(
            (info.tile_cols, info.tile_rows, info.num_tiles()),
            (1, 1, 1)
        );
        assert_eq!(r.position(), 3);
    }

    #[test]
    fn tile_info_explicit_widths_use_ns() {
        // 1280x720: 20x12 superblocks. Columns 12+8 (ns(20) then ns(8)), rows 12 (ns(12)).
        let mut w = BitWriter::default();
        w.flag(false);
        // ns(20): w = 5, m = 12; value 11 < 12 -> 4 bits
        w.u(11, 4);
        // ns(8): w = 4, m = 8; value 7 < 8 -> 3 bits
        w.u(7, 3);
        // rows: max tile area is the whole frame, widest 12 -> max height 20 -> ns(12):
        // w = 4, m = 4; value 11 >= 4: 3 bits v, then 1 extra: (v << 1) - 4 + extra = 11
        w.u(7, 3).u(1, 1);
        w.u(0, 1).u(3, 2); // context_update_tile_id (1 bit), tile_size_bytes_minus_1 = 3
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let info = tile_info(&mut r, &sequence(1280, 720), &size(1280, 720)).unwrap();
        assert_eq!(
            (info.tile_cols, info.tile_rows, info.tile_cols_log2),
            (2, 1, 1)
        );
        assert_eq!(info.tile_size_bytes, 4);
        assert_eq!(r.position(), w.len());
    }

    #[test]
    fn quantization_params_track_lossless_deltas() {
        let mut w = BitWriter::default();
        w.u(0, 8); // base_q_idx 0
        w.flag(false); // DeltaQYDc
        w.flag(true).su(-3, 7); // DeltaQUDc
        w.flag(false); // DeltaQUAc
        w.flag(true).u(0xab, 8); // using_qmatrix, qm_y, qm_u
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let q = quantization_params(&mut r, &sequence(64, 64)).unwrap();
        assert_eq!(q.base_q_idx, 0);
        assert!(q.any_delta_nonzero);
        assert_eq!(r.position(), w.len());
        let lossless = Lossless::of(q, &Segmentation::default(), &size(64, 64));
        assert!(!lossless.coded, "a chroma delta makes the frame lossy");
        let q = Quantization {
            base_q_idx: 0,
            any_delta_nonzero: false,
        };
        assert!(Lossless::of(q, &Segmentation::default(), &size(64, 64)).all);
    }

    #[test]
    fn segmentation_reads_and_clips_features() {
        let mut w = BitWriter::default();
        w.flag(true); // segmentation_enabled (primary_ref_frame none: update_data implied)
        for segment in 0..8 {
            for feature in 0..8 {
                let on = segment == 1 && (feature == 0 || feature == 5);
                w.flag(on);
                if on && feature == 0 {
                    w.su(-256, 9); // below -255: clipped
                } else if on {
                    w.u(6, 3);
                }
            }
        }
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let seg = ReferenceSlots::default()
            .segmentation_params(&mut r, PRIMARY_REF_NONE, &FrameRefs::default())
            .unwrap();
        assert!(seg.enabled && seg.feature_enabled[1][0] && seg.feature_enabled[1][5]);
        assert_eq!(seg.feature_data[1][0], -255);
        assert_eq!(seg.feature_data[1][5], 6);
        assert_eq!(r.position(), w.len());
        // With qindex 255 - 255 = 0 in segment 1 only, the frame is not lossless.
        let q = Quantization {
            base_q_idx: 255,
            any_delta_nonzero: false,
        };
        assert!(!Lossless::of(q, &seg, &size(64, 64)).coded);
    }

    #[test]
    fn segmentation_without_update_takes_the_primary_reference_frame_features() {
        let mut slots = ReferenceSlots::default();
        let mut seg = Segmentation {
            enabled: true,
            ..Segmentation::default()
        };
        seg.feature_enabled[2][1] = true;
        seg.feature_data[2][1] = -7;
        slots.slots[5].segmentation = seg;
        let refs = FrameRefs {
            ref_frame_idx: [0, 0, 5, 0, 0, 0, 0],
            ..FrameRefs::default()
        };
        let mut w = BitWriter::default();
        w.flag(true).flag(false).flag(false); // enabled, no map update, no data update
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        let got = slots.segmentation_params(&mut r, 2, &refs).unwrap();
        assert_eq!(got.feature_data[2][1], -7);
        assert_eq!(r.position(), 3);
    }

    #[test]
    fn loop_filter_cdef_and_restoration_lengths() {
        let seq = sequence(64, 64);
        let lossy = Lossless {
            coded: false,
            all: false,
        };
        let mut w = BitWriter::default();
        w.u(10, 6).u(0, 6).u(0, 12).u(3, 3); // levels 0/1, then [2], [3], sharpness
        w.flag(true).flag(true); // delta_enabled, delta_update
        for i in 0..10 {
            w.flag(i == 3);
            if i == 3 {
                w.su(-2, 7);
            }
        }
        let lf_end = w.len();
        w.u(1, 2).u(1, 2).u(0, 12).u(0, 12); // damping, cdef_bits = 1: two strengths
        let cdef_end = w.len();
        w.u(0, 2).u(1, 2).u(0, 2); // lr_type per plane: chroma U uses restoration
        w.flag(true).flag(false); // lr_unit_shift, lr_unit_extra_shift
        w.flag(true); // lr_uv_shift
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        loop_filter_params(&mut r, &seq, lossy, false).unwrap();
        assert_eq!(r.position(), lf_end);
        cdef_params(&mut r, &seq, lossy, false).unwrap();
        assert_eq!(r.position(), cdef_end);
        lr_params(&mut r, &seq, lossy, false).unwrap();
        assert_eq!(r.position(), w.len());
        // Lossless frames and intra block copy code none of them.
        let mut r = BitReader::new(&bytes, "test");
        let lossless = Lossless {
            coded: true,
            all: true,
        };
        loop_filter_params(&mut r, &seq, lossless, false).unwrap();
        cdef_params(&mut r, &seq, lossy, true).unwrap();
        lr_params(&mut r, &seq, lossless, false).unwrap();
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn global_motion_parameter_lengths() {
        let inter = FrameKind {
            frame_type: FrameType::Inter,
            show_frame: true,
            showable_frame: true,
            error_resilient_mode: false,
        };
        let mut w = BitWriter::default();
        // LAST: translation (is_global, !rot_zoom, is_translation): two params with
        // abs bits 9 - 1 = 8 (no high precision): decode_subexp(513)
        w.flag(true).flag(false).flag(true);
        for _ in 0..2 {
            // subexp: i = 0, b2 = 3, a = 8: 513 > 24 -> more bit 0, then 3 bits
            w.flag(false).u(5, 3);
        }
        for _ in 1..7 {
            w.flag(false); // identity
        }
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        global_motion_params(&mut r, inter, false).unwrap();
        assert_eq!(r.position(), w.len());
        let key = FrameKind {
            frame_type: FrameType::Key,
            ..inter
        };
        let mut r = BitReader::new(&bytes, "test");
        global_motion_params(&mut r, key, false).unwrap();
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn decode_subexp_reaches_final_bits() {
        // numSyms 9: a = 8 at i = 0, 9 <= 0 + 24: ns(9) at once (w = 4, m = 7: 3 bits for 2).
        let mut w = BitWriter::default();
        w.u(2, 3);
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        decode_subexp(&mut r, 9).unwrap();
        assert_eq!(r.position(), 3);
    }

    #[test]
    fn film_grain_lengths() {
        let mut seq = sequence(64, 64);
        seq.film_grain_params_present = true;
        let kind = FrameKind {
            frame_type: FrameType::Key,
            show_frame: true,
            showable_frame: false,
            error_resilient_mode: true,
        };
        let mut w = BitWriter::default();
        w.flag(true).u(1234, 16); // apply_grain, grain_seed (key frame: update implied)
        w.u(2, 4).u(0, 32); // two luma points
        w.flag(false); // chroma_scaling_from_luma
        w.u(1, 4).u(0, 16).u(0, 4); // one cb point, no cr point
        w.u(0, 2).u(1, 2); // grain_scaling_minus_8, ar_coeff_lag 1: 4 luma positions
        w.u(0, 32); // ar_coeffs_y
        w.u(0, 20).u(0, 20); // ar_coeffs_cb: 5 positions
        w.u(0, 4).u(0, 25).u(0, 2);
        let bytes = reader(&w);
        let mut r = BitReader::new(&bytes, "test");
        film_grain_params(&mut r, &seq, kind).unwrap();
        assert_eq!(r.position(), w.len());
        // Not shown and not showable: nothing coded.
        let hidden = FrameKind {
            show_frame: false,
            ..kind
        };
        let mut r = BitReader::new(&bytes, "test");
        film_grain_params(&mut r, &seq, hidden).unwrap();
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn relative_distance_wraps_around_order_hint_bits() {
        let seq = sequence(64, 64); // 7 bits
        assert_eq!(relative_dist(&seq, 2, 126), 4);
        assert_eq!(relative_dist(&seq, 126, 2), -4);
        assert_eq!(relative_dist(&seq, 10, 10), 0);
    }

    /// A whole key frame header: shown key frame, 640x360, one tile, base_q_idx 100.
    #[test]
    fn key_frame_header_end_to_end() {
        let seq = sequence(640, 360);
        let mut w = BitWriter::default();
        w.flag(false).u(0, 2).flag(true); // show_existing_frame, KEY_FRAME, show_frame
        w.flag(false); // disable_cdf_update
        w.flag(false); // allow_screen_content_tools
        w.flag(false); // frame_size_override_flag
        w.u(0, 7); // order_hint
        w.flag(false); // superres not enabled: only render_and_frame_size_different
        w.flag(false); // disable_frame_end_update_cdf
        w.flag(true).flag(false).flag(false); // tile_info: uniform, one tile
        w.u(100, 8).flag(false).flag(false).flag(false).flag(false); // q, 3 deltas, qmatrix
        w.flag(false); // segmentation_enabled
        w.flag(false); // delta_q_present
        w.u(0, 6).u(0, 6).u(0, 3).flag(false); // loop filter levels 0, sharpness, no deltas
        w.u(0, 2).u(0, 2).u(0, 12); // cdef: one strength
        w.u(0, 6); // lr_type x3: none
        w.flag(true); // tx_mode_select
        w.flag(false); // reduced_tx_set
        let bytes = reader(&w);
        let mut slots = ReferenceSlots::default();
        let mut r = BitReader::new(&bytes, "test");
        let header = slots
            .uncompressed_header(&mut r, &seq, 0, 0)
            .unwrap()
            .expect("not show_existing_frame");
        assert_eq!(r.position(), w.len());
        assert_eq!(header.frame_type, FrameType::Key);
        assert_eq!(header.refresh_frame_flags, ALL_FRAMES);
        assert_eq!(header.tile_info.num_tiles(), 1);
        assert_eq!(
            (header.size.frame_width, header.size.render_height),
            (640, 360)
        );
        slots.refresh(&header);
        assert!(slots
            .slots
            .iter()
            .all(|s| s.valid && s.size.upscaled_width == 640));
        // Every prefix is an error, never a panic.
        for len in 0..bytes.len() - 1 {
            let mut slots = ReferenceSlots::default();
            let mut r = BitReader::new(&bytes[..len], "test");
            assert!(slots.uncompressed_header(&mut r, &seq, 0, 0).is_err());
        }
    }
}
