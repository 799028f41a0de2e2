//! End-to-end: subtitle and caption sidecars packaged with `reel package --subtitles`, judged by
//! mp4box.js (WebVTT-in-MP4 and IMSC1-in-MP4 samples), the dash-mpd and m3u8-rs parsers, and shaka-player,
//! dash.js and hls.js in headless Chromium reading the cues the browser shows.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

const LADDER: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 360
bitrate = 600
[[rung]]
codec = "h264"
height = 240
bitrate = 300
[audio]
codec = "aac"
bitrate = 96
"#;

/// English subtitles (WebVTT: an id, italics, a line setting, a cue across a segment join,
/// a comment), French Canadian captions (SRT with CRLF, an ASS position tag, `&` and `<` as
/// text) and German forced narratives (IMSC1: frames, a div's begin, a region at the top),
/// all inside the 5-s fixture but the last English cue.
const EN_VTT: &str = "WEBVTT\n\nNOTE made for the subtitles test\n\nfirst\n00:00:01.000 --> 00:00:01.800\n\
<i>One</i> line\n\n00:01.900 --> 00:02.600 line:0\nAcross the join\n\n00:04.200 --> 00:06.000\nPast the end\n";
const FR_SRT: &str = "1\r\n00:00:00,600 --> 00:00:01,400\r\n[PORTE QUI GRINCE]\r\n\r\n\
2\r\n00:00:03,000 --> 00:00:03,960\r\n{\\an8}Toi & moi <3\r\n";
const DE_TTML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter"
    xmlns:tts="http://www.w3.org/ns/ttml#styling" ttp:frameRate="25" xml:lang="de">
  <head><layout>
    <region xml:id="top" tts:origin="10% 5%" tts:extent="80% 15%"/>
  </layout></head>
  <body region="top"><div begin="2s">
    <p begin="5f" end="00:00:01:10">Schild: Ausgang</p>
  </div></body>
</tt>
"#;

struct Title {
    _dir: tempfile::TempDir,
    out: PathBuf,
}

/// The fixture's renditions, encoded once for the tests of this file.
fn renditions() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| encode("subtitles", LADDER))
}

