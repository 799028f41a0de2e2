//! WebVTT in ISO-BMFF (ISO/IEC 14496-30, section 7): the `wvtt` sample entry's `vttC`
//! configuration, and samples that tile a segment's time without gaps: each sample lasts
//! until the next cue starts or ends and holds a `vttc` box per cue shown then (`iden`,
//! `sttg`, `payl`), or a single `vtte` when none is. A cue that spans a sample or segment
//! boundary is repeated whole in each sample, as the standard has it.

use crate::Cue;
use reel_media::EncodedSample;

/// The `vttC` configuration: the file header a WebVTT decoder starts from.
pub const CONFIG: &str = "WEBVTT";

/// Appends a box of `kind` holding `payload`.
fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
}

/// A `vttc` (VTTCueBox) for one cue: `iden` when it has an id, `sttg` when it has settings,
/// then `payl`.
pub fn cue_box(cue: &Cue) -> Vec<u8> {
    let mut inner = Vec::with_capacity(cue.text.len() + 32);
    if !cue.id.is_empty() {
        put_box(&mut inner, b"iden", cue.id.as_bytes());
    }
    if !cue.settings.is_empty() {
        put_box(&mut inner, b"sttg", cue.settings.as_bytes());
    }
    put_box(&mut inner, b"payl", cue.text.as_bytes());
    let mut out = Vec::with_capacity(inner.len() + 8);
    put_box(&mut out, b"vttc", &inner);
    out
}

/// A `vtte` (VTTEmptyCueBox): a sample with no cue.
pub fn empty_box() -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    put_box(&mut out, b"vtte", &[]);
    out
}

/// Milliseconds in `timescale` ticks, rounded to the nearest tick.
pub fn ticks(ms: u64, timescale: u32) -> i64 {
    ((u128::from(ms) * u128::from(timescale) + 500) / 1000) as i64
}

/// The samples of the segment `[start, end)` (in `timescale` ticks; cues in ms, in time order):
/// one per stretch between cue starts and ends, each a sync sample. Returns nothing for an
/// empty segment.
pub fn segment_samples(cues: &[Cue], start: i64, end: i64, timescale: u32) -> Vec<EncodedSample> {
    let shown: Vec<(i64, i64, &Cue)> = cues
        .iter()
        .map(|c| (ticks(c.start, timescale), ticks(c.end, timescale), c))
        .filter(|&(s, e, _)| s < end && e > start && e > s)
        .collect();
    let mut cuts: Vec<i64> = vec![start, end];
    for &(s, e, _) in &shown {
        cuts.extend([s, e].into_iter().filter(|&t| t > start && t < end));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let (from, to) = (w[0], w[1]);
            let mut data = Vec::new();
            for &(s, e, cue) in &shown {
                if s <= from && e >= to {
                    data.extend_from_slice(&cue_box(cue));
                }
            }
            if data.is_empty() {
                data = empty_box();
            }
            EncodedSample {
                data,
                dts: from,
                pts: from,
                duration: (to - from) as u32,
                sync: true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cue as cue;

    /// The boxes of ISO/IEC 14496-30 7.4-7.6, byte by byte.
    #[test]
    fn cue_boxes_as_the_standard_lays_them_out() {
        let b = cue_box(&cue("1", 0, 1, "line:0", "Hi"));
        let want: Vec<u8> = [
            &[0, 0, 0, 41][..],
            b"vttc",
            &[0, 0, 0, 9],
            b"iden1",
            &[0, 0, 0, 14],
            b"sttgline:0",
            &[0, 0, 0, 10],
            b"paylHi",
        ]
        .concat();
        assert_eq!(b, want);
        assert_eq!(empty_box(), [0, 0, 0, 8, b'v', b't', b't', b'e']);
    }

    #[test]
    fn samples_tile_the_segment() {
        // Segment 0-4 s at 90 kHz; cues 1-2.5 s and 2-5 s (the second runs past the end).
        let cues = [cue("", 1000, 2500, "", "A"), cue("", 2000, 5000, "", "B")];
        let s = segment_samples(&cues, 0, 360_000, 90_000);
        let spans: Vec<(i64, u32)> = s.iter().map(|x| (x.pts, x.duration)).collect();
        assert_eq!(
            spans,
            [
                (0, 90_000),
                (90_000, 90_000),
                (180_000, 45_000),
                (225_000, 135_000)
            ]
        );
        assert_eq!(s[0].data, empty_box());
        assert_eq!(s[1].data, cue_box(&cues[0]));
        assert_eq!(s[2].data, [cue_box(&cues[0]), cue_box(&cues[1])].concat());
        assert_eq!(s[3].data, cue_box(&cues[1]));
        assert!(s.iter().all(|x| x.sync));
        // The next segment repeats the cue that runs into it.
        let next = segment_samples(&cues, 360_000, 720_000, 90_000);
        assert_eq!(next[0].data, cue_box(&cues[1]));
        assert_eq!(
            (next[0].duration, next[1].data.clone()),
            (90_000, empty_box())
        );
    }
}
