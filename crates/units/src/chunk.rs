//! The chunk plan: where a title's timeline is cut so that chunks encode independently and
//! join without re-encoding.
//!
//! A chunk starts on a key frame of every rung (each chunk's encoders start with one, and the
//! rungs' fixed GOPs put the others at the same frames as a whole-title encode) and on a
//! segment boundary of the package (a chunk is a whole number of segments), so the stitched
//! renditions have the key frames and segments a whole-title encode would have.

use reel_encoder::{EncodePlan, FrameRange};

/// The chunk length a title is cut into unless the job says otherwise, in seconds.
pub const DEFAULT_CHUNK_SECONDS: f64 = 30.0;

/// Seconds of video before a chunk that its H.264 encoders see first (and whose output is
/// dropped), so that their rate control enters the chunk warm: without it each join showed
/// a dip of about 2 dB PSNR half a second in (x264 CBR, 1-pass). About 1.7% more frames
/// encoded at 30-s chunks. See [`FrameRange`].
pub const LEAD_IN_SECONDS: f64 = 0.5;

/// Frames per package segment for `plan`: the packager cuts at the first key frame at or
/// after `segment_seconds` past a segment's start (in the video's ticks, rounded as it
/// rounds), and key frames come every `keyframe_frames`.
pub fn segment_frames(plan: &EncodePlan, segment_seconds: f64) -> u64 {
    let target = (segment_seconds * f64::from(plan.timescale))
        .round()
        .max(1.0) as u64;
    let gop_ticks = (plan.keyframe_frames * u64::from(plan.frame_duration)).max(1);
    plan.keyframe_frames * target.div_ceil(gop_ticks)
}

/// Frames per chunk: the whole number of segments nearest to `chunk_seconds`, at least one.
pub fn chunk_frames(plan: &EncodePlan, segment_seconds: f64, chunk_seconds: f64) -> u64 {
    let segment = segment_frames(plan, segment_seconds);
    let segment_secs = segment as f64 / plan.frame_rate.as_f64().max(1e-9);
    segment * ((chunk_seconds / segment_secs).round() as u64).max(1)
}

/// Lead-in frames for `plan`: [`LEAD_IN_SECONDS`] at its frame rate.
pub fn lead_in_frames(plan: &EncodePlan) -> u64 {
    (LEAD_IN_SECONDS * plan.frame_rate.as_f64()).round() as u64
}

/// The title's `frames_total` frames cut every `chunk` frames, each chunk after the first led
/// in by `lead_in` frames. The last chunk runs on to the source's end (it absorbs a remainder
/// shorter than half a chunk, so that a source a few frames shorter than its probed duration
/// never leaves an empty last chunk); every other chunk is exact.
pub fn chunks(frames_total: u64, chunk: u64, lead_in: u64) -> Vec<FrameRange> {
    let chunk = chunk.max(1);
    let mut count = (frames_total / chunk).max(1);
    if frames_total % chunk >= chunk.div_ceil(2) && frames_total > chunk {
        count += 1;
    }
    (0..count)
        .map(|i| {
            let last = i + 1 == count;
            FrameRange {
                start: i * chunk,
                end: if last {
                    frames_total.max(i * chunk)
                } else {
                    (i + 1) * chunk
                },
                exact: !last,
                lead_in: lead_in.min(i * chunk),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_media::Rational;

    fn plan(
        fps: Rational,
        timescale: u32,
        frame_duration: u32,
        keyframe_frames: u64,
    ) -> EncodePlan {
        EncodePlan {
            source: reel_encoder::MediaInfo {
                path: "t.mp4".into(),
                container: None,
                duration: 60.0,
                seekable: true,
                streams: Vec::new(),
            },
            frame_rate: fps,
            timescale,
            frame_duration,
            keyframe_frames,
            frames_total: 1500,
            rungs: Vec::new(),
            audio: Vec::new(),
            notices: Vec::new(),
            still_at: None,
            thumbnails: None,
            range: None,
            source_url: None,
        }
    }

    #[test]
    fn segments_follow_the_packagers_cut_rule() {
        // 25 fps, key frame every 2 s: 2-s segments of 50 frames, 4-s of 100.
        let p = plan(Rational::new(25, 1), 12_800, 512, 50);
        assert_eq!(segment_frames(&p, 2.0), 50);
        assert_eq!(segment_frames(&p, 4.0), 100);
        // A 3-s target is reached at the second key frame after it: 4 s.
        assert_eq!(segment_frames(&p, 3.0), 100);
        // 29.97 fps, key frame every 60 frames (2.002 s): a 2-s target takes one GOP.
        let ntsc = plan(Rational::new(30_000, 1001), 30_000, 1001, 60);
        assert_eq!(segment_frames(&ntsc, 2.0), 60);
        assert_eq!(chunk_frames(&ntsc, 2.0, 30.0), 900);
        assert_eq!(chunk_frames(&p, 4.0, 30.0), 800, "7.5 segments round to 8");
        assert_eq!(chunk_frames(&p, 4.0, 1.0), 100, "at least one segment");
    }

    #[test]
    fn chunks_cover_the_title_once_and_only_the_last_is_open() {
        let c = chunks(1500, 750, 12);
        assert_eq!(
            c.iter()
                .map(|r| (r.start, r.end, r.exact, r.lead_in))
                .collect::<Vec<_>>(),
            [(0, 750, true, 0), (750, 1500, false, 12)]
        );
        // A remainder of half a chunk or more is a chunk of its own; a shorter one joins the
        // last chunk.
        let c = chunks(1900, 750, 12);
        assert_eq!(c.last().map(|r| (r.start, r.end)), Some((1500, 1900)));
        let c = chunks(1800, 750, 12);
        assert_eq!(c.len(), 2);
        assert_eq!(c.last().map(|r| (r.start, r.end)), Some((750, 1800)));
        // A title shorter than a chunk is one open chunk.
        let c = chunks(125, 750, 12);
        assert_eq!(
            c.iter()
                .map(|r| (r.start, r.end, r.exact))
                .collect::<Vec<_>>(),
            [(0, 125, false)]
        );
        for total in [1u64, 749, 750, 751, 1124, 1125, 10_000] {
            let c = chunks(total, 750, 12);
            assert_eq!(c[0].start, 0);
            assert_eq!(c.last().unwrap().end, total);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start && w[0].exact));
            assert!(c.iter().all(|r| r.start % 750 == 0));
        }
    }
}