fn package(extra: &[&str]) -> Title {
    let renditions = renditions();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("en.vtt", EN_VTT),
        ("fr-sdh.srt", FR_SRT),
        ("de.ttml", DE_TTML),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = dir.path().join("pkg");
    let en = format!("en={}", dir.path().join("en.vtt").display());
    let fr = format!("fr-ca,captions={}", dir.path().join("fr-sdh.srt").display());
    let de = format!(
        "de,forced,Deutsch (erzwungen)={}",
        dir.path().join("de.ttml").display()
    );
    let enc = renditions.join("enc");
    let mut args = vec!["package".to_string()];
    for f in ["360p.mp4", "240p.mp4", "audio.mp4"] {
        args.push(enc.join(f).display().to_string());
    }
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--segment-duration".into(),
        "2".into(),
    ]);
    for s in [en, fr, de] {
        args.extend(["--subtitles".into(), s]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = reel(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "reel package: {stderr}");
    // The cue past the video's end is cut there, with a warning naming the file and line.
    assert!(
        stderr.contains("en.vtt, line 12: cue ends at 00:00:06.000, after the video"),
        "{stderr}"
    );
    Title { _dir: dir, out }
}

/// `reel package VIDEO --out OUT EXTRA...`, with `--subtitles S` for each of `subtitles`.
fn package_video(video: &Path, out: &Path, extra: &[&str], subtitles: &[&str]) -> Output {
    let mut args = vec![
        "package",
        video.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    for s in subtitles {
        args.extend(["--subtitles", s]);
    }
    reel(&args)
}

/// mp4box.js's reading of a text track: (start ms, end ms, text, settings) of every cue,
/// pieces that continue in the next sample joined.
fn cues_in_mp4(track: &Path) -> Vec<(u64, u64, String, String)> {
    let (ok, samples, err) = node("text.mjs", &["--samples", track.to_str().unwrap()]);
    assert!(ok, "mp4box.js on {}: {samples:?} {err}", track.display());
    let mut cues: Vec<(f64, f64, String, String)> = Vec::new();
    let mut end_of_previous_sample = 0.0;
    for s in &samples {
        let (t, d) = (num(s, "t"), num(s, "d"));
        assert!(
            (t - end_of_previous_sample).abs() < 1e-6,
            "samples tile the time: {samples:?}"
        );
        end_of_previous_sample = t + d;
        for c in s["cues"].as_array().unwrap() {
            let (text, settings) = (c["text"].as_str().unwrap(), c["settings"].as_str().unwrap());
            match cues
                .iter_mut()
                .find(|x| x.2 == text && (x.1 - t).abs() < 1e-6)
            {
                Some(open) => open.1 = t + d,
                None => cues.push((t, t + d, text.to_string(), settings.to_string())),
            }
        }
    }
    let ms = |seconds: f64| (seconds * 1000.0).round() as u64;
    cues.into_iter()
        .map(|(start, end, text, settings)| (ms(start), ms(end), text, settings))
        .collect()
}

#[test]
fn subtitles_and_captions_reach_every_player_at_their_times() {
    let title = package(&[]);
    let out = &title.out;

    // mp4box.js reads the CMAF text tracks: every cue once, at its times, styling kept.
    let en = cues_in_mp4(&out.join("text_en_subtitles"));
    assert_eq!(
        en,
        [
            (1000, 1800, "<i>One</i> line".into(), "".into()),
            (1900, 2600, "Across the join".into(), "line:0".into()),
            (4200, 5000, "Past the end".into(), "".into()),
        ],
        "English cues as mp4box.js reads them"
    );
    // The German TTML stays TTML for DASH: an IMSC1 document per segment (`stpp`), each
    // sample its segment, the cue in the second one at its times.
    let (ok, samples, err) = node(
        "text.mjs",
        &["--samples", out.join("text_de_forced").to_str().unwrap()],
    );
    assert!(ok, "mp4box.js on the German track: {samples:?} {err}");
    let spans: Vec<(f64, f64)> = samples.iter().map(|s| (num(s, "t"), num(s, "d"))).collect();
    assert_eq!(spans, [(0.0, 2.0), (2.0, 2.0), (4.0, 1.0)], "{samples:?}");
    for (i, s) in samples.iter().enumerate() {
        // mp4box.js names the sample entry.
        assert_eq!(s["codec"], "stpp", "{s}");
        let xml = s["xml"].as_str().unwrap();
        assert!(xml.contains("ttp:profile=\"http://www.w3.org/ns/ttml/profile/imsc1/text\""));
        let has_cue = xml.contains(
            "<p begin=\"00:00:02.200\" end=\"00:00:03.400\" region=\"top\">Schild: Ausgang</p>",
        );
        assert_eq!(has_cue, i == 1, "sample {i}: {xml}");
    }
    let fr = cues_in_mp4(&out.join("text_fr-CA_captions"));
    assert_eq!(
        fr,
        [
            (600, 1400, "[PORTE QUI GRINCE]".into(), "".into()),
            (3000, 3960, "Toi &amp; moi &lt;3".into(), "line:0".into()),
        ]
    );

    // DASH: one text set per language and kind, with lang, Role, Accessibility and Label,
    // on the video's segment timeline; nothing else changed.
    let mpd_text = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let mpd = dash_mpd_core::parse(&mpd_text).expect("MPD parses");
    let sets = &mpd.periods[0].adaptations;
    let video_timeline = &sets[0].representations[0]
        .SegmentTemplate
        .as_ref()
        .unwrap()
        .SegmentTimeline;
    let text: Vec<_> = sets
        .iter()
        .filter(|s| s.contentType.as_deref() == Some("text"))
        .collect();
    let summary: Vec<(String, String, Vec<String>, String)> = text
        .iter()
        .map(|s| {
            assert_eq!(s.mimeType.as_deref(), Some("application/mp4"));
            let r = &s.representations[0];
            // WebVTT and SRT as WebVTT cues, TTML as IMSC1.
            let codecs = if s.lang.as_deref() == Some("de") {
                "stpp.ttml.im1t"
            } else {
                "wvtt"
            };
            assert_eq!(r.codecs.as_deref(), Some(codecs));
            assert!(r.ContentProtection.is_empty() && s.ContentProtection.is_empty());
            assert_eq!(
                &r.SegmentTemplate.as_ref().unwrap().SegmentTimeline,
                video_timeline
            );
            (
                s.lang.clone().unwrap(),
                s.Role
                    .iter()
                    .map(|x| x.value.clone().unwrap())
                    .collect::<Vec<_>>()
                    .join(","),
                s.Accessibility
                    .iter()
                    .map(|a| format!("{}={}", a.schemeIdUri, a.value.clone().unwrap()))
                    .collect(),
                s.Label[0].content.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("en".into(), "subtitle".into(), vec![], "English".into()),
            (
                "fr-CA".into(),
                "caption".into(),
                vec!["urn:tva:metadata:cs:AudioPurposeCS:2007=2".to_string()],
                "French (CA) [captions]".into()
            ),
            (
                "de".into(),
                "forced-subtitle".into(),
                vec![],
                "Deutsch (erzwungen)".into()
            ),
        ]
    );

    // HLS: SUBTITLES renditions with LANGUAGE, NAME, FORCED and CHARACTERISTICS, named by
    // every variant; their playlists list WebVTT segments that exist.
    let master = std::fs::read(out.join("master.m3u8")).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(master) = m3u8_rs::parse_playlist_res(&master).unwrap()
    else {
        panic!("master.m3u8 is not a master playlist")
    };
    let subs: Vec<_> = master
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::Subtitles)
        .collect();
    assert_eq!(subs.len(), 3);
    let fr = subs
        .iter()
        .find(|a| a.language.as_deref() == Some("fr-CA"))
        .unwrap();
    assert_eq!(
        fr.characteristics.as_deref(),
        Some("public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound")
    );
    let de = subs
        .iter()
        .find(|a| a.language.as_deref() == Some("de"))
        .unwrap();
    assert!(de.forced && de.autoselect && !de.default);
    assert_eq!(de.name, "Deutsch (erzwungen)");
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        assert_eq!(v.subtitles.as_deref(), Some("subs"), "{}", v.uri);
        assert!(
            matches!(v.closed_captions, Some(m3u8_rs::ClosedCaptionGroupId::None)),
            "{}",
            v.uri
        );
    }
    for a in &subs {
        let uri = a.uri.as_ref().unwrap();
        let playlist = std::fs::read(out.join(uri)).unwrap();
        let m3u8_rs::Playlist::MediaPlaylist(p) = m3u8_rs::parse_playlist_res(&playlist).unwrap()
        else {
            panic!("{uri} is not a media playlist")
        };
        assert_eq!(p.segments.len(), 3, "{uri}");
        for s in &p.segments {
            let vtt = out.join(uri).parent().unwrap().join(&s.uri);
            let text = std::fs::read_to_string(&vtt).unwrap();
            assert!(
                text.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"),
                "{text}"
            );
        }
    }

    // Players list the tracks with their languages and roles and show each cue at its time
    // (within a frame) with its text.
    // The cue across the segment join at 2 s shows on both sides of it: a player reading
    // CMAF may show it as two cues (14496-30 repeats it in each sample), never with a gap.
    let probes = ["en:1.05", "fr-CA:3.05", "de:2.25", "en:1.95", "en:2.3"];
    let expect = [
        ("en", Some(1.0), "<i>One</i> line"),
        ("fr-CA", Some(3.0), "Toi &amp; moi &lt;3"),
        ("de", Some(2.2), "Schild: Ausgang"),
        ("en", Some(1.9), "Across the join"),
        ("en", None, "Across the join"),
    ];
    for (manifest, players) in [
        ("manifest.mpd", &["shaka", "dashjs"][..]),
        // shaka-player on HLS with text streamed from the start (see text.mjs: turned on once
        // the short clip's video is all buffered, it never showed HLS text).
        ("master.m3u8", &["shaka", "hlsjs"][..]),
    ] {
        let mut args = vec!["--root", out.to_str().unwrap(), "--manifest", manifest];
        for p in players {
            args.extend(["--player", p]);
        }
        for p in &probes {
            args.extend(["--probe", p]);
        }
        let (_, results, err) = node("text.mjs", &args);
        assert_eq!(results.len(), players.len(), "text harness: {err}");
        for r in &results {
            eprintln!("{r}");
            assert_eq!(r["errors"], Value::Array(vec![]), "{manifest}: {r}");
            let tracks = r["tracks"].as_array().unwrap();
            let languages: Vec<String> = tracks
                .iter()
                .map(|t| t["language"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(languages, ["en", "fr-CA", "de"], "{manifest}: {r}");
            // The captions are marked as such, the forced narratives as forced, each in the
            // player's own terms.
            let said = |i: usize| tracks[i].to_string();
            assert!(
                said(1).contains("caption") || said(1).contains("transcribes-spoken-dialog"),
                "{r}"
            );
            assert!(
                !said(0).contains("caption") && !said(0).contains("transcribes"),
                "{r}"
            );
            assert!(
                said(2).contains("\"forced\":true") || said(2).contains("forced-subtitle"),
                "{r}"
            );
            for (probe, (lang, start, text)) in r["probes"].as_array().unwrap().iter().zip(expect) {
                let shown = probe["cues"].as_array().unwrap();
                let cue = shown.iter().find(|c| {
                    c["text"]
                        .as_str()
                        .unwrap()
                        .replace("&amp;", "&")
                        .replace("&lt;", "<")
                        == text.replace("&amp;", "&").replace("&lt;", "<")
                });
                let cue = cue.unwrap_or_else(|| {
                    panic!(
                        "{} on {manifest}: no '{text}' in {lang} at {}: {r}",
                        r["player"], probe["at"]
                    )
                });
                // Shown at the time asked for, and active then.
                let at = num(probe, "at");
                assert!((num(probe, "currentTime") - at).abs() < 0.01, "{r}");
                assert!(num(cue, "start") <= at && at < num(cue, "end"), "{r}");
                if let Some(start) = start {
                    assert!(
                        (num(cue, "start") - start).abs() <= 0.04,
                        "{} on {manifest}: cue '{text}' starts at {}: {r}",
                        r["player"],
                        cue["start"]
                    );
                }
            }
        }
    }
}

/// The DASH text form is the package's choice: every track IMSC1 (from WebVTT and SRT too),
/// or every track WebVTT (from TTML too); HLS keeps WebVTT either way.
#[test]
fn the_dash_text_form_is_chosen_for_every_track() {
    let codecs = |out: &Path| -> Vec<String> {
        let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
            .expect("MPD parses");
        mpd.periods[0]
            .adaptations
            .iter()
            .filter(|s| s.contentType.as_deref() == Some("text"))
            .map(|s| s.representations[0].codecs.clone().unwrap())
            .collect()
    };
    let imsc1 = package(&["--dash-text", "imsc1"]);
    assert_eq!(codecs(&imsc1.out), ["stpp.ttml.im1t"; 3]);
    // The SubRip captions as IMSC1 documents, the cue in its segment's document.
    let (ok, samples, err) = node(
        "text.mjs",
        &[
            "--samples",
            imsc1.out.join("text_fr-CA_captions").to_str().unwrap(),
        ],
    );
    assert!(ok, "mp4box.js: {samples:?} {err}");
    assert!(samples.iter().all(|s| s["codec"] == "stpp"), "{samples:?}");
    let xml = samples[1]["xml"].as_str().unwrap();
    assert!(xml.contains(">Toi &amp; moi &lt;3</p>"), "{xml}");
    assert!(
        std::fs::read_to_string(imsc1.out.join("text_en_subtitles/1.vtt"))
            .unwrap()
            .starts_with("WEBVTT"),
        "HLS keeps WebVTT"
    );
    // Both DASH players show cues from the converted tracks at their times.
    assert_cues_shown(
        &imsc1.out,
        "manifest.mpd",
        &["shaka", "dashjs"],
        &[
            ("fr-CA", 3.05, "Toi & moi <3", 3.0),
            ("en", 1.95, "Across the join", 1.9),
        ],
    );

    let webvtt = package(&["--dash-text", "webvtt"]);
    assert_eq!(codecs(&webvtt.out), ["wvtt"; 3]);
    let de = cues_in_mp4(&webvtt.out.join("text_de_forced"));
    assert_eq!(de.len(), 1, "{de:?}");
    assert_eq!(
        (de[0].0, de[0].1, de[0].2.as_str()),
        (2200, 3400, "Schild: Ausgang")
    );
}

/// Plays `manifest` of `out` in `players` (the text harness) and checks each probe
/// (language, seconds, cue text, cue start): the cue is shown then, starting within 40 ms.
fn assert_cues_shown(
    out: &Path,
    manifest: &str,
    players: &[&str],
    probes: &[(&str, f64, &str, f64)],
) {
    let mut args = vec!["--root".to_string(), out.display().to_string()];
    args.extend(["--manifest".to_string(), manifest.to_string()]);
    for p in players {
        args.extend(["--player".to_string(), p.to_string()]);
    }
    for (lang, at, _, _) in probes {
        args.extend(["--probe".to_string(), format!("{lang}:{at}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, results, err) = node("text.mjs", &args);
    assert_eq!(results.len(), players.len(), "text harness: {err}");
    let plain = |t: &str| t.replace("&amp;", "&").replace("&lt;", "<");
    for r in &results {
        assert_eq!(r["errors"], Value::Array(vec![]), "{manifest}: {r}");
        for (probe, (_, _, text, start)) in r["probes"].as_array().unwrap().iter().zip(probes) {
            let cue = probe["cues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| plain(c["text"].as_str().unwrap()) == *text)
                .unwrap_or_else(|| panic!("{} on {manifest}: no '{text}': {r}", r["player"]));
            assert!((num(cue, "start") - start).abs() <= 0.04, "{r}");
        }
    }
}

/// A single-file package carries its text tracks as single files too (init, `sidx`, every
/// segment; DASH `SegmentBase`), and HLS keeps its WebVTT files beside them.
#[test]
fn single_file_packages_carry_their_subtitles() {
    let title = package(&["--single-file"]);
    let out = &title.out;
    let en = cues_in_mp4(&out.join("text_en_subtitles.mp4"));
    assert_eq!(
        en.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        [(1000, 1800), (1900, 2600), (4200, 5000)]
    );
    let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
        .expect("MPD parses");
    let text: Vec<_> = mpd.periods[0]
        .adaptations
        .iter()
        .filter(|s| s.contentType.as_deref() == Some("text"))
        .collect();
    assert_eq!(text.len(), 3);
    for set in &text {
        let rep = &set.representations[0];
        let base = rep.SegmentBase.as_ref().expect("SegmentBase");
        assert!(base.indexRange.is_some(), "{rep:?}");
        assert!(rep.BaseURL[0].base.ends_with(".mp4"), "{rep:?}");
    }
    // Shown at their times by the DASH players, and by hls.js from the WebVTT files.
    let probes = [
        ("fr-CA", 3.05, "Toi & moi <3", 3.0),
        ("de", 2.25, "Schild: Ausgang", 2.2),
    ];
    assert_cues_shown(out, "manifest.mpd", &["shaka", "dashjs"], &probes);
    assert_cues_shown(out, "master.m3u8", &["shaka", "hlsjs"], &probes);
}

#[test]
fn text_tracks_stay_clear_in_an_encrypted_package() {
    let title = package(&[
        "--encrypt",
        "cenc",
        "--key",
        "00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef",
    ]);
    let out = &title.out;
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let mpd = dash_mpd_core::parse(&mpd).unwrap();
    for set in &mpd.periods[0].adaptations {
        let protected = !set.ContentProtection.is_empty()
            || !set.representations[0].ContentProtection.is_empty();
        assert_eq!(
            protected,
            set.contentType.as_deref() != Some("text"),
            "{:?}",
            set.contentType
        );
    }
    let dir = out.join("text_en_subtitles");
    let files: Vec<String> = ["init.mp4", "1.m4s", "2.m4s", "3.m4s"]
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let (ok, lines, err) = node("mp4check.mjs", &args);
    assert!(ok, "mp4box.js: {lines:?} {err}");
    for l in &lines {
        let boxes = l["all"].to_string();
        for b in ["sinf", "enct", "senc", "saiz", "pssh"] {
            assert!(!boxes.contains(b), "{b} in a text file: {l}");
        }
    }
    assert!(lines[0]["all"].to_string().contains("wvtt"), "{}", lines[0]);
    let playlist = std::fs::read_to_string(dir.join("playlist.m3u8")).unwrap();
    assert!(!playlist.contains("EXT-X-KEY"), "{playlist}");
    // The media is encrypted all the same.
    assert!(std::fs::read_to_string(out.join("360p/playlist.m3u8"))
        .unwrap()
        .contains("EXT-X-KEY"));
}

#[test]
fn bad_subtitles_are_refused_naming_the_file_and_line() {
    let renditions = renditions();
    let dir = tempfile::tempdir().unwrap();
    let video = renditions.join("enc/360p.mp4");
    let cases: [(&str, &[u8], &str, &str); 7] = [
        (
            "bad-time.vtt",
            b"WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nHi\n",
            "en",
            "bad-time.vtt, line 3: `00:00:0x.000` is not a WebVTT timestamp",
        ),
        (
            "backwards.srt",
            b"1\n00:00:02,000 --> 00:00:01,000\nHi\n",
            "en",
            "backwards.srt, line 2: the cue ends (00:00:01,000) before it starts",
        ),
        (
            "latin1.srt",
            b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xe9\n",
            "fr",
            "latin1.srt, line 3: byte 0xE9 at column 4 is not UTF-8",
        ),
        ("fine.vtt", b"WEBVTT\n", "xx", "language 'xx'"),
        (
            "no-end.ttml",
            b"<tt xmlns=\"http://www.w3.org/ns/ttml\"><body><div>\n<p begin=\"1s\">Hi</p>\n</div></body></tt>",
            "en",
            "no-end.ttml, line 2: the paragraph has no end",
        ),
        (
            "subs.sub",
            b"{0}{25}MicroDVD\n",
            "en",
            "subs.sub: not a subtitle format Reel reads",
        ),
        (
            "bad.ass",
            b"[Events]\nFormat: Start, End, Text\nDialogue: 0:00:01.00,0:00:02,Hi\n",
            "en",
            "bad.ass, line 3: `0:00:02` is not an ASS time",
        ),
    ];
    for (name, bytes, lang, says) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let spec = format!("{lang}={}", file.display());
        let o = package_video(&video, &out, &[], &[&spec]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name} was accepted");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !out.exists(),
            "{name}: a failed package left {}",
            out.display()
        );
    }
    // One track per language and kind, however the tag is written.
    let (a, b) = (dir.path().join("a.vtt"), dir.path().join("b.vtt"));
    for f in [&a, &b] {
        std::fs::write(f, "WEBVTT\n").unwrap();
    }
    let out = dir.path().join("out-twice");
    let (fr_ca, fr_ca_again) = (
        format!("fr-ca,captions={}", a.display()),
        format!("fr-CA,captions={}", b.display()),
    );
    let o = package_video(&video, &out, &[], &[&fr_ca, &fr_ca_again]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "two French caption tracks were accepted"
    );
    assert!(
        stderr.contains("a second captions track in 'fr-CA'"),
        "{stderr}"
    );
    assert!(!out.exists());
}

/// A job's `[[subtitles]]` reach the published title and its record; a changed subtitle file
/// makes the next run package and publish again (the renditions are reused).
#[test]
fn a_job_publishes_its_subtitles_and_lists_them_in_the_title_record() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ladder.toml"), LADDER).unwrap();
    std::fs::write(dir.path().join("en.vtt"), EN_VTT).unwrap();
    std::fs::write(dir.path().join("fr-sdh.srt"), FR_SRT).unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"
ladder = "ladder.toml"
work_dir = "work"
[title]
id = "with-subtitles"
source = "{}"
[packaging]
segment_duration = 2
[destination]
url = "file://out"
[[subtitles]]
path = "en.vtt"
language = "en"
[[subtitles]]
path = "fr-sdh.srt"
language = "fr-CA"
kind = "captions"
name = "Français (CA) SDH"
"#,
            fixture("mezz_720p25.mp4").display()
        ),
    )
    .unwrap();
    let run = || {
        let o = reel(&["run", job.to_str().unwrap(), "--json"]);
        assert!(
            o.status.success(),
            "reel run: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run();
    let out = dir.path().join("out");
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("title.json")).unwrap()).unwrap();
    let text: Vec<&Value> = record["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "text")
        .collect();
    assert_eq!(text.len(), 2, "{record}");
    assert_eq!(text[1]["text"]["language"], "fr-CA");
    assert_eq!(text[1]["text"]["kind"], "captions");
    assert_eq!(text[1]["codec"], "wvtt");
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(master.contains("NAME=\"Français (CA) SDH\""), "{master}");
    let segment = |n: u32| std::fs::read_to_string(out.join(format!("text_en_subtitles/{n}.vtt")));
    assert!(segment(1).unwrap().contains("<i>One</i> line"));

    // A fixed cue: the next run packages again and publishes it.
    std::fs::write(
        dir.path().join("en.vtt"),
        EN_VTT.replace("<i>One</i> line", "One fixed line"),
    )
    .unwrap();
    let events = run();
    let skipped: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "phase_skipped")
        .collect();
    assert!(
        skipped.iter().any(|e| e["phase"] == "encode"),
        "the renditions are reused: {events}"
    );
    assert!(
        !skipped.iter().any(|e| e["phase"] == "package"),
        "the package was not made again: {events}"
    );
    assert!(segment(1).unwrap().contains("One fixed line"));
    assert!(!segment(1).unwrap().contains("<i>One</i> line"));
}

/// A bad subtitle file fails a job before anything is encoded (not after hours of encode),
/// naming the file and line.
#[test]
fn a_bad_subtitle_file_fails_the_job_before_the_encode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ladder.toml"), LADDER).unwrap();
    std::fs::write(
        dir.path().join("en.vtt"),
        "WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nHi\n",
    )
    .unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "ladder = \"ladder.toml\"\nwork_dir = \"work\"\n[title]\nid = \"bad-subs\"\n\
             source = \"{}\"\n[destination]\nurl = \"file://out\"\n[[subtitles]]\n\
             path = \"en.vtt\"\nlanguage = \"en\"\n",
            fixture("mezz_720p25.mp4").display()
        ),
    )
    .unwrap();
    let o = reel(&["run", job.to_str().unwrap(), "--json"]);
    assert!(!o.status.success());
    let events = String::from_utf8_lossy(&o.stdout);
    assert!(
        events.contains("en.vtt, line 3: `00:00:0x.000` is not a WebVTT timestamp"),
        "{events}"
    );
    assert!(!events.contains("rendition_done"), "{events}");
    assert!(!dir.path().join("out/manifest.mpd").exists());
}

