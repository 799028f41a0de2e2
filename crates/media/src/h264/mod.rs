//! H.264: the `avcC` record (ISO/IEC 14496-15), NAL unit walking over length-prefixed
//! samples, and the parameter sets and slice headers (ITU-T H.264 7.3) down to where slice
//! data starts.

mod parameter_sets;
mod rbsp;
mod slice_header;

pub use parameter_sets::{Pps, Sps};
pub use rbsp::Rbsp;
pub use slice_header::{ParameterSets, SliceLocator};

use crate::{MediaError, Result};

/// The `AVCDecoderConfigurationRecord` (`avcC`). The raw record is kept byte-exact so that
/// extensions (high-profile chroma fields) survive untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Size of the NAL length prefix in samples (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    record: Vec<u8>,
}

impl AvcConfig {
    /// Parses an `avcC` payload (GStreamer's `codec_data` for `stream-format=avc`).
    pub fn from_record(record: &[u8]) -> Result<Self> {
        let trunc = |needed| MediaError::Truncated {
            what: "avcC",
            needed,
            had: record.len(),
        };
        if record.len() < 7 {
            return Err(trunc(7));
        }
        if record[0] != 1 {
            return Err(MediaError::Invalid {
                what: "avcC",
                problem: format!("configurationVersion is {}, expected 1", record[0]),
            });
        }
        let nal_length_size = (record[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::Invalid {
                what: "avcC",
                problem: "NAL length size 3 is not allowed".into(),
            });
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Vec<u8>>> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len_end = *pos + 2;
                let len = usize::from(u16::from_be_bytes(
                    record
                        .get(*pos..len_end)
                        .ok_or(trunc(len_end))?
                        .try_into()
                        .unwrap(),
                ));
                let end = len_end + len;
                sets.push(record.get(len_end..end).ok_or(trunc(end))?.to_vec());
                *pos = end;
            }
            Ok(sets)
        };
        let num_sps = usize::from(record[pos] & 0x1f);
        pos += 1;
        let sps = read_sets(num_sps, &mut pos)?;
        let num_pps = usize::from(*record.get(pos).ok_or(trunc(pos + 1))?);
        pos += 1;
        let pps = read_sets(num_pps, &mut pos)?;
        if sps.is_empty() {
            return Err(MediaError::Invalid {
                what: "avcC",
                problem: "no sequence parameter set".into(),
            });
        }
        Ok(Self {
            profile_idc: record[1],
            constraint_flags: record[2],
            level_idc: record[3],
            nal_length_size,
            sps,
            pps,
            record: record.to_vec(),
        })
    }

    /// The `avcC` box payload, byte-exact as it was read.
    pub fn to_record(&self) -> &[u8] {
        &self.record
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// One NAL unit inside a length-prefixed sample, as offsets into that sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nal {
    /// `nal_unit_type` (low five bits of the first byte).
    pub nal_type: u8,
    /// Offset of the length prefix.
    pub start: usize,
    /// Offset of the NAL header byte.
    pub payload_start: usize,
    /// Offset one past the NAL unit.
    pub end: usize,
}

/// NAL unit type of a non-IDR slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// Walks the NAL units of a length-prefixed sample. Never trusts a length field.
pub fn nals(sample: &[u8], nal_length_size: u8) -> Result<Vec<Nal>> {
    let n = usize::from(nal_length_size);
    if !matches!(n, 1 | 2 | 4) {
        return Err(MediaError::Invalid {
            what: "H.264 sample",
            problem: format!("NAL length size {n}"),
        });
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < sample.len() {
        let prefix = sample.get(pos..pos + n).ok_or(MediaError::Truncated {
            what: "H.264 NAL length",
            needed: pos + n,
            had: sample.len(),
        })?;
        let len = prefix
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        let payload_start = pos + n;
        let end = payload_start
            .checked_add(len)
            .filter(|&e| e <= sample.len() && len > 0)
            .ok_or(MediaError::Truncated {
                what: "H.264 NAL unit",
                needed: payload_start.saturating_add(len),
                had: sample.len(),
            })?;
        out.push(Nal {
            nal_type: sample[payload_start] & 0x1f,
            start: pos,
            payload_start,
            end,
        });
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // avcC of an x264 High-profile 1280x720 stream (level 3.1), SPS/PPS shortened: the record
    // structure (ISO/IEC 14496-15 5.3.3.1) is what is under test.
    const AVCC: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1f, 0x01, 0x00, 0x03,
        0x68, 0xeb, 0xe3, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn parses_avcc() {
        let c = AvcConfig::from_record(AVCC).unwrap();
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.sps, vec![vec![0x67, 0x64, 0x00, 0x1f]]);
        assert_eq!(c.pps, vec![vec![0x68, 0xeb, 0xe3]]);
        assert_eq!(c.to_record(), AVCC);
        assert!(AvcConfig::from_record(&AVCC[..10]).is_err());
    }

    #[test]
    fn walks_nals_without_trusting_lengths() {
        let sample = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06];
        let n = nals(&sample, 4).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].nal_type, NAL_IDR);
        assert_eq!((n[1].payload_start, n[1].end), (10, 11));
        assert!(nals(&[0, 0, 0, 9, 0x65], 4).is_err());
        assert!(nals(&[0, 0, 0], 4).is_err());
    }
}
