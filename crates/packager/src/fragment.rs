//! A CMAF fragment: optional `styp`, then `moof` (`mfhd`, `traf` with `tfhd`/`tfdt`/`trun`)
//! and `mdat`.

use crate::boxes::{write_box, write_full_box, Put};
use crate::{PackagerError, Result};
use reel_drm::SampleEncryption;
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
    let mut out = fragment_header(track, sequence_number, samples, dts_origin, styp, None)?;
    out.reserve(samples.iter().map(|s| s.data.len()).sum());
    for s in samples {
        out.extend_from_slice(&s.data);
    }
    Ok(out)
}

/// Writes one fragment straight to `out` (header, then each sample's bytes: no copy of the
/// payload). `aux` holds the samples' encryption information when the track is protected (the
/// samples are then already encrypted). Returns the number of bytes written.
#[cfg(test)]
pub fn write_media_fragment(
    out: &mut impl std::io::Write,
    track: &TrackInfo,
    sequence_number: u32,
    samples: &[EncodedSample],
    dts_origin: i64,
    styp: bool,
    aux: Option<&[SampleEncryption]>,
) -> Result<std::io::Result<u64>> {
    let header = fragment_header(track, sequence_number, samples, dts_origin, styp, aux)?;
    let n = header.len() as u64 + samples.iter().map(|s| s.data.len() as u64).sum::<u64>();
    Ok(write_parts(out, &header, samples).map(|()| n))
}

/// Writes a fragment header and its samples in one vectored write: a large fragment goes from
/// the samples to the kernel without first being copied into the writer's buffer.
pub(crate) fn write_parts(
    out: &mut impl std::io::Write,
    header: &[u8],
    samples: &[EncodedSample],
) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice> = Vec::with_capacity(samples.len() + 1);
    slices.push(std::io::IoSlice::new(header));
    slices.extend(samples.iter().map(|s| std::io::IoSlice::new(&s.data)));
    write_all_vectored(out, &mut slices)
}

/// `Write::write_all_vectored` (not stable yet): writes every slice, however the writer splits.
fn write_all_vectored(
    out: &mut impl std::io::Write,
    mut slices: &mut [std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Everything of a fragment up to and including the `mdat` header.
pub(crate) fn fragment_header(
    track: &TrackInfo,
    sequence_number: u32,
    samples: &[EncodedSample],
    dts_origin: i64,
    styp: bool,
    aux: Option<&[SampleEncryption]>,
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
    let mut saio = None;
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
            })?;
            if let Some(aux) = aux {
                if aux.len() != samples.len() {
                    return Err(PackagerError::InvalidTrack {
                        track: track.id,
                        problem: format!(
                            "{} encryption entries for {} samples",
                            aux.len(),
                            samples.len()
                        ),
                    });
                }
                saio = crate::protect::sample_aux_boxes(o, aux)?;
            }
            Ok(())
        })
    })?;
    if let Some((offset_at, data_at)) = saio {
        // saio offsets count from the moof (default-base-is-moof), as trun's data offset does.
        let rel = (data_at - moof_start) as u32;
        out[offset_at..offset_at + 4].copy_from_slice(&rel.to_be_bytes());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Moof};
    use reel_drm::{Key, Scheme, TrackEncryptor};
    use reel_media::{AudioParams, AudioSpecificConfig, CodecConfig};

    /// An encrypted fragment parses strictly (mp4-atom), and `saio` points from the `moof`
    /// at the first sample's IV inside `senc`.
    #[test]
    fn encrypted_fragment_aux_offsets() {
        let track = TrackInfo {
            id: 3,
            config: CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap()),
            timescale: 48_000,
            video: None,
            audio: Some(AudioParams {
                sample_rate: 48_000,
                channels: 2,
                role: Default::default(),
            }),
            language: "und".into(),
            name: "a".into(),
            title: None,
        };
        let key = Key::parse("00000000000000000000000000000001:00112233445566778899aabbccddeeff")
            .unwrap();
        let mut enc = TrackEncryptor::with_iv(
            Scheme::Cenc,
            &key,
            &track.config,
            TrackKind::Audio,
            [0xab; 16],
        )
        .unwrap();
        let mut samples: Vec<EncodedSample> = (0..5)
            .map(|i| EncodedSample {
                data: vec![i as u8; 100 + i],
                dts: i as i64 * 1024,
                pts: i as i64 * 1024,
                duration: 1024,
                sync: true,
            })
            .collect();
        let aux: Vec<_> = samples
            .iter_mut()
            .map(|s| enc.encrypt(&mut s.data).unwrap())
            .collect();
        let mut out = Vec::new();
        write_media_fragment(&mut out, &track, 1, &samples, 0, false, Some(&aux))
            .unwrap()
            .unwrap();
        let moof = Moof::decode(&mut std::io::Cursor::new(out.as_slice())).unwrap();
        let traf = &moof.traf[0];
        assert_eq!(traf.saiz[0].default_sample_info_size, 8);
        assert_eq!(traf.saiz[0].sample_count, 5);
        let senc = traf.senc.as_ref().unwrap();
        assert!(!senc.use_subsamples);
        let offset = traf.saio[0].offsets[0] as usize;
        assert_eq!(&out[offset..offset + 8], &[0xab; 8]);
        assert_eq!(
            &out[offset + 8..offset + 16],
            &[0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xac]
        );
        // A mismatched number of entries is refused.
        let mut sink = Vec::new();
        assert!(
            write_media_fragment(&mut sink, &track, 1, &samples, 0, false, Some(&aux[..2]))
                .is_err()
        );
    }
}