/// Text tracks inside media files (as mezzanines carry them): an MP4 with a mov_text track and
/// a Matroska file with French and English SubRip tracks, both made by ffmpeg from SRT. The
/// track in the asked language is taken; its cues reach the package at their times.
#[test]
fn text_tracks_inside_media_files_become_subtitles() {
    let renditions = renditions();
    let dir = tempfile::tempdir().unwrap();
    let video = renditions.join("enc/360p.mp4");
    let d = dir.path();
    // With italics and bold, which ffmpeg writes into mov_text as style records.
    std::fs::write(
        d.join("fr.srt"),
        FR_SRT
            .replace("[PORTE QUI GRINCE]", "[PORTE <i>QUI</i> GRINCE]")
            .replace("Toi & moi", "Toi & <b>moi</b>"),
    )
    .unwrap();
    std::fs::write(
        d.join("en.srt"),
        "1\n00:00:01,200 --> 00:00:02,400\n<i>Door</i> & hinge\n\n2\n00:00:03,500 --> 00:00:04,250\nLast line\n",
    )
    .unwrap();
    let mux = |out: &str, codec: &str, inputs: &[(&str, &str)]| {
        let mut args: Vec<String> = vec!["-v".into(), "error".into(), "-y".into(), "-i".into()];
        args.push(video.display().to_string());
        for (file, _) in inputs {
            args.extend(["-i".into(), d.join(file).display().to_string()]);
        }
        args.extend(["-map".into(), "0:v".into()]);
        for (i, (_, language)) in inputs.iter().enumerate() {
            args.extend(["-map".into(), format!("{}:s", i + 1)]);
            args.push(format!("-metadata:s:s:{i}"));
            args.push(format!("language={language}"));
        }
        args.extend(["-c:v".into(), "copy".into(), "-c:s".into(), codec.into()]);
        args.push(d.join(out).display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = tool("ffmpeg", &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // An ASS file (as Aegisub writes them): italics, a top placement and a colour; a style
    // that is bold and placed at the top left.
    std::fs::write(
        d.join("de.ass"),
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n\
         Format: Name, Fontname, Fontsize, Bold, Alignment\n\
         Style: Default,Arial,20,0,2\nStyle: Sign,Arial,20,-1,7\n\n[Events]\n\
         Format: Layer, Start, End, Style, Name, MarginL, \
         MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:02.20,0:00:03.40,Default,,0,0,0,,\
         {\\an8}{\\i1}Schild{\\i0}: Ausgang\nDialogue: 0,0:00:04.00,0:00:04.50,Default,,0,0,0,,\
         {\\c&H0000FF&}Rot\\Nzwei\nDialogue: 0,0:00:04.50,0:00:04.90,Sign,,0,0,0,,AUSGANG\n",
    )
    .unwrap();
    mux("mezz.mp4", "mov_text", &[("fr.srt", "fra")]);
    mux("mezz.mkv", "srt", &[("fr.srt", "fre"), ("en.srt", "eng")]);
    mux("ass.mkv", "ass", &[("de.ass", "ger")]);
    let out = d.join("pkg");
    let fr = format!("fr={}", d.join("mezz.mp4").display());
    let en = format!("en,captions={}", d.join("mezz.mkv").display());
    let de = format!("de={}", d.join("ass.mkv").display());
    let de_sidecar = format!("de,forced={}", d.join("de.ass").display());
    let o = package_video(
        &video,
        &out,
        &["--segment-duration", "2"],
        &[&fr, &en, &de, &de_sidecar],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cues = |track: &str| cues_in_mp4(&out.join(track));
    // mov_text carries the text and its style records (ffmpeg's encoder drops the `{\an8}`).
    assert_eq!(
        cues("text_fr_subtitles"),
        [
            (600, 1400, "[PORTE <i>QUI</i> GRINCE]".into(), "".into()),
            (3000, 3960, "Toi &amp; <b>moi</b> &lt;3".into(), "".into()),
        ]
    );
    assert_eq!(
        cues("text_en_captions"),
        [
            (1200, 2400, "<i>Door</i> &amp; hinge".into(), "".into()),
            (3500, 4250, "Last line".into(), "".into()),
        ]
    );
    // ASS, inside Matroska (its styles from the track's header) or as a file: italics and the
    // top placement kept, the colour dropped (with a warning for the file), `\N` a line
    // break, the style's bold and place.
    for track in ["text_de_subtitles", "text_de_forced"] {
        assert_eq!(
            cues(track),
            [
                (2200, 3400, "<i>Schild</i>: Ausgang".into(), "line:0".into()),
                (4000, 4500, "Rot\nzwei".into(), "".into()),
                (
                    4500,
                    4900,
                    "<b>AUSGANG</b>".into(),
                    "line:0 align:start".into()
                ),
            ],
            "{track}"
        );
    }
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("de.ass, line 12: ASS override tags"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A language the file has no track in is refused, naming the file and its languages.
    let de = format!("de={}", d.join("mezz.mkv").display());
    let o = package_video(&video, &d.join("none"), &[], &[&de]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("mezz.mkv: none of its 2 text tracks is in 'de'"),
        "{stderr}"
    );
}
