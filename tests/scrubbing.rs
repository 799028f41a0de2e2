//! End-to-end: scrubbing and fast forward.
//!
//! Thumbnails: a 25-s title in 8-s chunks (so tiles come from several
//! units, past their lead-ins) gets a tile every 2 s in 3x2 sprites; shaka-player in Chromium
//! finds the right tile for a time through the DASH image set, the HLS image playlist and the
//! WebVTT track, and each tile is the source's frame at its time by ffmpeg's PSNR (the source
//! shows its frame number, so a neighbour scores clearly lower).
//!
//! Trick play: an encrypted title with a trick-play track; shaka-player's `trickPlay` in
//! Chromium fetches that track's key frames on DASH and the I-frame playlist's byte ranges on
//! HLS, and runs ahead at several times the play rate.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Seconds between tiles, and the grid.
const INTERVAL: f64 = 2.0;
const COLUMNS: u64 = 3;
const ROWS: u64 = 2;
const FPS: u64 = 25;

fn job(dir: &Path, thumbnails: &str) -> std::path::PathBuf {
    job_of(dir, "", thumbnails)
}

/// A job on `dir/src.mp4` with `more` after the packaging settings and `thumbnails` in its
/// section.
fn job_of(dir: &Path, more: &str, thumbnails: &str) -> std::path::PathBuf {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "ladder = \"fixed\"\n[title]\nid = \"thumbs\"\nsource = \"src.mp4\"\n\
             [encode]\nchunk_duration = 8\n[packaging]\nsegment_duration = 2\n{more}\n\
             [thumbnails]\n{thumbnails}\n[destination]\nurl = \"file://out\"\n"
        ),
    )
    .unwrap();
    job
}

/// A 640x360 test card with a running frame counter and moving parts, and a tone.
fn source(dir: &Path) {
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=25")
        .args(["-f", "lavfi", "-i", "sine=frequency=440"])
        .args([
            "-t",
            "25",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ])
        .args(["-c:a", "aac"])
        .arg(dir.join("src.mp4"))
        .status()
        .expect("ffmpeg");
    assert!(made.success());
}

/// ffmpeg's PSNR of the tile at (`x`, `y`) of `sprite` against the source's frame `frame`
/// scaled to the tile's size.
fn tile_psnr(sprite: &Path, x: u64, y: u64, source: &Path, frame: u64) -> f64 {
    psnr_with(
        sprite,
        source,
        &format!(
            "[0:v]crop=320:180:{x}:{y},format=yuv420p[d];\
             [1:v]select=eq(n\\,{frame}),setpts=PTS-STARTPTS,scale=320:180:flags=lanczos,format=yuv420p[r];\
             [d][r]psnr"
        ),
    )
}

