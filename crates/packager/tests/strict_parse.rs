//! Init segments and fragments checked by an independent strict parser (`mp4-atom` with its
//! `strict` feature), for every codec Reel writes.

mod support;

use mp4_atom::{Codec, Decode, Ftyp, Mdat, Moof, Moov};
use reel_media::{
    AudioSpecificConfig, Av1Config, AvcConfig, CodecConfig, EncodedSample, OpusConfig, Rational,
    TrackInfo,
};
use reel_packager::{init_segment, media_fragment, InitOptions};
use std::io::Cursor;

/// av1C written by rav1e 0.8.1 for a 426x240 rung of the 720p fixture.
const AV1C: &str = "81000c000a0e000000043ea7bc42151010d01140";
/// avcC written by x264 (via GStreamer) for the same rung.
const AVCC: &str =
    "01640015ffe1001c67640015acd941b1fe4f016a021a02800000030080000019478b16cb01000468efbcb0";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn video(config: CodecConfig) -> TrackInfo {
    support::video_track(1, config, 90_000, Rational::new(25, 1), "240p")
}

fn audio(config: CodecConfig) -> TrackInfo {
    support::audio_track(2, config, "eng", "audio")
}

fn samples(step: u32, reorder: bool) -> Vec<EncodedSample> {
    (0..10i64)
        .map(|i| {
            // With reordering, decode times run two frames ahead of presentation (as x264
            // with B-frames): the first frame is shown at 0 but decoded at -2 frames.
            let dts = (i - if reorder { 2 } else { 0 }) * i64::from(step);
            // Odd frames swap with the next even one, as B-frames do.
            let shown = if reorder && i % 2 == 1 {
                i + 1
            } else if reorder && i > 0 {
                i - 1
            } else {
                i
            };
            let pts = shown * i64::from(step);
            EncodedSample {
                data: vec![i as u8; 50 + i as usize],
                dts,
                pts,
                duration: step,
                sync: i == 0,
            }
        })
        .collect()
}

fn check(track: &TrackInfo, expect: fn(&Codec) -> bool, reorder: bool, step: u32) {
    let init = init_segment(
        track,
        &InitOptions {
            bitrate: Some((500_000, 400_000)),
            fragment_duration: Some(9000),
            protection: None,
        },
    )
    .unwrap();
    let buf = &mut Cursor::new(init.as_slice());
    let ftyp = Ftyp::decode(buf).unwrap();
    assert_eq!(ftyp.major_brand, b"cmfc".into());
    let moov = Moov::decode(buf).unwrap();
    assert_eq!(
        buf.position() as usize,
        init.len(),
        "trailing bytes after moov"
    );
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, track.id);
    assert_eq!(trak.mdia.mdhd.timescale, track.timescale);
    let entry = &trak.mdia.minf.stbl.stsd.codecs[0];
    assert!(expect(entry), "unexpected sample entry {entry:?}");
    assert_eq!(moov.mvex.as_ref().unwrap().trex[0].track_id, track.id);

    let s = samples(step, reorder);
    let frag = media_fragment(track, 7, &s, s[0].dts.min(0), true).unwrap();
    let buf = &mut Cursor::new(frag.as_slice());
    let _styp = mp4_atom::Styp::decode(buf).unwrap();
    let moof_start = buf.position();
    let moof = Moof::decode(buf).unwrap();
    let mdat = Mdat::decode(buf).unwrap();
    assert_eq!(buf.position() as usize, frag.len());
    assert_eq!(moof.mfhd.sequence_number, 7);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfdt.as_ref().unwrap().base_media_decode_time, 0);
    let trun = &traf.trun[0];
    let entries: Vec<_> = trun.samples.iter().collect();
    assert_eq!(entries.len(), s.len());
    let mut decode = 0i64;
    for (e, sample) in entries.iter().zip(&s) {
        assert_eq!(e.size, Some(sample.data.len() as u32));
        assert_eq!(e.duration, Some(step));
        // Presentation time = decode time + composition offset = the sample's pts.
        assert_eq!(decode + e.cts.unwrap_or(0), sample.pts);
        decode += i64::from(step);
    }
    // data_offset points from the moof start at the first sample byte in mdat.
    let data_at = moof_start as i64 + i64::from(trun.data_offset.unwrap());
    assert_eq!(
        &frag[data_at as usize..data_at as usize + s[0].data.len()],
        s[0].data.as_slice()
    );
    assert_eq!(
        mdat.data.len(),
        s.iter().map(|x| x.data.len()).sum::<usize>()
    );
}

#[test]
fn av1_track() {
    let cfg = Av1Config::from_record(&hex(AV1C)).unwrap();
    // Its colour is BT.709 with the sRGB transfer (13), which the codec string names.
    assert_eq!(cfg.codec_string(), "av01.0.00M.08.0.110.01.13.01.0");
    assert_eq!(cfg.to_record(), hex(AV1C), "av1C round-trips byte for byte");
    check(
        &video(CodecConfig::Av1(cfg)),
        |c| matches!(c, Codec::Av01(a) if a.visual.width == 426 && a.pasp.is_some() && a.btrt.is_some()),
        false,
        3600,
    );
}

#[test]
fn h264_track_with_reordering() {
    let cfg = AvcConfig::from_record(&hex(AVCC)).unwrap();
    assert_eq!(cfg.codec_string(), "avc1.640015");
    check(
        &video(CodecConfig::Avc(cfg)),
        |c| matches!(c, Codec::Avc1(a) if a.visual.height == 240 && a.avcc.avc_profile_indication == 0x64),
        true,
        3600,
    );
}

#[test]
fn aac_track() {
    let asc = AudioSpecificConfig::new(2, 48_000, 2).unwrap();
    check(
        &audio(CodecConfig::Aac(asc)),
        |c| matches!(c, Codec::Mp4a(a) if a.audio.channel_count == 2),
        false,
        1024,
    );
}

#[test]
fn opus_track() {
    let mut head = b"OpusHead".to_vec();
    head.extend([1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
    let cfg = OpusConfig::from_opus_head(&head).unwrap();
    check(
        &audio(CodecConfig::Opus(cfg)),
        |c| matches!(c, Codec::Opus(o) if o.dops.pre_skip == 312),
        false,
        960,
    );
}

#[test]
fn rejects_non_increasing_decode_times() {
    let track = audio(CodecConfig::Aac(
        AudioSpecificConfig::new(2, 48_000, 2).unwrap(),
    ));
    let mut s = samples(1024, false);
    s[3].dts = s[2].dts;
    let err = media_fragment(&track, 1, &s, 0, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sample 3") && err.contains("decode time"),
        "{err}"
    );
}
