//! End-to-end: `reel package --encrypt` judged by an independent decryptor (Shaka Packager's
//! raw-key decryption, then ffmpeg frame hashes against the clear packaging), by the mp4box.js
//! parser, by Shaka Packager's own PSSH boxes, and by real players with EME ClearKey in
//! headless Chromium (keys given to the player, and a ClearKey licence server).

mod common;
use base64::Engine;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const KID: &str = "8c8e1d6c2a4b4f6e9d3a7b5c1e2f3a4b";
const KEY: &str = "6a3f9c1e8b2d4f7a5c0e1b3d9f8a7c6e";

fn key_arg() -> String {
    format!("{KID}:{KEY}")
}

const H264: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 720
bitrate = 2000
[[rung]]
codec = "h264"
height = 240
bitrate = 300
[audio]
codec = "aac"
bitrate = 128
"#;

const AV1: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "av1"
encoder = "svt-av1"
height = 360
crf = 40
[[rung]]
codec = "av1"
encoder = "rav1e"
height = 240
quality = 130
[audio]
codec = "opus"
bitrate = 96
"#;

fn h264_renditions() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| encode("drm-h264", H264))
}

fn av1_renditions() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| encode("drm-av1", AV1))
}

fn inputs(renditions: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(renditions.join("enc"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn package(renditions: &Path, out: &Path, extra: &[&str]) -> Value {
    let files = inputs(renditions);
    let mut args = vec!["package"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap(), "--json"]);
    args.extend(extra);
    serde_json::from_str(&reel_ok(&args)).unwrap()
}

fn shaka_packager() -> PathBuf {
    root().join("tests/players/node_modules/shaka-packager/bin/packager-linux-x64")
}

/// ffmpeg's per-frame hashes of the decoded first stream (video frames or audio frames).
fn frame_hashes(file: &Path) -> Vec<String> {
    ffmpeg_hashes(&[], file, &[])
}

/// The hash column of ffmpeg's `framemd5` of the first stream of `file`, with `before` the
/// input (e.g. `-decryption_key`) and `after` it (e.g. `-c copy` for packets, not frames).
fn ffmpeg_hashes(before: &[&str], file: &Path, after: &[&str]) -> Vec<String> {
    let mut args = vec!["-v", "error"];
    args.extend(before);
    args.extend(["-i", file.to_str().unwrap(), "-map", "0:0"]);
    args.extend(after);
    args.extend(["-f", "framemd5", "-"]);
    let o = tool("ffmpeg", &args);
    assert!(
        o.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

fn mp4check(file: &Path) -> Value {
    let (ok, lines, err) = node("mp4check.mjs", &[file.to_str().unwrap()]);
    assert!(ok, "mp4box.js on {}: {lines:?} {err}", file.display());
    lines.into_iter().next().unwrap()
}

/// Decrypts one track file with Shaka Packager's raw-key decryption. `None` when Shaka
/// Packager crashed (it does on some valid inputs, see below), an error when it refused.
fn shaka_decrypt(enc_file: &Path, kind: &str, dec: &Path) -> Option<()> {
    let o = tool(
        shaka_packager().to_str().unwrap(),
        &[
            &format!(
                "in={},stream={kind},output={}",
                enc_file.display(),
                dec.display()
            ),
            "--enable_raw_key_decryption",
            "--keys",
            &format!("key_id={KID}:key={KEY}"),
        ],
    );
    match o.status.code() {
        Some(0) => Some(()),
        Some(c) => panic!(
            "Shaka Packager refused {} (exit {c}): {}",
            enc_file.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        None => None,
    }
}

/// Each encrypted single-file track decrypts, with independent tools, to frames identical to
/// the clear packaging's (ffmpeg frame hashes): Shaka Packager for `cenc` and `cbcs`, and
/// ffmpeg's own CENC decryption as a second oracle for `cenc`. Decrypted samples are also
/// compared byte for byte (packet hashes).
///
/// (Shaka Packager 3.4.2 crashes on, or decrypts one sample of with a wrong IV, single-track
/// files whose track is not track 1; every file we write holds its track as track 1.)
fn decrypt_and_compare(renditions: &Path, scheme: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let clear = dir.path().join("clear");
    let enc = dir.path().join("enc");
    package(renditions, &clear, &["--single-file"]);
    let key = key_arg();
    let mut args = vec!["--single-file", "--encrypt", scheme, "--key", &key];
    args.extend(extra);
    package(renditions, &enc, &args);
    let iv_size = if extra.contains(&"16") { 16 } else { 8 };
    let mut by_shaka = 0;
    for entry in std::fs::read_dir(&clear).unwrap() {
        let clear_file = entry.unwrap().path();
        if clear_file.extension().and_then(|e| e.to_str()) != Some("mp4") {
            continue;
        }
        let name = clear_file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let label = format!("{scheme} {name}");
        let enc_file = enc.join(&name);
        let stream = ffprobe_stream(&clear_file);
        let kind = stream["codec_type"].as_str().unwrap().to_string();
        // The encryption boxes, read by an independent parser.
        let info = mp4check(&enc_file);
        let e = &info["encryption"];
        assert_eq!(e["schm"], serde_json::json!([scheme]), "{info}");
        let tenc = &e["tenc"][0];
        assert_eq!(tenc["kid"], KID, "{info}");
        let want = frame_hashes(&clear_file);
        assert!(
            want.len() > 20,
            "{} frames in {}",
            want.len(),
            clear_file.display()
        );
        if scheme == "cbcs" {
            let (crypt, skip) = if kind == "video" { (1, 9) } else { (0, 0) };
            assert_eq!(
                (tenc["crypt"].as_u64(), tenc["skip"].as_u64()),
                (Some(crypt), Some(skip))
            );
            assert_eq!(tenc["constantIvSize"], 16, "{info}");
        } else {
            assert_eq!(tenc["ivSize"], iv_size, "{info}");
            let got = ffmpeg_decrypted_hashes(&enc_file);
            assert_eq!(
                got, want,
                "{label}: ffmpeg's decryption differs from the clear frames"
            );
        }
        let dec = dir.path().join(format!("dec-{name}"));
        shaka_decrypt(&enc_file, &kind, &dec)
            .unwrap_or_else(|| panic!("{label}: Shaka Packager crashed"));
        assert_eq!(
            packet_hashes(&dec),
            packet_hashes(&clear_file),
            "{label}: Shaka Packager's decrypted samples differ"
        );
        assert_eq!(
            frame_hashes(&dec),
            want,
            "{label}: Shaka Packager's decrypted frames differ"
        );
        by_shaka += 1;
    }
    assert!(
        by_shaka >= 2,
        "Shaka Packager decrypted only {by_shaka} tracks"
    );
}

/// ffmpeg's hashes of the first stream's packets (the samples, not decoded).
fn packet_hashes(file: &Path) -> Vec<String> {
    ffmpeg_hashes(&[], file, &["-c", "copy"])
}

/// ffmpeg's frame hashes of a `cenc` file decrypted by ffmpeg itself.
fn ffmpeg_decrypted_hashes(file: &Path) -> Vec<String> {
    ffmpeg_hashes(&["-decryption_key", KEY], file, &[])
}

#[test]
fn shaka_packager_decrypts_h264_and_aac_to_the_clear_frames() {
    decrypt_and_compare(h264_renditions(), "cenc", &[]);
    decrypt_and_compare(h264_renditions(), "cenc", &["--iv-size", "16"]);
    decrypt_and_compare(h264_renditions(), "cbcs", &[]);
}

#[test]
fn shaka_packager_decrypts_av1_to_the_clear_frames() {
    decrypt_and_compare(av1_renditions(), "cenc", &[]);
    decrypt_and_compare(av1_renditions(), "cbcs", &[]);
}

/// Shaka Packager's raw-key encryption of one stream of `input` into `output`.
fn shaka_encrypt(input: &Path, stream: &str, output: &Path, scheme: &str, extra: &[&str]) {
    let mut args = vec![
        format!(
            "in={},stream={stream},output={}",
            input.display(),
            output.display()
        ),
        "--enable_raw_key_encryption".into(),
        "--keys".into(),
        format!("key_id={KID}:key={KEY}"),
        "--protection_scheme".into(),
        scheme.into(),
        "--clear_lead".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tool(shaka_packager().to_str().unwrap(), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every `pssh` box of `file`, sorted.
fn pssh_boxes(file: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = data[at..].windows(4).position(|w| w == b"pssh") {
        let start = at + i - 4;
        let size = u32::from_be_bytes(data[start..start + 4].try_into().unwrap()) as usize;
        out.push(data[start..start + size].to_vec());
        at = start + size;
    }
    out.sort();
    out
}

/// Our PSSH boxes are byte-identical to the ones Shaka Packager writes for the same key.
#[test]
fn pssh_boxes_match_shaka_packager() {
    let dir = tempfile::tempdir().unwrap();
    // The same input for both: AAC made by ffmpeg.
    let audio = dir.path().join("aac.mp4");
    let src = fixture("mezz_720p25.mp4");
    let o = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            src.to_str().unwrap(),
            "-vn",
            "-c:a",
            "aac",
            audio.to_str().unwrap(),
        ],
    );
    assert!(o.status.success());
    for scheme in ["cenc", "cbcs"] {
        let theirs = dir.path().join(format!("shaka-{scheme}.mp4"));
        shaka_encrypt(
            &audio,
            "audio",
            &theirs,
            scheme,
            &["--protection_systems", "Widevine,PlayReady,CommonSystem"],
        );
        let ours = dir.path().join(format!("ours-{scheme}"));
        reel_ok(&[
            "package",
            audio.to_str().unwrap(),
            "--out",
            ours.to_str().unwrap(),
            "--single-file",
            "--encrypt",
            scheme,
            "--key",
            &key_arg(),
            "--drm",
            "widevine,playready,clearkey",
        ]);
        let want = pssh_boxes(&theirs);
        assert_eq!(
            want.len(),
            3,
            "Shaka Packager wrote {} pssh boxes",
            want.len()
        );
        assert_eq!(
            pssh_boxes(&ours.join("aac.mp4")),
            want,
            "{scheme} pssh boxes differ"
        );
    }
}

/// With a key per track class, every track's common and Widevine PSSH lists every key ID,
/// byte-identical to Shaka Packager's for the same two keys (audio and SD video).
#[test]
fn pssh_boxes_list_every_key_of_the_title_as_shaka_packager_does() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("tiny_180p25.mp4");
    // Key IDs in the order of Shaka's labels (AUDIO < SD), which is also their byte order.
    let (audio_kid, audio_key) = (
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
    );
    let (sd_kid, sd_key) = (
        "33333333333333333333333333333333",
        "44444444444444444444444444444444",
    );
    let theirs = dir.path().join("shaka");
    std::fs::create_dir_all(&theirs).unwrap();
    let keys = format!(
        "label=AUDIO:key_id={audio_kid}:key={audio_key},label=SD:key_id={sd_kid}:key={sd_key}"
    );
    let o = tool(
        shaka_packager().to_str().unwrap(),
        &[
            &format!(
                "in={},stream=audio,output={}/a.mp4,drm_label=AUDIO",
                src.display(),
                theirs.display()
            ),
            &format!(
                "in={},stream=video,output={}/v.mp4,drm_label=SD",
                src.display(),
                theirs.display()
            ),
            "--enable_raw_key_encryption",
            "--keys",
            &keys,
            "--protection_systems",
            "Widevine,CommonSystem",
            "--clear_lead",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = dir.path().join("ours");
    reel_ok(&[
        "package",
        src.to_str().unwrap(),
        "--out",
        ours.to_str().unwrap(),
        "--single-file",
        "--encrypt",
        "cenc",
        "--key",
        &format!("audio={audio_kid}:{audio_key}"),
        "--key",
        &format!("sd={sd_kid}:{sd_key}"),
        "--drm",
        "widevine,clearkey",
    ]);
    let tracks: Vec<PathBuf> = std::fs::read_dir(&ours)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    let want = pssh_boxes(&theirs.join("a.mp4"));
    assert_eq!(
        want.len(),
        2,
        "Shaka Packager wrote {} pssh boxes",
        want.len()
    );
    assert_eq!(want, pssh_boxes(&theirs.join("v.mp4")));
    for t in tracks {
        assert_eq!(pssh_boxes(&t), want, "{}", t.display());
    }
}

/// A title encrypted with a key per track class (the default job's `keys = "generate"`:
/// audio, SD and HD keys) plays to the end in hls.js through a ClearKey licence server that
/// answers with exactly the keys asked for. With one key ID per PSSH, hls.js asked for the
/// video key only and waited for the audio key forever (issue 17).
#[test]
fn players_play_a_title_with_a_key_per_track_class() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("classes");
    let cpix = dir.path().join("keys.cpix");
    package(
        h264_renditions(),
        &out,
        &[
            "--encrypt",
            "cenc",
            "--generate-keys",
            cpix.to_str().unwrap(),
        ],
    );
    let keys = keys_of_cpix(&cpix);
    assert!(keys.len() >= 3, "{keys:?}");
    play_drm(&out, "master.m3u8", &["hlsjs"], 2, &keys, "license");
}

/// The key IDs and keys (hex) of a CPIX file's content keys.
fn keys_of_cpix(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    text.split("<cpix:ContentKey ")
        .skip(1)
        .map(|k| {
            let kid = k.split("kid=\"").nth(1).unwrap().split('"').next().unwrap();
            let value = k
                .split("<pskc:PlainValue>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            (
                kid.replace('-', ""),
                hex::encode(b64.decode(value).unwrap()),
            )
        })
        .collect()
}

fn clearkey_args(keys: &[(String, String)], mode: &'static str) -> Vec<String> {
    let mut v = Vec::new();
    for (kid, key) in keys {
        v.push("--clearkey".to_string());
        v.push(format!("{kid}:{key}"));
    }
    v.push("--drm".into());
    v.push(mode.into());
    v
}

fn the_key() -> Vec<(String, String)> {
    vec![(KID.to_string(), KEY.to_string())]
}

fn play_drm(
    out: &Path,
    manifest: &str,
    players: &[&str],
    renditions: usize,
    keys: &[(String, String)],
    mode: &'static str,
) -> Vec<Value> {
    let args = clearkey_args(keys, mode);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let results = play_with(out, manifest, players, renditions, &args);
    for r in &results {
        // shaka-player on HLS fetches the raw key from the identity URI instead.
        let licensed =
            mode == "license" && !(manifest.ends_with(".m3u8") && r["player"] == "shaka");
        if licensed {
            assert!(
                r["licenses"].as_u64().unwrap() > 0,
                "{} never asked the licence server: {r}",
                r["player"]
            );
        }
    }
    results
}

#[test]
fn dash_players_play_cenc_and_cbcs_with_clearkey() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["cenc", "cbcs"] {
        let out = dir.path().join(format!("h264-{scheme}"));
        package(
            h264_renditions(),
            &out,
            &[
                "--encrypt",
                scheme,
                "--key",
                &key_arg(),
                "--segment-duration",
                "2",
            ],
        );
        // Keys handed to the player for one scheme, a licence server for the other.
        let mode = if scheme == "cenc" { "keys" } else { "license" };
        play_drm(
            &out,
            "manifest.mpd",
            &["shaka", "dashjs"],
            2,
            &the_key(),
            mode,
        );
    }
    for scheme in ["cenc", "cbcs"] {
        let out = dir.path().join(format!("av1-{scheme}"));
        package(
            av1_renditions(),
            &out,
            &["--encrypt", scheme, "--key", &key_arg(), "--single-file"],
        );
        let mode = if scheme == "cenc" { "license" } else { "keys" };
        play_drm(
            &out,
            "manifest.mpd",
            &["shaka", "dashjs"],
            2,
            &the_key(),
            mode,
        );
    }
}

/// HLS with ClearKey. `cenc` (SAMPLE-AES-CTR): one package plays in both players, shaka-player
/// through the `identity` key URI, hls.js through `org.w3.clearkey` and the licence server.
/// `cbcs` (SAMPLE-AES): hls.js 1.7 takes an `identity` SAMPLE-AES tag for MPEG-TS sample
/// encryption and fails on fMP4, so it gets the package without `--hls-key-uri`; shaka-player
/// needs the identity tag, so it gets the package with it.
#[test]
fn hls_players_play_cenc_and_cbcs_with_clearkey() {
    let dir = tempfile::tempdir().unwrap();
    let cenc = dir.path().join("cenc");
    package(
        h264_renditions(),
        &cenc,
        &[
            "--encrypt",
            "cenc",
            "--key",
            &key_arg(),
            "--hls-key-uri",
            "/keys/{kid}",
        ],
    );
    let r = play_drm(
        &cenc,
        "master.m3u8",
        &["shaka", "hlsjs"],
        2,
        &the_key(),
        "license",
    );
    assert!(r[0]["keyRequests"].as_u64().unwrap() > 0, "{}", r[0]);
    assert!(r[1]["licenses"].as_u64().unwrap() > 0, "{}", r[1]);

    let with_identity = dir.path().join("cbcs-identity");
    package(
        h264_renditions(),
        &with_identity,
        &[
            "--encrypt",
            "cbcs",
            "--key",
            &key_arg(),
            "--hls-key-uri",
            "/keys/{kid}",
        ],
    );
    let r = play_drm(
        &with_identity,
        "master.m3u8",
        &["shaka"],
        2,
        &the_key(),
        "license",
    );
    assert!(r[0]["keyRequests"].as_u64().unwrap() > 0, "{}", r[0]);
    let playlist = std::fs::read_to_string(with_identity.join("720p/playlist.m3u8")).unwrap();
    assert!(playlist.contains("METHOD=SAMPLE-AES,") && playlist.contains("KEYFORMAT=\"identity\""));

    let without = dir.path().join("cbcs");
    package(
        h264_renditions(),
        &without,
        &["--encrypt", "cbcs", "--key", &key_arg()],
    );
    play_drm(
        &without,
        "master.m3u8",
        &["hlsjs"],
        2,
        &the_key(),
        "license",
    );
}

/// Keys per track class from a generated CPIX file: audio, SD and HD get different keys; the
/// MPD signals each; players given all keys play across both video renditions.
#[test]
fn cpix_keys_per_track_class() {
    let dir = tempfile::tempdir().unwrap();
    let cpix = dir.path().join("keys.cpix");
    let printed = reel_ok(&["keys", "generate", "--out", cpix.to_str().unwrap()]);
    let keys = reel_drm::read_cpix(&cpix).unwrap();
    assert_eq!(keys.keys().len(), 4);
    for k in keys.keys() {
        assert!(printed.contains(&k.kid.to_string()), "{printed}");
        assert!(!printed.contains(&hex(k.key.expose())), "a key was printed");
    }
    let out = dir.path().join("pkg");
    package(
        h264_renditions(),
        &out,
        &["--encrypt", "cenc", "--cpix", cpix.to_str().unwrap()],
    );
    let mpd =
        dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap()).unwrap();
    let kid_of = |class| {
        keys.keys()
            .iter()
            .find(|k| k.class == class)
            .unwrap()
            .kid
            .to_string()
    };
    use reel_drm::TrackClass;
    let default_kid = |cps: &[dash_mpd_core::ContentProtection]| {
        cps.iter()
            .find_map(|c| c.default_KID.clone())
            .unwrap_or_default()
    };
    for set in &mpd.periods[0].adaptations {
        if set.contentType.as_deref() == Some("audio") {
            assert_eq!(
                default_kid(&set.ContentProtection),
                kid_of(TrackClass::Audio)
            );
        } else {
            // Two keys in one set: signalled per representation.
            for rep in &set.representations {
                let want = if rep.height == Some(720) {
                    kid_of(TrackClass::Hd)
                } else {
                    kid_of(TrackClass::Sd)
                };
                assert_eq!(default_kid(&rep.ContentProtection), want, "{:?}", rep.id);
            }
        }
    }
    let all: Vec<(String, String)> = keys
        .keys()
        .iter()
        .map(|k| (k.kid.hex(), hex(k.key.expose())))
        .collect();
    play_drm(&out, "manifest.mpd", &["shaka", "dashjs"], 2, &all, "keys");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every way a key could leak: raw bytes, hex (either case), base64 (standard and URL-safe).
fn key_forms() -> Vec<Vec<u8>> {
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&KEY[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    vec![
        raw,
        KEY.as_bytes().to_vec(),
        KEY.to_uppercase().into_bytes(),
        b64.trim_end_matches('=').as_bytes().to_vec(),
        b64url.into_bytes(),
    ]
}

fn assert_no_key(what: &str, data: &[u8]) {
    for form in key_forms() {
        assert!(
            !data.windows(form.len()).any(|w| w == form.as_slice()),
            "{what} contains the key ({})",
            String::from_utf8_lossy(&form)
        );
    }
}

#[test]
fn keys_never_appear_in_output_logs_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, extra) in [("cenc", "--single-file"), ("cbcs", "--segment-duration=2")] {
        let out = dir.path().join(scheme);
        let files = inputs(h264_renditions());
        let mut args = vec!["package"];
        args.extend(files.iter().map(String::as_str));
        let key = key_arg();
        // FairPlay is cbcs-only.
        let systems = if scheme == "cbcs" {
            "widevine,playready,clearkey,fairplay"
        } else {
            "widevine,playready,clearkey"
        };
        args.extend([
            "--out",
            out.to_str().unwrap(),
            "--encrypt",
            scheme,
            "--key",
            &key,
            "--drm",
            systems,
            "--license-url",
            "https://licence.example/clearkey",
            "--hls-key-uri",
            "https://keys.example/{kid}",
            extra,
        ]);
        let o = reel(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_no_key("stdout", &o.stdout);
        assert_no_key("stderr", &o.stderr);
        let mut n = 0;
        let mut stack = vec![out.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    assert_no_key(&p.display().to_string(), &std::fs::read(&p).unwrap());
                    n += 1;
                }
            }
        }
        assert!(n >= 6, "{n} files");
        // The signalling is all there.
        let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
        for want in [
            "urn:mpeg:dash:mp4protection:2011",
            "cenc:default_KID=\"8c8e1d6c-2a4b-4f6e-9d3a-7b5c1e2f3a4b\"",
            "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
            "<mspr:pro>",
            "<dashif:laurl",
            "https://licence.example/clearkey",
        ] {
            assert!(mpd.contains(want), "MPD lacks {want}");
        }
        let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
        assert!(master.contains("#EXT-X-SESSION-KEY:"), "{master}");
        if scheme == "cbcs" {
            assert!(master.contains("KEYFORMAT=\"com.apple.streamingkeydelivery\""));
            assert!(master.contains(&format!("URI=\"skd://{KID}\"")));
        }
    }
}

/// Fail closed: each bad request stops before anything is written, with a message that says
/// what is wrong and never shows a key.
#[test]
fn bad_keys_and_combinations_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let h264 = inputs(h264_renditions());
    let av1 = inputs(av1_renditions());
    let bad_cpix = dir.path().join("bad.cpix");
    std::fs::write(
        &bad_cpix,
        "<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\"></cpix:CPIX>",
    )
    .unwrap();
    let key2 = format!("{KID}:{}", KEY.replace('6', "7"));
    let cases: Vec<(Vec<String>, &[String], &str)> = vec![
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                format!("{KID}:{}z", &KEY[..31]),
            ],
            &h264,
            "not a hex digit",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                format!("{KID}:{}", &KEY[..20]),
            ],
            &h264,
            "expected 32 hex digits",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                format!("{KID}:"),
            ],
            &h264,
            "has no key",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                format!("audio={}", key_arg()),
                "--key".into(),
                format!("all={key2}"),
            ],
            &h264,
            "given twice",
        ),
        (
            vec!["--encrypt".into(), "cens".into(), "--key".into(), key_arg()],
            &h264,
            "unknown protection scheme",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                key_arg(),
                "--drm".into(),
                "fairplay".into(),
            ],
            &h264,
            "FairPlay needs the cbcs scheme",
        ),
        (
            vec![
                "--encrypt".into(),
                "cbcs".into(),
                "--key".into(),
                key_arg(),
                "--drm".into(),
                "fairplay".into(),
            ],
            &av1,
            "does not support Opus",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                format!("sd={}", key_arg()),
            ],
            &h264,
            "no key for track",
        ),
        (vec!["--key".into(), key_arg()], &h264, "without --encrypt"),
        (vec!["--encrypt".into(), "cenc".into()], &h264, "needs keys"),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--cpix".into(),
                bad_cpix.to_string_lossy().into_owned(),
            ],
            &h264,
            "bad.cpix",
        ),
        (
            vec![
                "--encrypt".into(),
                "cbcs".into(),
                "--key".into(),
                key_arg(),
                "--iv-size".into(),
                "16".into(),
            ],
            &h264,
            "constant IV",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                key_arg(),
                "--iv-size".into(),
                "12".into(),
            ],
            &h264,
            "cenc allows 8 or 16",
        ),
        (
            vec![
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                key_arg(),
                "--drm".into(),
                "marlin".into(),
            ],
            &h264,
            "unknown DRM system",
        ),
    ];
    for (i, (extra, files, want)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        let mut args: Vec<&str> = vec!["package"];
        args.extend(files.iter().map(String::as_str));
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra.iter().map(String::as_str));
        let o = reel(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "case {i} {extra:?}: {err}");
        assert!(err.contains(want), "case {i}: expected '{want}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_no_key(&format!("case {i} stderr"), err.as_bytes());
        assert!(
            !err.contains(&KEY[..20]),
            "case {i} shows part of the key: {err}"
        );
        assert!(!out.exists(), "case {i} left {} behind", out.display());
    }
}