#[test]
fn tiles_are_the_sources_frames_and_every_player_form_finds_them() {
    let dir = tempfile::tempdir().unwrap();
    source(dir.path());
    let job = job(
        dir.path(),
        &format!("interval = {INTERVAL}\ncolumns = {COLUMNS}\nrows = {ROWS}"),
    );
    reel_ok(&["run", job.to_str().unwrap()]);
    let out = dir.path().join("out");

    // 13 tiles (0, 2, ..., 24 s) in sprites of 6: two full, one with a tile.
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("title.json")).unwrap()).unwrap();
    let t = &record["thumbnails"];
    assert_eq!(
        (t["tiles"].as_u64(), t["sprites"].as_u64()),
        (Some(13), Some(3)),
        "{t}"
    );
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(320), Some(180))
    );
    let sprite = ffprobe_stream(&out.join("thumbnails/1.jpg"));
    assert_eq!(
        (num(&sprite, "width"), num(&sprite, "height")),
        (960.0, 360.0)
    );
    assert_eq!(sprite["codec_name"], "mjpeg");

    // The manifests as their own parsers read them.
    let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
        .expect("MPD parses");
    let image = mpd.periods[0]
        .adaptations
        .iter()
        .find(|a| a.contentType.as_deref() == Some("image"))
        .expect("an image AdaptationSet");
    assert_eq!(image.mimeType.as_deref(), Some("image/jpeg"));
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(
        master.contains("#EXT-X-IMAGE-STREAM-INF:") && master.contains("thumbnails/images.m3u8"),
        "{master}"
    );

    // shaka-player: the tile for a time, by each form.
    let times = [0.5, 7.0, 13.9, 22.1, 24.5];
    let mut args = vec!["--root", out.to_str().unwrap()];
    args.extend(["--manifest", "manifest.mpd", "--manifest", "master.m3u8"]);
    args.extend(["--vtt", "thumbnails/thumbnails.vtt"]);
    let at: Vec<String> = times.iter().map(|t| t.to_string()).collect();
    for a in &at {
        args.extend(["--at", a.as_str()]);
    }
    let (ok, results, err) = node("thumbnails.mjs", &args);
    assert!(
        ok && results.len() == 3,
        "thumbnails harness: {results:?} {err}"
    );
    for r in &results {
        assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
        for (got, &time) in r["thumbnails"].as_array().unwrap().iter().zip(&times) {
            let tile = (time / INTERVAL).floor() as u64;
            let in_sprite = tile % (COLUMNS * ROWS);
            let sprite = tile / (COLUMNS * ROWS) + 1;
            let uri = got["uri"].as_str().unwrap_or_default();
            assert!(
                uri.contains(&format!("thumbnails/{sprite}.jpg")),
                "{} at {time}: {got}",
                r["source"]
            );
            assert_eq!(
                (num(got, "positionX"), num(got, "positionY")),
                (
                    ((in_sprite % COLUMNS) * 320) as f64,
                    ((in_sprite / COLUMNS) * 180) as f64
                ),
                "{} at {time}: {got}",
                r["source"]
            );
            assert_eq!(num(got, "startTime"), tile as f64 * INTERVAL, "{got}");
            assert_eq!((num(got, "width"), num(got, "height")), (320.0, 180.0));
        }
    }

    // Each probed tile is its time's frame: closer to it than to the frames either side
    // (the counter and the moving parts differ), and close in absolute terms.
    let src = dir.path().join("src.mp4");
    for got in results[0]["thumbnails"].as_array().unwrap() {
        let uri = got["uri"].as_str().unwrap();
        let file = out.join("thumbnails").join(uri.rsplit('/').next().unwrap());
        let (x, y) = (num(got, "positionX") as u64, num(got, "positionY") as u64);
        let frame = num(got, "startTime") as u64 * FPS;
        let own = tile_psnr(&file, x, y, &src, frame);
        let after = tile_psnr(&file, x, y, &src, frame + 1);
        assert!(own >= 30.0, "tile at {} s: {own:.1} dB", got["startTime"]);
        assert!(
            own > after + 1.0,
            "tile at {} s: {own:.1} dB, the next frame {after:.1} dB",
            got["startTime"]
        );
        if frame > 0 {
            let before = tile_psnr(&file, x, y, &src, frame - 1);
            assert!(own > before + 1.0, "{own:.1} vs {before:.1} before");
        }
    }

    // Done: a second run changes nothing and keeps them.
    reel_ok(&["run", job.to_str().unwrap()]);
    assert!(out.join("thumbnails/3.jpg").is_file());
}

#[test]
fn a_job_without_thumbnails_lists_none() {
    let dir = tempfile::tempdir().unwrap();
    source(dir.path());
    let job = job(dir.path(), "enabled = false");
    reel_ok(&["run", job.to_str().unwrap()]);
    let out = dir.path().join("out");
    assert!(!out.join("thumbnails").exists());
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    assert!(!mpd.contains("image/jpeg"), "{mpd}");
    let master = std::fs::read_to_string(out.join("master.m3u8")).unwrap();
    assert!(!master.contains("IMAGE-STREAM"), "{master}");
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("title.json")).unwrap()).unwrap();
    assert!(record.get("thumbnails").is_none(), "{record}");

    // Settings a JPEG cannot hold are refused before anything runs.
    let bad = job_with(dir.path(), "columns = 30\nwidth = 1920");
    let o = reel(&["run", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("thumbnails"), "{err}");
}

fn job_with(dir: &Path, thumbnails: &str) -> std::path::PathBuf {
    let sub = dir.join("bad");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(dir.join("src.mp4"), sub.join("src.mp4")).unwrap();
    job(&sub, thumbnails)
}

