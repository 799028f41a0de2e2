//! `tile_group_obu()` (AV1 specification 5.11.1) and the walk over a temporal unit's OBUs
//! (5.3) that says where each tile's data is: what CENC's AV1 subsample encryption protects.

use std::ops::Range;

use super::frame_header::{FrameHeader, ReferenceSlots};
use super::sequence_header::SequenceHeader;
use super::{
    obus, Av1Config, Obu, OBU_FRAME, OBU_FRAME_HEADER, OBU_SEQUENCE_HEADER, OBU_TILE_GROUP,
};
use crate::bits::BitReader;
use crate::{MediaError, Result};

fn invalid(problem: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        what: "AV1 tile group",
        problem: problem.into(),
    }
}

/// Where the headers and tiles of one frame, frame header or tile group OBU are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObuLayout {
    pub obu: Obu,
    /// Bits from the start of the payload to the end of `uncompressed_header()`, when the
    /// OBU carries a frame header that was parsed.
    pub frame_header_bits: Option<usize>,
    /// Each tile's data, as byte ranges of the temporal unit.
    pub tiles: Vec<Range<usize>>,
}

/// Follows a stream's temporal units: the sequence header, the reference slots, and the
/// frame whose tile groups are being read.
pub struct TileLocator {
    seq: SequenceHeader,
    slots: ReferenceSlots,
    /// The header of the frame whose tile groups are still to come.
    frame: Option<FrameHeader>,
}

impl TileLocator {
    pub fn new(config: &Av1Config) -> Self {
        Self {
            seq: config.sequence_header.clone(),
            slots: ReferenceSlots::default(),
            frame: None,
        }
    }

    /// The byte ranges of tile data in one temporal unit, in order.
    pub fn tile_data(&mut self, temporal_unit: &[u8]) -> Result<Vec<Range<usize>>> {
        Ok(self
            .layout(temporal_unit)?
            .into_iter()
            .flat_map(|o| o.tiles)
            .collect())
    }

    /// The layout of every frame, frame header and tile group OBU of one temporal unit.
    pub fn layout(&mut self, temporal_unit: &[u8]) -> Result<Vec<ObuLayout>> {
        let mut out = Vec::new();
        for obu in obus(temporal_unit)? {
            let payload = &temporal_unit[obu.payload_start..obu.end];
            let mut layout = ObuLayout {
                obu,
                frame_header_bits: None,
                tiles: Vec::new(),
            };
            match obu.obu_type {
                OBU_SEQUENCE_HEADER => self.seq = SequenceHeader::parse(payload)?,
                // A frame header OBU repeated before the tile groups (or a redundant one)
                // changes nothing.
                OBU_FRAME_HEADER if self.frame.is_none() => {
                    let mut r = BitReader::new(payload, "AV1 frame header");
                    self.frame_header(&mut r, obu)?;
                    layout.frame_header_bits = Some(r.position());
                }
                OBU_FRAME | OBU_TILE_GROUP => {
                    let mut r = BitReader::new(payload, "AV1 frame");
                    if obu.obu_type == OBU_FRAME {
                        if self.frame.is_some() {
                            return Err(invalid("frame OBU while a frame's tiles are incomplete"));
                        }
                        self.frame_header(&mut r, obu)?;
                        layout.frame_header_bits = Some(r.position());
                        r.byte_align();
                    }
                    layout.tiles = self
                        .tile_group(&mut r, payload.len())?
                        .into_iter()
                        .map(|t| obu.payload_start + t.start..obu.payload_start + t.end)
                        .collect();
                }
                _ => continue,
            }
            out.push(layout);
        }
        Ok(out)
    }

    fn frame_header(&mut self, r: &mut BitReader, obu: Obu) -> Result<()> {
        self.frame = self.slots.uncompressed_header(
            r,
            &self.seq,
            u32::from(obu.temporal_id),
            u32::from(obu.spatial_id),
        )?;
        Ok(())
    }

    /// Reads a tile group; returns each tile's data as a byte range of the OBU payload.
    /// After the frame's last tile, the reference slots are refreshed.
    fn tile_group(&mut self, r: &mut BitReader, payload_len: usize) -> Result<Vec<Range<usize>>> {
        let frame = self
            .frame
            .as_ref()
            .ok_or_else(|| invalid("tile group without a frame header"))?;
        let info = frame.tile_info;
        let num_tiles = info.num_tiles();
        let tile_start_and_end_present = num_tiles > 1 && r.bit()?;
        let (tg_start, tg_end) = if tile_start_and_end_present {
            let bits = info.tile_cols_log2 + info.tile_rows_log2;
            (r.bits(bits)?, r.bits(bits)?)
        } else {
            (0, num_tiles - 1)
        };
        if tg_end < tg_start || tg_end >= num_tiles {
            return Err(invalid(format!(
                "tiles {tg_start}..={tg_end} of a frame with {num_tiles}"
            )));
        }
        r.byte_align();
        let mut pos = r.position() / 8;
        let mut tiles = Vec::with_capacity((tg_end - tg_start + 1) as usize);
        for tile in tg_start..=tg_end {
            let size = if tile == tg_end {
                payload_len
                    .checked_sub(pos)
                    .ok_or_else(|| invalid("tile group shorter than its header"))?
            } else {
                let n = info.tile_size_bytes as usize;
                let size_field = pos..pos + n;
                if size_field.end > payload_len {
                    return Err(invalid("tile_size_minus_1 runs past the end of the OBU"));
                }
                let mut size_minus_1 = 0usize;
                for (i, at) in size_field.enumerate() {
                    size_minus_1 |= usize::from(r.byte_at(at)?) << (8 * i); // le(TileSizeBytes)
                }
                pos += n;
                size_minus_1 + 1
            };
            if pos + size > payload_len {
                return Err(invalid("tile runs past the end of its OBU"));
            }
            tiles.push(pos..pos + size);
            pos += size;
        }
        if tg_end == num_tiles - 1 {
            let frame = self.frame.take().expect("checked above");
            self.slots.refresh(&frame);
        }
        Ok(tiles)
    }
}