/// The subsample maps of every sample, in decode order, from the `senc` boxes of a fragmented
/// file (`iv_size` bytes of IV per sample).
fn senc_subsamples(file: &Path, iv_size: usize) -> Vec<Vec<(u16, u32)>> {
    fn boxes(data: &[u8]) -> Vec<(&[u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8 && at + size <= data.len(), "bad box size");
            let kind: &[u8; 4] = data[at + 4..at + 8].try_into().unwrap();
            out.push((kind, &data[at + 8..at + size]));
            at += size;
        }
        out
    }
    let data = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    for (kind, moof) in boxes(&data) {
        if kind != b"moof" {
            continue;
        }
        for (kind, traf) in boxes(moof) {
            if kind != b"traf" {
                continue;
            }
            for (kind, senc) in boxes(traf) {
                if kind != b"senc" {
                    continue;
                }
                let flags = u32::from_be_bytes(senc[..4].try_into().unwrap()) & 0xff_ffff;
                let count = u32::from_be_bytes(senc[4..8].try_into().unwrap());
                let mut p = 8;
                for _ in 0..count {
                    p += iv_size;
                    let mut subs = Vec::new();
                    if flags & 2 != 0 {
                        let n = u16::from_be_bytes(senc[p..p + 2].try_into().unwrap());
                        p += 2;
                        for _ in 0..n {
                            let clear = u16::from_be_bytes(senc[p..p + 2].try_into().unwrap());
                            let prot = u32::from_be_bytes(senc[p + 2..p + 6].try_into().unwrap());
                            subs.push((clear, prot));
                            p += 6;
                        }
                    }
                    out.push(subs);
                }
            }
        }
    }
    out
}