#[test]
fn fast_forward_plays_key_frames_only_in_dash_and_hls() {
    let dir = tempfile::tempdir().unwrap();
    source(dir.path());
    let job = job_of(
        dir.path(),
        "trick_play = true\n[encryption]\nscheme = \"cenc\"\nkeys = \"generate\"\n\
         keys_out = \"keys.cpix\"",
        "",
    );
    reel_ok(&["run", job.to_str().unwrap()]);
    let out = dir.path().join("out");

    // The trick track comes from the smallest rendition, under the same key.
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("title.json")).unwrap()).unwrap();
    let renditions = record["renditions"].as_array().unwrap();
    let trick = renditions
        .iter()
        .find(|r| r.get("trick_play_of").is_some())
        .expect("a trick-play rendition");
    let of = trick["trick_play_of"].as_str().unwrap();
    let source = renditions.iter().find(|r| r["name"] == of).unwrap();
    let smallest = renditions
        .iter()
        .filter(|r| r["kind"] == "video" && r.get("trick_play_of").is_none())
        .min_by_key(|r| r["height"].as_u64())
        .unwrap();
    assert_eq!(source["name"], smallest["name"]);
    assert_eq!(trick["key_id"], source["key_id"]);
    assert_eq!(trick["height"], source["height"]);

    // DASH: a trick-mode set naming the video set, protected like it.
    let mpd = dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap())
        .expect("MPD parses");
    let sets = &mpd.periods[0].adaptations;
    let trick_set = sets
        .iter()
        .find(|s| {
            s.essential_property
                .iter()
                .any(|p| p.schemeIdUri == "http://dashif.org/guidelines/trickmode")
        })
        .expect("a trick-mode AdaptationSet");
    let main = trick_set.essential_property[0].value.clone();
    let video_set = sets
        .iter()
        .find(|s| s.id == main)
        .expect("the set it names");
    assert_eq!(video_set.contentType.as_deref(), Some("video"));
    assert!(!trick_set.ContentProtection.is_empty());
    assert_eq!(trick_set.representations[0].codingDependency, Some(false));

    // shaka-player fast forward at 4x: key frames only, ahead of the play rate. DASH on the
    // encrypted title (keys handed to the player); HLS on the same title in the clear (shaka
    // plays HLS ClearKey only through an `identity` key URI and a key server, which
    // tests/drm.rs covers).
    let cpix = dir.path().join("keys.cpix");
    let keys = reel_drm::read_cpix(&cpix).unwrap();
    let mut dash: Vec<String> = [
        "--root",
        out.to_str().unwrap(),
        "--manifest",
        "manifest.mpd",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in keys.keys() {
        let key: String = k.key.expose().iter().map(|b| format!("{b:02x}")).collect();
        dash.extend(["--clearkey".to_string(), format!("{}:{key}", k.kid.hex())]);
    }
    let clear = dir.path().join("clear");
    std::fs::create_dir_all(&clear).unwrap();
    std::fs::copy(dir.path().join("src.mp4"), clear.join("src.mp4")).unwrap();
    let clear_job = job_of(&clear, "trick_play = true", "enabled = false");
    reel_ok(&["run", clear_job.to_str().unwrap()]);
    let clear_out = clear.join("out");
    let hls = vec![
        "--root".to_string(),
        clear_out.display().to_string(),
        "--manifest".to_string(),
        "master.m3u8".to_string(),
    ];
    let mut results = Vec::new();
    for mut args in [dash, hls] {
        args.extend(["--rate".to_string(), "4".to_string()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, r, err) = node("trickplay.mjs", &a);
        assert!(ok && r.len() == 1, "trick-play harness: {r:?} {err}");
        results.extend(r);
    }
    for r in &results {
        assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
        let ahead = num(r, "after") - num(r, "before");
        assert!(
            ahead >= 8.0,
            "{}: {ahead:.1} s in 4 s at 4x: {r}",
            r["manifest"]
        );
        assert!(num(r, "frames") > 0.0, "{r}");
        let requests: Vec<&str> = r["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap())
            .collect();
        if r["manifest"] == "manifest.mpd" {
            let trick_dir = format!("/{}/", trick["name"].as_str().unwrap());
            assert!(
                requests
                    .iter()
                    .any(|q| q.starts_with(&trick_dir) && q.ends_with(".m4s")),
                "DASH fast forward fetched no trick-play segment: {requests:?}"
            );
        } else {
            assert!(
                requests.iter().any(|q| q.ends_with("iframes.m3u8")),
                "HLS fast forward read no I-frame playlist: {requests:?}"
            );
            assert!(
                requests.iter().any(|q| q.contains(" bytes=")),
                "HLS fast forward fetched no key frame by range: {requests:?}"
            );
        }
    }
}
