//! The packager cuts audio at the same frames whatever order the samples arrive in: a demuxer
//! hands over whole files (video first), an encoder's audio runs ahead of its video by the
//! video encoder's delay. The run packages either way, so both must give one package.

mod support;

use reel_media::{EncodedSample, Rational, TrackInfo};
use reel_packager::{Addressing, PackageOptions, Packager};

const SECONDS: i64 = 10;
const VIDEO_TS: i64 = 90_000;
const FRAME: i64 = 3_600; // 25 fps
const GOP: i64 = 50; // 2 s
const AUDIO_FRAME: i64 = 1_024; // at 48 kHz

fn tracks() -> (TrackInfo, TrackInfo) {
    (
        support::video_track(
            1,
            support::avc_config(),
            VIDEO_TS as u32,
            Rational::new(25, 1),
            "video",
        ),
        support::audio_track(2, support::aac_config(), "und", "audio"),
    )
}

/// (track, sample) in presentation order, audio shifted ahead by `audio_lead` seconds.
fn interleaved(audio_lead: f64) -> Vec<(u32, EncodedSample)> {
    let frames = SECONDS * VIDEO_TS / FRAME;
    let audio_frames = SECONDS * 48_000 / AUDIO_FRAME;
    let mut out: Vec<(f64, u32, EncodedSample)> = Vec::new();
    for v in 0..frames {
        let t = v * FRAME;
        let s = EncodedSample {
            data: vec![1],
            dts: t,
            pts: t,
            duration: FRAME as u32,
            sync: v % GOP == 0,
        };
        out.push((t as f64 / VIDEO_TS as f64, 1, s));
    }
    for a in 0..audio_frames {
        let t = a * AUDIO_FRAME;
        let s = EncodedSample {
            data: vec![2],
            dts: t,
            pts: t,
            duration: AUDIO_FRAME as u32,
            sync: true,
        };
        out.push((t as f64 / 48_000.0 - audio_lead, 2, s));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.into_iter().map(|(_, t, s)| (t, s)).collect()
}

/// Packages the samples in the given order; the (start, duration) of each track's segments.
fn package(samples: Vec<(u32, EncodedSample)>) -> Vec<Vec<(i64, u64)>> {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Packager::new(
        dir.path(),
        PackageOptions {
            segment_duration: 2.0,
            addressing: Addressing::SegmentFiles,
            expected_duration: None,
            protection: None,
            segment_written: None,
            trick_play: None,
        },
    )
    .unwrap();
    let (video, audio) = tracks();
    p.add_track(video).unwrap();
    p.add_track(audio).unwrap();
    for (track, s) in samples {
        p.push(track, s).unwrap();
    }
    p.finish()
        .unwrap()
        .iter()
        .map(|t| t.segments.iter().map(|s| (s.start, s.duration)).collect())
        .collect()
}

#[test]
fn audio_cuts_do_not_depend_on_arrival_order() {
    let mut video_first = interleaved(0.0);
    video_first.sort_by_key(|(track, _)| *track);
    let reference = package(video_first);
    // Each audio segment starts at the first frame whose middle is at or after the video's
    // boundary: at 4 s that is the frame at 191488 (middle exactly 192000).
    let audio: Vec<i64> = reference[1].iter().map(|s| s.0).collect();
    for (i, &start) in audio.iter().enumerate().skip(1) {
        let boundary = i as i64 * 2 * 48_000;
        assert!(
            start + AUDIO_FRAME / 2 >= boundary && start - AUDIO_FRAME / 2 < boundary,
            "audio segment {i} starts at {start}, boundary {boundary}"
        );
    }
    assert_eq!(audio[2], 191_488);
    for lead in [0.0, 0.3, 1.0, 2.5] {
        assert_eq!(
            package(interleaved(lead)),
            reference,
            "audio {lead} s ahead of the video"
        );
    }
}