/// Which bytes we leave clear is what Shaka Packager's own H.264 slice-header and AV1 parsers
/// decide: the subsample maps of every sample are equal, for `cenc` (block-aligned) and `cbcs`.
#[test]
fn subsample_maps_match_shaka_packager() {
    let dir = tempfile::tempdir().unwrap();
    // Besides our own renditions, AV1 from another encoder with 2x2 tiles (libaom through
    // ffmpeg), so that tile groups with several tiles and tile size fields are covered.
    let tiles = dir.path().join("aom_tiles.mp4");
    let src = fixture("mezz_720p25.mp4");
    let o = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            src.to_str().unwrap(),
            "-t",
            "2",
            "-an",
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-tile-columns",
            "1",
            "-tile-rows",
            "1",
            "-g",
            "25",
            "-b:v",
            "1M",
            tiles.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let inputs = [
        (h264_renditions().join("enc/720p.mp4"), "720p", 125),
        (av1_renditions().join("enc/360p.mp4"), "360p", 125),
        (tiles.clone(), "aom_tiles", 50),
    ];
    for (input, track, frames) in inputs {
        for scheme in ["cenc", "cbcs"] {
            let theirs = dir.path().join(format!("shaka-{track}-{scheme}.mp4"));
            shaka_encrypt(&input, "video", &theirs, scheme, &[]);
            let ours = dir.path().join(format!("ours-{track}-{scheme}"));
            reel_ok(&[
                "package",
                input.to_str().unwrap(),
                "--out",
                ours.to_str().unwrap(),
                "--single-file",
                "--encrypt",
                scheme,
                "--key",
                &key_arg(),
            ]);
            let iv = if scheme == "cenc" { 8 } else { 0 };
            let want = senc_subsamples(&theirs, iv);
            let got = senc_subsamples(&ours.join(format!("{track}.mp4")), iv);
            assert_eq!(got.len(), frames, "{track} {scheme}");
            assert_eq!(
                got, want,
                "{track} {scheme}: subsample maps differ from Shaka Packager's"
            );
        }
    }
}

/// `--generate-keys` makes fresh keys per class, writes them to the CPIX file for the licence
/// server, and protects the title with them.
#[test]
fn generated_keys_are_written_to_cpix_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let cpix = dir.path().join("title.cpix");
    let out = dir.path().join("pkg");
    let report = package(
        h264_renditions(),
        &out,
        &[
            "--encrypt",
            "cbcs",
            "--generate-keys",
            cpix.to_str().unwrap(),
            "--single-file",
        ],
    );
    assert_eq!(report["tracks"].as_array().unwrap().len(), 3);
    let keys = reel_drm::read_cpix(&cpix).unwrap();
    assert_eq!(keys.keys().len(), 4);
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let used: Vec<_> = keys
        .keys()
        .iter()
        .filter(|k| mpd.contains(&k.kid.to_string()))
        .map(|k| k.class)
        .collect();
    use reel_drm::TrackClass;
    assert_eq!(
        used,
        vec![TrackClass::Audio, TrackClass::Sd, TrackClass::Hd]
    );
    for k in keys.keys() {
        assert!(!mpd.contains(&hex(k.key.expose())));
    }
}
