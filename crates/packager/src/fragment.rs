//! A CMAF fragment: optional `styp`, then `moof` (`mfhd`, `traf` with `tfhd`/`tfdt`/`trun`)
//! and `mdat`.

use crate::boxes::{write_box, write_full_box, Put};
use crate::{PackagerError, Result};
use reel_media::{EncodedSample, TrackInfo, TrackKind};

const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_DURATION: u32 = 0x000100;
const TRUN_SIZE: u32 = 0x000200;
const TRUN_FLAGS: u32 = 0x000400;
const TRUN_CTS: u32 = 0x000800;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x020000;

/// `sample_depends_on = 2`: an independently decodable sample.
const SYNC_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// Writes one fragment of `samples` (in decode order).
///
/// Decode times are `dts - dts_origin` (so that a stream whose first sample has a negative
/// decode time, as H.264 with B-frames does when presentation starts at zero, still gets
/// non-negative `tfdt` values); composition offsets are `pts - decode time`, written as signed
/// `trun` version 1 values when any is negative, so that presentation times equal the samples'
/// `pts` without an edit list.
pub fn media_fragment(
    track: &TrackInfo,
    sequence_number: u32,
    samples: &[EncodedSample],
    dts_origin: i64,
    styp: bool,
) -> Result<Vec<u8>> {
    let mut out = fragment_header(track, sequence_number, samples, dts_origin, styp)?;
    out.reserve(samples.iter().map(|s| s.data.len()).sum());
    for s in samples {
        out.extend_from_slice(&s.data);
    }
    Ok(out)
}

/// Writes one fragment straight to `out` (header, then each sample's bytes: no copy of the
/// payload). Returns the number of bytes written.
pub fn write_media_fragment(
    out: &mut impl std::io::Write,
    track: &TrackInfo,
    sequence_number: u32,
    samples: &[EncodedSample],
    dts_origin: i64,
    styp: bool,
) -> Result<std::io::Result<u64>> {
    let header = fragment_header(track, sequence_number, samples, dts_origin, styp)?;
    let mut write = || -> std::io::Result<u64> {
        out.write_all(&header)?;
        let mut n = header.len() as u64;
        for s in samples {
            out.write_all(&s.data)?;
            n += s.data.len() as u64;
        }
        Ok(n)
    };
    Ok(write())
}

/// Everything of a fragment up to and including the `mdat` header.
fn fragment_header(
    track: &TrackInfo,
    sequence_number: u32,
    samples: &[EncodedSample],
    dts_origin: i64,
    styp: bool,
) -> Result<Vec<u8>> {
    let first = samples.first().ok_or_else(|| PackagerError::InvalidTrack {
        track: track.id,
        problem: "empty fragment".into(),
    })?;
    let bad = |index: usize, s: &EncodedSample, problem: String| PackagerError::InvalidSample {
        track: track.id,
        index: index as u64,
        dts: s.dts,
        problem,
    };
    let base_decode_time = u64::try_from(first.dts - dts_origin).map_err(|_| {
        bad(
            0,
            first,
            format!("decode time before the origin {dts_origin}"),
        )
    })?;
    let mut offsets = Vec::with_capacity(samples.len());
    let mut payload: u64 = 0;
    for (i, s) in samples.iter().enumerate() {
        if i > 0 && s.dts <= samples[i - 1].dts {
            return Err(bad(
                i,
                s,
                format!("decode time not after {}", samples[i - 1].dts),
            ));
        }
        if s.data.is_empty() {
            return Err(bad(i, s, "empty sample".into()));
        }
        let offset = s.pts - (s.dts - dts_origin);
        offsets.push(
            i32::try_from(offset).map_err(|_| bad(i, s, format!("composition offset {offset}")))?,
        );
        payload += s.data.len() as u64;
    }
    let has_cts = offsets.iter().any(|&o| o != 0);
    let trun_version = u8::from(offsets.iter().any(|&o| o < 0));
    let video = track.kind() == TrackKind::Video;

    let mut out = Vec::with_capacity(128 + samples.len() * 16);
    if styp {
        write_box(&mut out, b"styp", |o| {
            o.extend_from_slice(b"msdh");
            o.u32(0);
            o.extend_from_slice(b"msdhmsixcmfs");
            Ok(())
        })?;
    }
    let moof_start = out.len();
    let mut data_offset_at = 0;
    write_box(&mut out, b"moof", |o| {
        write_full_box(o, b"mfhd", 0, 0, |o| {
            o.u32(sequence_number);
            Ok(())
        })?;
        write_box(o, b"traf", |o| {
            write_full_box(o, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |o| {
                o.u32(track.id);
                Ok(())
            })?;
            write_full_box(o, b"tfdt", 1, 0, |o| {
                o.u64(base_decode_time);
                Ok(())
            })?;
            let mut flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS;
            if has_cts {
                flags |= TRUN_CTS;
            }
            write_full_box(o, b"trun", trun_version, flags, |o| {
                o.u32(samples.len() as u32);
                data_offset_at = o.len();
                o.i32(0);
                for (s, &cts) in samples.iter().zip(&offsets) {
                    o.u32(s.duration);
                    o.u32(
                        u32::try_from(s.data.len())
                            .map_err(|_| bad(0, s, format!("sample of {} bytes", s.data.len())))?,
                    );
                    o.u32(if s.sync || !video {
                        SYNC_FLAGS
                    } else {
                        NON_SYNC_FLAGS
                    });
                    if has_cts {
                        o.i32(cts);
                    }
                }
                Ok(())
            })
        })
    })?;
    let moof_size = out.len() - moof_start;
    let mdat_header = if payload + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let data_offset =
        i32::try_from(moof_size + mdat_header).map_err(|_| PackagerError::BoxTooLarge {
            fourcc: "moof".into(),
            size: moof_size as u64,
        })?;
    out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    if mdat_header == 16 {
        out.u32(1);
        out.extend_from_slice(b"mdat");
        out.u64(payload + 16);
    } else {
        out.u32((payload + 8) as u32);
        out.extend_from_slice(b"mdat");
    }
    Ok(out)
}
