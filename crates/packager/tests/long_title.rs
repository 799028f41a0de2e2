//! A synthetic two-hour title (23.976 fps video, 48 kHz AAC) through the packager: segment
//! times stay exact rationals, audio stays within one frame of video at every boundary, and
//! the totals add up to the last tick.

mod support;

use reel_media::{EncodedSample, Rational};
use reel_packager::{Addressing, PackageOptions, Packager};

const SECS: i64 = 2 * 3600;

#[test]
fn two_hours_without_drift() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Packager::new(
        dir.path(),
        PackageOptions {
            segment_duration: 4.0,
            addressing: Addressing::SingleFile,
            // Far too short: the packager must fall back to moving the media behind the sidx.
            expected_duration: Some(60.0),
            protection: None,
            segment_written: None,
            trick_play: None,
        },
    )
    .unwrap();
    p.add_track(support::video_track(
        1,
        support::avc_config(),
        24_000,
        Rational::new(24_000, 1001),
        "video",
    ))
    .unwrap();
    p.add_track(support::audio_track(
        2,
        support::aac_config(),
        "eng",
        "audio",
    ))
    .unwrap();
    let frames = SECS * 24_000 / 1001; // 172827
    let audio_frames = SECS * 48_000 / 1024; // 337500
    let (mut v, mut a) = (0i64, 0i64);
    // Interleave in presentation order, as a demuxer would.
    while v < frames || a < audio_frames {
        let vt = v as i128 * 1001 * 48_000;
        let at = a as i128 * 1024 * 24_000;
        if v < frames && (a >= audio_frames || vt <= at) {
            let t = v * 1001;
            p.push(
                1,
                EncodedSample {
                    data: vec![1],
                    dts: t,
                    pts: t,
                    duration: 1001,
                    sync: v % 48 == 0,
                },
            )
            .unwrap();
            v += 1;
        } else {
            let t = a * 1024;
            p.push(
                2,
                EncodedSample {
                    data: vec![2],
                    dts: t,
                    pts: t,
                    duration: 1024,
                    sync: true,
                },
            )
            .unwrap();
            a += 1;
        }
    }
    let tracks = p.finish().unwrap();
    let (video, audio) = (&tracks[0], &tracks[1]);
    // Every video segment is 96 frames (two 2.002 s GOPs, the first at or after 4 s), exactly.
    assert_eq!(video.segments.len() as i64, (frames + 95) / 96);
    for (i, s) in video.segments.iter().enumerate() {
        assert_eq!(s.start, i as i64 * 96 * 1001, "segment {i}");
    }
    let vtotal: u64 = video.segments.iter().map(|s| s.duration).sum();
    assert_eq!(
        vtotal as i64,
        frames * 1001,
        "video durations add up to the last tick"
    );
    let atotal: u64 = audio.segments.iter().map(|s| s.duration).sum();
    assert_eq!(atotal as i64, audio_frames * 1024);
    // Audio boundaries: within one audio frame of the video's, at every one of them.
    assert_eq!(audio.segments.len(), video.segments.len());
    for (vs, as_) in video.segments.iter().zip(&audio.segments) {
        let diff = (i128::from(vs.start) * 48_000 - i128::from(as_.start) * 24_000).abs();
        assert!(
            diff <= 1024 * 24_000,
            "audio segment at {} vs video at {}",
            as_.start,
            vs.start
        );
    }
    // The single file is init, sidx, then the segments where the records say.
    let file = std::fs::read(dir.path().join("video.mp4")).unwrap();
    let at = video.init_size as usize;
    assert_eq!(&file[at + 4..at + 8], b"sidx");
    for s in [&video.segments[0], video.segments.last().unwrap()] {
        assert_eq!(&file[s.offset as usize + 4..s.offset as usize + 8], b"styp");
    }
    // The MPD never claims less than the media lasts.
    let mpd = reel_packager::dash_mpd(&tracks, None);
    let exact = (frames as f64 * 1001.0 / 24_000.0).max(audio_frames as f64 * 1024.0 / 48_000.0);
    let declared: f64 = mpd
        .split("mediaPresentationDuration=\"PT")
        .nth(1)
        .and_then(|r| r.split('S').next())
        .map(|v| {
            // PT1H59M59.962S style
            let mut secs = 0.0;
            let mut num = String::new();
            for c in v.chars() {
                match c {
                    'H' => {
                        secs += num.parse::<f64>().unwrap() * 3600.0;
                        num.clear();
                    }
                    'M' => {
                        secs += num.parse::<f64>().unwrap() * 60.0;
                        num.clear();
                    }
                    _ => num.push(c),
                }
            }
            secs + num.parse::<f64>().unwrap_or(0.0)
        })
        .unwrap();
    assert!(
        declared >= exact && declared - exact < 0.001,
        "declared {declared} for {exact}"
    );
}

#[test]
fn bad_sample_streams_are_refused_with_the_sample_named() {
    let dir = tempfile::tempdir().unwrap();
    let track = support::audio_track(7, support::aac_config(), "und", "audio");
    let mut p = Packager::new(dir.path(), PackageOptions::default()).unwrap();
    p.add_track(track.clone()).unwrap();
    let s = |t: i64| EncodedSample {
        data: vec![1],
        dts: t,
        pts: t,
        duration: 1024,
        sync: true,
    };
    p.push(7, s(0)).unwrap();
    p.push(7, s(1024)).unwrap();
    let err = p.push(7, s(1024)).unwrap_err().to_string();
    assert!(
        err.contains("track 7, sample 2") && err.contains("out of order"),
        "{err}"
    );
    // A track with no samples is an error at the end, not an empty manifest entry.
    let mut p = Packager::new(&dir.path().join("b"), PackageOptions::default()).unwrap();
    p.add_track(track).unwrap();
    assert!(p.finish().unwrap_err().to_string().contains("no samples"));
}
