//! End-to-end: scrubbing thumbnails. A 25-s title in 8-s chunks (so tiles come from several
//! units, past their lead-ins) gets a tile every 2 s in 3x2 sprites; shaka-player in Chromium
//! finds the right tile for a time through the DASH image set, the HLS image playlist and the
//! WebVTT track, and each tile is the source's frame at its time by ffmpeg's PSNR (the source
//! shows its frame number, so a neighbour scores clearly lower).

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
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "ladder = \"fixed\"\n[title]\nid = \"thumbs\"\nsource = \"src.mp4\"\n\
             [encode]\nchunk_duration = 8\n[packaging]\nsegment_duration = 2\n\
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
