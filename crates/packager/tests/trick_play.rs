//! A trick-play track: the key frames of one video track, each shown until the next, on the
//! same segments, listed in the MPD as a trick-mode AdaptationSet naming the main one, and left
//! out of HLS (which has I-frame playlists).

mod support;

use reel_media::{EncodedSample, Rational};
use reel_packager::{dash_mpd, hls_playlists, Addressing, PackageOptions, Packager};

const TS: i64 = 90_000;
const FRAME: i64 = 3_600; // 25 fps
const GOP: i64 = 50; // a key frame every 2 s
const FRAMES: i64 = 25 * 9 + 10; // 9.4 s: the last key frame is shown for 1.4 s

/// Samples of a stream with B-frames' shape: decode times a frame before presentation.
fn samples() -> Vec<EncodedSample> {
    (0..FRAMES)
        .map(|i| EncodedSample {
            data: vec![i as u8, 7, 7],
            dts: (i - 1) * FRAME,
            pts: i * FRAME,
            duration: FRAME as u32,
            sync: i % GOP == 0,
        })
        .collect()
}

#[test]
fn key_frames_make_a_trick_track_on_the_same_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Packager::new(
        dir.path(),
        PackageOptions {
            segment_duration: 4.0,
            addressing: Addressing::SegmentFiles,
            trick_play: Some("360p".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let video = |id, name| {
        support::video_track(
            id,
            support::avc_config(),
            TS as u32,
            Rational::new(25, 1),
            name,
        )
    };
    p.add_track(video(1, "720p")).unwrap();
    p.add_track(video(2, "360p")).unwrap();
    for s in samples() {
        p.push(1, s.clone()).unwrap();
        p.push(2, s).unwrap();
    }
    p.end_track(1).unwrap();
    p.end_track(2).unwrap();
    let tracks = p.finish().unwrap();
    assert_eq!(tracks.len(), 3);
    let trick = tracks.iter().find(|t| t.trick_of.is_some()).unwrap();
    assert_eq!(trick.stem, "360p_trick");
    assert_eq!(trick.trick_of.as_deref(), Some("360p"));
    // The source's segments, one key frame per 2 s in each, ending where the source ends.
    let main = &tracks[1];
    let spans = |t: &reel_packager::PackagedTrack| -> Vec<(i64, u64)> {
        t.segments.iter().map(|s| (s.start, s.duration)).collect()
    };
    assert_eq!(spans(trick), spans(main));
    let keys: Vec<usize> = trick.segments.iter().map(|s| s.iframes.len()).collect();
    assert_eq!(keys, [2, 2, 1], "every sample a key frame");
    assert_eq!(trick.duration_secs(), main.duration_secs());
    assert!(dir.path().join("360p_trick/init.mp4").is_file());

    // DASH: a set of its own, naming the 360p rendition's set, key frames only.
    let mpd = dash_mpd_core::parse(&dash_mpd(&tracks, None)).expect("MPD parses");
    let sets = &mpd.periods[0].adaptations;
    assert_eq!(sets.len(), 2);
    let trick_set = sets
        .iter()
        .find(|s| !s.essential_property.is_empty())
        .expect("a trick-mode set");
    let property = &trick_set.essential_property[0];
    assert_eq!(
        property.schemeIdUri,
        "http://dashif.org/guidelines/trickmode"
    );
    let main_set = sets
        .iter()
        .find(|s| s.essential_property.is_empty())
        .unwrap();
    assert_eq!(property.value, main_set.id);
    assert_eq!(main_set.representations.len(), 2);
    let rep = &trick_set.representations[0];
    assert_eq!(rep.id.as_deref(), Some("360p_trick"));
    assert_eq!(rep.codingDependency, Some(false));
    // 9.4 s of 25 fps over 5 key frames.
    assert_eq!(rep.maxPlayoutRate, Some(47.0));

    // HLS: the trick track is not a variant (I-frame playlists serve HLS).
    let files = hls_playlists(&tracks, None);
    assert!(files.iter().all(|(path, _)| !path.contains("trick")));
    let master = String::from_utf8(files.last().unwrap().1.clone()).unwrap();
    assert!(!master.contains("trick"), "{master}");
}
