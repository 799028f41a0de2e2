//! Track descriptions shared by the packager's integration tests.
#![allow(dead_code)] // each test file uses a part

use reel_media::{
    AudioParams, AudioSpecificConfig, AvcConfig, CodecConfig, Rational, TrackInfo, VideoParams,
};

/// The avcC of a real 426x240 x264 encode: the sequence header is irrelevant to timing and
/// layout, but it must parse.
pub fn avc_config() -> CodecConfig {
    let record: Vec<u8> =
        "01640015ffe1001c67640015acd941b1fe4f016a021a02800000030080000019478b16cb01000468efbcb0"
            .as_bytes()
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect();
    CodecConfig::Avc(AvcConfig::from_record(&record).unwrap())
}

/// Stereo 48 kHz AAC-LC.
pub fn aac_config() -> CodecConfig {
    CodecConfig::Aac(AudioSpecificConfig::new(2, 48_000, 2).unwrap())
}

/// A 426x240 video track with square pixels.
pub fn video_track(
    id: u32,
    config: CodecConfig,
    timescale: u32,
    frame_rate: Rational,
    name: &str,
) -> TrackInfo {
    TrackInfo {
        id,
        config,
        timescale,
        video: Some(VideoParams {
            width: 426,
            height: 240,
            frame_rate,
            pixel_aspect: Rational::new(1, 1),
            color: None,
            hdr: None,
        }),
        audio: None,
        language: "und".into(),
        name: name.into(),
        title: None,
    }
}

/// A stereo 48 kHz audio track (timescale 48000).
pub fn audio_track(id: u32, config: CodecConfig, language: &str, name: &str) -> TrackInfo {
    TrackInfo {
        id,
        config,
        timescale: 48_000,
        video: None,
        audio: Some(AudioParams {
            sample_rate: 48_000,
            channels: 2,
            role: Default::default(),
        }),
        language: language.into(),
        name: name.into(),
        title: None,
    }
}
