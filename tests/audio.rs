//! End-to-end: a title with several audio tracks, each with a language and a role. The
//! mezzanine has English and German audio (the German one a dub), and a WAV file carries the
//! English audio description. Judged by ffprobe (languages), ffmpeg (each track's tone: the
//! right stream reached the right track), the manifests' own parsers, and shaka-player,
//! dash.js and hls.js in Chromium listing the tracks and playing the one asked for.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

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

/// The tones that tell the tracks apart: the mezzanine's English and German audio, and the
/// description file.
const ENGLISH_HZ: f64 = 440.0;
const GERMAN_HZ: f64 = 1000.0;
const DESCRIPTION_HZ: f64 = 2500.0;

/// The 720p fixture's picture with two audio tracks of steady tones, tagged `eng` and `deu`.
fn two_language_mezzanine(path: &Path) {
    let tone = |hz: f64| format!("sine=frequency={hz}:sample_rate=48000:duration=5");
    let o = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-i",
            fixture("mezz_720p25.mp4").to_str().unwrap(),
            "-f",
            "lavfi",
            "-i",
            &tone(ENGLISH_HZ),
            "-f",
            "lavfi",
            "-i",
            &tone(GERMAN_HZ),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=deu",
            path.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The job: the mezzanine's second audio track as a German dub, the WAV as English audio
/// description, plus `more` (TOML).
fn write_job(dir: &Path, more: &str) -> PathBuf {
    std::fs::write(dir.join("ladder.toml"), LADDER).unwrap();
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"
ladder = "ladder.toml"
work_dir = "work"
[title]
id = "dubbed"
source = "mezz.mp4"
[packaging]
segment_duration = 2
[destination]
url = "file://out"
[[audio]]
track = 2
role = "dub"
name = "Deutsch (Synchronfassung)"
[[audio]]
path = "description.wav"
language = "en"
role = "description"
{more}
"#
        ),
    )
    .unwrap();
    job
}

