//! Which bytes of a sample are protected, per codec.
//!
//! - H.264: in every slice NAL unit the length prefix, NAL header and slice header stay clear,
//!   the slice data is protected; other NAL units stay clear (ISO/IEC 23001-7 10.4, CMAF, Apple).
//! - AV1: only tile data is protected; OBU headers, sequence and frame headers and the tile
//!   group headers stay clear (AV1-ISOBMFF binding, section "Common Encryption").
//! - AAC, Opus: the whole sample (no subsamples).
//!
//! With `cenc` the protected part of each video subsample is a whole number of 16-byte blocks
//! (the remainder moves to the clear part in front), as CMAF requires; with `cbcs` it starts
//! right after the headers and the pattern leaves a trailing partial block clear.

use std::ops::Range;

use crate::crypt::{Scheme, Subsample};
use crate::{DrmError, Result};
use reel_media::av1::TileLocator;
use reel_media::h264::SliceLocator;
use reel_media::CodecConfig;

/// Finds the protected ranges of a codec's samples; the bitstream parsing is `reel-media`'s.
pub(crate) enum SubsampleMap {
    Whole,
    H264 {
        slices: SliceLocator,
        align: bool,
    },
    Av1 {
        tiles: Box<TileLocator>,
        align: bool,
    },
}

impl SubsampleMap {
    pub(crate) fn new(config: &CodecConfig, scheme: Scheme) -> Result<Self> {
        let align = scheme == Scheme::Cenc;
        Ok(match config {
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => SubsampleMap::Whole,
            CodecConfig::Avc(c) => SubsampleMap::H264 {
                slices: SliceLocator::new(c)?,
                align,
            },
            CodecConfig::Av1(c) => SubsampleMap::Av1 {
                tiles: Box::new(TileLocator::new(c)),
                align,
            },
            // Text tracks go out in the clear (they are not media a licence protects).
            CodecConfig::WebVtt(_) | CodecConfig::Imsc1 => {
                return Err(crate::DrmError::Unsupported {
                    problem: "text tracks are never encrypted".into(),
                })
            }
        })
    }

    /// The subsamples of one sample; empty for whole-sample encryption.
    pub(crate) fn subsamples(&mut self, sample: &[u8]) -> Result<Vec<Subsample>> {
        let (protected, align) = match self {
            SubsampleMap::Whole => return Ok(Vec::new()),
            SubsampleMap::H264 { slices, align } => (slices.slice_data(sample)?, *align),
            SubsampleMap::Av1 { tiles, align } => (tiles.tile_data(sample)?, *align),
        };
        subsamples_of(&protected, sample.len(), align)
    }
}

/// Turns the protected ranges of a sample (in order, not overlapping) into subsamples.
fn subsamples_of(
    protected: &[Range<usize>],
    sample_len: usize,
    align: bool,
) -> Result<Vec<Subsample>> {
    let mut out = Organizer::new(align);
    let mut cursor = 0;
    for range in protected {
        let clear = range
            .start
            .checked_sub(cursor)
            .ok_or_else(|| DrmError::Sample {
                problem: format!("protected ranges overlap at byte {}", range.start),
            })?;
        out.add(clear, range.len());
        cursor = range.end;
    }
    out.add(sample_len.saturating_sub(cursor), 0);
    out.finish(sample_len)
}

/// Collects (clear, protected) runs: block-aligns protected runs when asked, merges clear runs,
/// splits clear runs longer than 65535 bytes.
struct Organizer {
    align: bool,
    pending_clear: usize,
    out: Vec<Subsample>,
    total: usize,
}

impl Organizer {
    fn new(align: bool) -> Self {
        Self {
            align,
            pending_clear: 0,
            out: Vec::new(),
            total: 0,
        }
    }

    fn add(&mut self, mut clear: usize, mut protected: usize) {
        self.total += clear + protected;
        if self.align {
            let rest = protected % 16;
            clear += rest;
            protected -= rest;
        }
        self.pending_clear += clear;
        if protected == 0 {
            return;
        }
        self.push(protected);
    }

    fn push(&mut self, protected: usize) {
        while self.pending_clear > usize::from(u16::MAX) {
            self.out.push(Subsample {
                clear: u16::MAX,
                protected: 0,
            });
            self.pending_clear -= usize::from(u16::MAX);
        }
        self.out.push(Subsample {
            clear: self.pending_clear as u16,
            protected: protected as u32,
        });
        self.pending_clear = 0;
    }

    fn finish(mut self, sample_len: usize) -> Result<Vec<Subsample>> {
        if self.total != sample_len {
            return Err(DrmError::Sample {
                problem: format!("subsamples cover {} of {sample_len} bytes", self.total),
            });
        }
        if self.pending_clear > 0 {
            // A trailing clear run: a subsample with no protected bytes.
            self.push(0);
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_ranges_become_subsamples() {
        let v = subsamples_of(&[3..20, 24..40], 45, false).unwrap();
        assert_eq!(
            v,
            vec![
                Subsample {
                    clear: 3,
                    protected: 17
                },
                Subsample {
                    clear: 4,
                    protected: 16
                },
                Subsample {
                    clear: 5,
                    protected: 0
                },
            ]
        );
        assert!(subsamples_of(&[3..20, 10..40], 45, false).is_err());
    }

    #[test]
    fn organizer_aligns_merges_and_splits() {
        let mut o = Organizer::new(true);
        o.add(10, 100); // 100 = 6*16 + 4: 4 more clear
        o.add(5, 0);
        o.add(70_000, 32);
        let v = o.finish(10 + 100 + 5 + 70_000 + 32).unwrap();
        assert_eq!(
            v,
            vec![
                Subsample {
                    clear: 14,
                    protected: 96
                },
                Subsample {
                    clear: 65535,
                    protected: 0
                },
                Subsample {
                    clear: (5u32 + 70_000 - 65_535) as u16,
                    protected: 32
                },
            ]
        );
        let mut o = Organizer::new(false);
        o.add(3, 17);
        o.add(4, 0);
        assert_eq!(
            o.finish(24).unwrap(),
            vec![
                Subsample {
                    clear: 3,
                    protected: 17
                },
                Subsample {
                    clear: 4,
                    protected: 0
                }
            ]
        );
    }
}