fn run_job(job: &Path) -> Vec<Value> {
    let o = reel(&["run", job.to_str().unwrap(), "--json"]);
    assert!(
        o.status.success(),
        "reel run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A packaged track's init segment and media segments as one file, for ffmpeg.
fn joined(out: &Path, track: &str) -> PathBuf {
    let dir = out.join(track);
    let mut bytes = std::fs::read(dir.join("init.mp4")).unwrap();
    for n in 1.. {
        match std::fs::read(dir.join(format!("{n}.m4s"))) {
            Ok(b) => bytes.extend(b),
            Err(_) => break,
        }
    }
    let path = out.join(format!("{track}-joined.mp4"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The tone of an audio file, from its zero crossings (ffmpeg decodes it to mono PCM).
fn tone_hz(file: &Path) -> f64 {
    let o = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            file.to_str().unwrap(),
            "-ac",
            "1",
            "-ar",
            "48000",
            "-f",
            "s16le",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let samples: Vec<i16> = o
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // The middle, away from the encoder's priming and the fade of the last frame.
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (middle.len() as f64 / 48_000.0)
}

/// ISO 639-1 or -2 codes as one, for players that shorten them (shaka-player says `de`).
fn language(code: &str) -> &str {
    match code {
        "de" | "deu" => "deu",
        "en" | "eng" => "eng",
        other => other,
    }
}

#[test]
fn dubbed_and_described_audio_reach_every_player_with_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    two_language_mezzanine(&dir.path().join("mezz.mp4"));
    // Longer than the picture: trimmed to it.
    tone_file(&dir.path().join("description.wav"), DESCRIPTION_HZ, 6);
    let job = write_job(dir.path(), "");
    run_job(&job);
    let out = dir.path().join("out");

    // The title record lists every audio track with its language and role.
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("title.json")).unwrap()).unwrap();
    let audio: Vec<(String, String, String)> = record["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "audio")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("language"), s("role"))
        })
        .collect();
    let expected = [
        ("audio", "eng", "main", ENGLISH_HZ),
        ("audio_deu_dub", "deu", "dub", GERMAN_HZ),
        (
            "audio_eng_description",
            "eng",
            "description",
            DESCRIPTION_HZ,
        ),
    ];
    assert_eq!(
        audio,
        expected
            .iter()
            .map(|(n, l, r, _)| (n.to_string(), l.to_string(), r.to_string()))
            .collect::<Vec<_>>(),
        "{record}"
    );
    let titles: Vec<&Value> = record["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "audio")
        .map(|r| &r["title"])
        .collect();
    assert_eq!(
        titles,
        [
            &Value::Null,
            &json!("Deutsch (Synchronfassung)"),
            &Value::Null
        ]
    );

    // ffprobe reads each track's language; each carries its own stream's tone, and none runs
    // past the picture.
    for (name, lang, _, hz) in expected {
        let file = joined(&out, name);
        let stream = ffprobe_stream(&file);
        assert_eq!(stream["tags"]["language"], lang, "{name}: {stream}");
        let duration = num(&stream, "duration");
        assert!(duration > 4.8 && duration < 5.2, "{name}: {duration} s");
        let measured = tone_hz(&file);
        assert!(
            (measured - hz).abs() < hz * 0.02,
            "{name} carries a {measured:.0}-Hz tone, not its source's {hz} Hz"
        );
    }

    // The manifests, as their parsers read them.
    assert_eq!(dash_audio_roles(&out), expected_dash_roles());
    let master = std::fs::read(out.join("master.m3u8")).unwrap();
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("the master parses");
    let media: Vec<(String, String, bool, Option<String>)> = master
        .alternatives
        .iter()
        .filter(|m| m.media_type == m3u8_rs::AlternativeMediaType::Audio)
        .map(|m| {
            (
                m.language.clone().unwrap_or_default(),
                m.name.clone(),
                m.default,
                m.characteristics.clone(),
            )
        })
        .collect();
    assert_eq!(
        media,
        vec![
            ("eng".into(), "English".into(), true, None),
            // The dub has a name of its own.
            (
                "deu".into(),
                "Deutsch (Synchronfassung)".into(),
                false,
                None
            ),
            (
                "eng".into(),
                "English audio description".into(),
                false,
                Some("public.accessibility.describes-video".into())
            ),
        ]
    );

    // Players list the three tracks with their languages and roles, and play the one asked for.
    let described = "English audio description";
    for (manifest, players) in [
        ("manifest.mpd", &["shaka", "dashjs"][..]),
        ("master.m3u8", &["hlsjs"][..]),
    ] {
        let results = play_with(&out, manifest, players, 2, &["--audio-label", described]);
        for r in results {
            let tracks: Vec<(String, String)> = r["audioTracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        language(t["language"].as_str().unwrap_or("")).to_string(),
                        t["role"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            // HLS has no dub role: hls.js lists it without one.
            let dub = if manifest.ends_with(".m3u8") {
                ""
            } else {
                "dub"
            };
            assert_eq!(
                tracks,
                vec![
                    ("eng".to_string(), "main".to_string()),
                    ("deu".to_string(), dub.to_string()),
                    ("eng".to_string(), "description".to_string()),
                ],
                "{r}"
            );
            assert_eq!(r["audioPlayed"]["label"], described, "{r}");
            assert_eq!(r["audioPlayed"]["role"], "description", "{r}");
        }
    }

    // Nothing changed: nothing is encoded again. A new description file: only its track is.
    let events = run_job(&job);
    let encoded = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "rendition_done")
            .map(|e| e["rendition"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(encoded(&events), Vec::<String>::new());
    tone_file(&dir.path().join("description.wav"), 3000.0, 5);
    let events = run_job(&job);
    assert_eq!(encoded(&events), vec!["audio_eng_description".to_string()]);
    let measured = tone_hz(&joined(&out, "audio_eng_description"));
    assert!((measured - 3000.0).abs() < 60.0, "{measured} Hz");
    // Packaged from the rendition files this time: the roles came from their `kind` boxes.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "phase_started" && e["phase"] == "package"),
        "{events:?}"
    );
    assert_eq!(dash_audio_roles(&out), expected_dash_roles());
    // And the dub's name from its `udta` `name`.
    assert_eq!(
        dash_audio_labels(&out),
        [
            "English",
            "Deutsch (Synchronfassung)",
            "English audio description"
        ]
    );
}

/// The audio AdaptationSets of `out`'s MPD, as the dash-mpd parser reads them.
fn dash_audio_sets(out: &Path) -> Vec<dash_mpd_core::AdaptationSet> {
    let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
        .expect("the MPD parses");
    mpd.periods[0]
        .adaptations
        .iter()
        .filter(|a| a.contentType.as_deref() == Some("audio"))
        .cloned()
        .collect()
}

/// The Label of every audio AdaptationSet of `out`'s MPD.
fn dash_audio_labels(out: &Path) -> Vec<String> {
    dash_audio_sets(out)
        .iter()
        .map(|a| {
            a.Label
                .first()
                .map(|l| l.content.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// (lang, Role values, Accessibility values) of every audio AdaptationSet of `out`'s MPD.
fn dash_audio_roles(out: &Path) -> Vec<(String, String, Vec<String>)> {
    dash_audio_sets(out)
        .iter()
        .map(|a| {
            (
                a.lang.clone().unwrap_or_default(),
                a.Role
                    .iter()
                    .filter_map(|r| r.value.clone())
                    .collect::<Vec<_>>()
                    .join(","),
                a.Accessibility
                    .iter()
                    .filter_map(|x| x.value.clone())
                    .collect(),
            )
        })
        .collect()
}

fn expected_dash_roles() -> Vec<(String, String, Vec<String>)> {
    vec![
        ("eng".into(), "main".into(), vec![]),
        ("deu".into(), "dub".into(), vec![]),
        ("eng".into(), "description".into(), vec!["1".into()]),
    ]
}

/// `reel package --audio LANGUAGE,ROLE=FILE`: encoded audio files (AAC in M4A, as ffmpeg
/// makes them) become tracks with that language and role beside the renditions' own audio.
#[test]
fn reel_package_takes_audio_files_with_a_language_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encode("audio-package", LADDER).join("enc");
    let aac = |name: &str, hz: f64| {
        let path = dir.path().join(name);
        tone_file(&path, hz, 5);
        path
    };
    let de = aac("de.m4a", GERMAN_HZ);
    let ad = aac("ad.m4a", DESCRIPTION_HZ);
    let pt = aac("pt.m4a", ENGLISH_HZ);
    let out = dir.path().join("pkg");
    let (de_arg, ad_arg, pt_arg) = (
        format!("de={}", de.display()),
        format!("en,description={}", ad.display()),
        format!("pt-BR,dub,Português — dobragem={}", pt.display()),
    );
    reel_ok(&[
        "package",
        enc.join("360p.mp4").to_str().unwrap(),
        enc.join("audio.mp4").to_str().unwrap(),
        "--audio",
        &de_arg,
        "--audio",
        &ad_arg,
        "--audio",
        &pt_arg,
        "--segment-duration",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut roles = dash_audio_roles(&out);
    roles[0].0 = "eng".into(); // the fixture's own audio is untagged
    let mut expected = expected_dash_roles();
    // A tag with a region stays whole (the MP4 keeps it in `elng`, `mdhd` says `por`).
    expected.push(("pt-BR".into(), "dub".into(), vec![]));
    assert_eq!(roles, expected);
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(
        master.contains("LANGUAGE=\"pt-BR\",NAME=\"Português — dobragem\""),
        "{master}"
    );
    assert!(
        master.contains("LANGUAGE=\"deu\",NAME=\"German\""),
        "{master}"
    );
    assert_eq!(dash_audio_labels(&out)[3], "Português — dobragem");
    let pt_file = joined(&out, "audio_pt-BR_dub");
    // ffprobe reads the name as the track's handler name (Debian's ffmpeg does not read the
    // `udta` `name` our demuxer takes it back from).
    let tags = &ffprobe_stream(&pt_file)["tags"];
    assert_eq!(
        (&tags["language"], &tags["handler_name"]),
        (&json!("por"), &json!("Português — dobragem")),
        "{tags}"
    );
    // Packaged again from that file: the tag is read back from its `elng`.
    let again = dir.path().join("again");
    reel_ok(&[
        "package",
        enc.join("360p.mp4").to_str().unwrap(),
        pt_file.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(dash_audio_roles(&again)[0].0, "pt-BR");
    assert_eq!(dash_audio_labels(&again), ["Português — dobragem"]);
    for (track, lang, hz) in [
        ("audio_deu_dub", "deu", GERMAN_HZ),
        ("audio_eng_description", "eng", DESCRIPTION_HZ),
    ] {
        let file = joined(&out, track);
        assert_eq!(ffprobe_stream(&file)["tags"]["language"], lang, "{track}");
        let measured = tone_hz(&file);
        assert!((measured - hz).abs() < hz * 0.02, "{track}: {measured} Hz");
    }
    // A WAV is not encoded audio: refused naming the file.
    let wav = dir.path().join("ad.wav");
    tone_file(&wav, DESCRIPTION_HZ, 5);
    let o = reel(&[
        "package",
        enc.join("360p.mp4").to_str().unwrap(),
        "--audio",
        &format!("en,description={}", wav.display()),
        "--out",
        dir.path().join("refused").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ad.wav"), "{err}");
    assert!(!dir.path().join("refused").exists());
}

#[test]
fn bad_audio_entries_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    two_language_mezzanine(&dir.path().join("mezz.mp4"));
    tone_file(&dir.path().join("description.wav"), DESCRIPTION_HZ, 5);
    let refused = |more: &str, expected: &[&str]| {
        let job = write_job(dir.path(), more);
        let o = reel(&["run", job.to_str().unwrap(), "--dry-run"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{more}: accepted");
        for e in expected {
            assert!(err.contains(e), "{more}: {err}");
        }
    };
    refused(
        "[[audio]]\ntrack = 3\nrole = \"commentary\"",
        &["mezz.mp4", "audio track 3", "2 audio tracks"],
    );
    refused(
        "[[audio]]\npath = \"description.wav\"\nrole = \"commentary\"",
        &["audio[2]", "description.wav", "no language tag"],
    );
    refused(
        "[[audio]]\npath = \"description.wav\"\nlanguage = \"english\"\nrole = \"dub\"",
        &["audio[2]", "english"],
    );
    refused(
        "[[audio]]\npath = \"description.wav\"\nlanguage = \"en\"\nrole = \"director\"",
        &["director"],
    );
    refused(
        "[[audio]]\npath = \"missing.wav\"\nlanguage = \"en\"\nrole = \"dub\"",
        &["missing.wav"],
    );
    refused(
        "[[audio]]\npath = \"description.wav\"\nlanguage = \"en\"\nrole = \"dub\"\n\
         name = \"The \\\"best\\\" dub\"",
        &["audio[2]", "description.wav", "double quote"],
    );
    // A source track nobody asked for is named in a notice.
    let job = write_job(dir.path(), "");
    std::fs::write(
        &job,
        std::fs::read_to_string(&job).unwrap().replace(
            "[[audio]]\ntrack = 2\nrole = \"dub\"\nname = \"Deutsch (Synchronfassung)\"\n",
            "",
        ),
    )
    .unwrap();
    let o = reel(&["run", job.to_str().unwrap(), "--dry-run"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(plan.contains("tracks 2 are left out"), "{plan}");
    assert!(plan.contains("audio_eng_description"), "{plan}");
}
