//! The services end to end: a title made by `reel run` (cenc, keys in CPIX), imported with
//! `reel serve import`, served by `reel serve`, and watched in headless Chromium through the
//! player page: sign up, sign in, browse, play to the end with keys from the licence server;
//! a second account whose plan does not allow the title is told so and gets no key. On
//! SQLite and on PostgreSQL.

mod common;
#[path = "../crates/publish/tests/support/listening.rs"]
mod listening;
#[path = "../services/tests/support/mod.rs"]
mod support;

use common::{fixture, node, reel};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const LADDER: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 720
bitrate = 1200
[[rung]]
codec = "h264"
height = 432
bitrate = 500
[audio]
codec = "aac"
bitrate = 96
"#;

/// Encodes, packages and publishes the fixture with `reel run`: (published folder, CPIX).
fn make_title(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("ladder.toml"), LADDER).unwrap();
    let job = format!(
        r#"
ladder = "ladder.toml"
work_dir = "work"
[title]
id = "testcard"
source = "{}"
name = "Test card"
[title.metadata]
genres = ["Documentary"]
year = 2026
maturity = "PG"
description = "An animated test pattern with a tone."
[packaging]
segment_duration = 2
[encryption]
scheme = "cenc"
keys = "generate"
keys_out = "keys.cpix"
drm = ["clearkey"]
[destination]
url = "file://published"
[[subtitles]]
path = "en.vtt"
language = "en"
[[subtitles]]
path = "fr.vtt"
language = "fr"
kind = "captions"
[[audio]]
path = "described.wav"
language = "en"
role = "description"
"#,
        fixture("mezz_720p25.mp4").display()
    );
    std::fs::write(dir.join("job.toml"), job).unwrap();
    common::tone_file(&dir.join("described.wav"), 880.0, 5);
    std::fs::write(
        dir.join("en.vtt"),
        "WEBVTT\n\n00:01.000 --> 00:02.000\nHello\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("fr.vtt"),
        "WEBVTT\n\n00:01.000 --> 00:02.000\n[Musique]\n",
    )
    .unwrap();
    let out = reel(&["run", dir.join("job.toml").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "reel run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("published"), dir.join("keys.cpix"))
}

const KEK: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
const SECRET: &str = "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a";

fn serve_command(data: &Path, database: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reel"));
    c.arg("serve").arg("--data").arg(data);
    if let Some(url) = database {
        c.args(["--database-url", url]);
    }
    c.env("REEL_KEK", KEK).env("REEL_TOKEN_SECRET", SECRET).env(
        "REEL_SHAKA",
        common::root()
            .join("tests/players/node_modules/shaka-player/dist/shaka-player.compiled.js"),
    );
    c
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `reel serve` on a port the system picks (read from what it prints), logging to `log`.
fn start(data: &Path, database: Option<&str>, log: &Path) -> Server {
    let said = log.with_extension("out");
    let mut child = serve_command(data, database)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::fs::File::create(&said).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    // What went wrong at start-up is in its log (standard error), not in what it prints.
    let port = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        listening::port_from_log(&mut child, &said, "Reel is serving on", "reel serve")
    }))
    .unwrap_or_else(|_| {
        let _ = child.kill();
        panic!(
            "reel serve did not start; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    Server(child, format!("http://127.0.0.1:{port}"))
}

/// Licence-audit rows (issued key IDs) and playback sessions of an account.
fn audit(data: &Path, database: Option<&str>, email: &str) -> (Vec<String>, i64) {
    let mut args = vec![
        "x".to_string(),
        "--data".into(),
        data.display().to_string(),
        "--kek".into(),
        KEK.into(),
        "--token-secret".into(),
        SECRET.into(),
    ];
    if let Some(url) = database {
        args.extend(["--database-url".into(), url.into()]);
    }
    let config = reel_services::Config::parse_from(args);
    let email = email.to_string();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let state = reel_services::AppState::open(&config).await.unwrap();
        let issued: Vec<(String,)> = sqlx::query_as(
            "SELECT l.issued FROM licence_audit l JOIN accounts a ON a.id = l.account_id WHERE a.email = $1",
        )
        .bind(&email)
        .fetch_all(&state.db)
        .await
        .unwrap();
        let sessions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM playback_sessions s JOIN accounts a ON a.id = s.account_id WHERE a.email = $1",
        )
        .bind(&email)
        .fetch_one(&state.db)
        .await
        .unwrap();
        (issued.into_iter().map(|r| r.0).collect(), sessions)
    })
}

fn watch(dir: &Path, published: &Path, cpix: &Path, database: Option<&str>, name: &str) {
    let data = dir.join(format!("data-{name}"));
    let import = serve_command(&data, database)
        .args([
            "import",
            published.to_str().unwrap(),
            "--keys",
            cpix.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let admin = serve_command(&data, database)
        .args([
            "account",
            "ops@example.com",
            "--role",
            "admin",
            "--plan",
            "premium",
        ])
        .env("REEL_PASSWORD", "an admin passphrase")
        .output()
        .unwrap();
    assert!(
        admin.status.success(),
        "account: {}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let log = dir.join(format!("serve-{name}.log"));
    let server = start(&data, database, &log);
    let (_, results, err) = node(
        "service.mjs",
        &[
            "--url",
            &server.1,
            "--title",
            "testcard",
            "--admin",
            "ops@example.com:an admin passphrase",
        ],
    );
    let r: &Value = results
        .first()
        .unwrap_or_else(|| panic!("no result from service.mjs: {err}"));
    eprintln!("{name}: {r}");
    assert!(
        r.get("failure").is_none(),
        "{name}: {r}\nserver log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let a = &r["a"];
    assert_eq!(a["browse"], serde_json::json!(["testcard"]), "{r}");
    assert_eq!(
        a["posterWidth"], 480,
        "the poster frame the pipeline made is shown: {r}"
    );
    assert_eq!(
        a["ended"], true,
        "{name}: account A did not play to the end: {r}"
    );
    assert_eq!(a["errors"], serde_json::json!([]), "{r}");
    assert!(
        a["stats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("p · ") && s.as_str().unwrap().contains("kb/s")),
        "the page shows resolution and bitrate: {r}"
    );
    // The page offers the title's subtitles (DASH text tracks) by name and language.
    assert_eq!(
        a["subtitles"],
        serde_json::json!([
            {"text": "Off", "lang": ""},
            {"text": "English", "lang": "en"},
            {"text": "French [captions]", "lang": "fr"}
        ]),
        "{r}"
    );
    // And its audio tracks by name, the main audio chosen (the fixture's is untagged).
    assert_eq!(
        a["audio"],
        serde_json::json!([
            {"text": "audio", "lang": "und", "selected": true},
            {"text": "English audio description", "lang": "en", "selected": false}
        ]),
        "{r}"
    );
    // Dragging the seek bar shows the tile of that time from the title's thumbnail sprite
    // (one 320-px tile every 5 s: 2 s is the first tile), through the origin.
    let preview = &a["preview"];
    assert_eq!(preview["shown"], true, "{r}");
    assert!(
        preview["image"]
            .as_str()
            .unwrap()
            .contains("/thumbnails/1.jpg"),
        "{r}"
    );
    assert_eq!(
        (&preview["position"], &preview["width"], &preview["start"]),
        (
            &serde_json::json!("0px 0px"),
            &serde_json::json!("320px"),
            &serde_json::json!("0")
        ),
        "{r}"
    );
    let b = &r["b"];
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("Mobile plan plays up to 360p"),
        "{r}"
    );
    assert_eq!(
        (b["playerShown"].as_bool(), b["licenceRequests"].as_i64()),
        (Some(false), Some(0)),
        "{r}"
    );

    // The server's own records: A's keys were issued once; B has no session and no key.
    let (issued, sessions) = audit(&data, database, "ann@example.com");
    assert_eq!(sessions, 1, "{issued:?}");
    // Every request the page made was answered with the session's three keys (audio, SD,
    // HD on the standard plan), so a switch between SD and HD renditions never waits for a
    // licence; shaka-player asks once per adaptation set's key ID it starts with.
    assert!(!issued.is_empty(), "no licence issued");
    assert_eq!(
        issued.len() as i64,
        a["licenceRequests"].as_i64().unwrap(),
        "{issued:?}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(published.join("title.json")).unwrap()).unwrap();
    let mut kids: Vec<String> = record["renditions"]
        .as_array()
        .unwrap()
        .iter()
        // Text tracks are never encrypted: every other rendition has a key.
        .filter(|r| r["kind"] != "text")
        .map(|r| r["key_id"].as_str().unwrap().replace('-', ""))
        .collect();
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), 3);
    for row in &issued {
        let mut got: Vec<&str> = row.split(',').collect();
        got.sort();
        assert_eq!(
            got,
            kids.iter().map(String::as_str).collect::<Vec<_>>(),
            "{issued:?}"
        );
    }
    let (issued_b, sessions_b) = audit(&data, database, "bob@example.com");
    assert_eq!((issued_b.len(), sessions_b), (0, 0));

    // Nothing secret in the server's log.
    let text = std::fs::read_to_string(&log).unwrap();
    let keys = reel_drm::read_cpix(cpix).unwrap();
    for k in keys.keys() {
        let raw = k.key.expose();
        assert!(!text.contains(&hex::encode(raw)), "a key in the log");
        use base64::Engine;
        assert!(
            !text.contains(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)),
            "a key in the log"
        );
    }
    assert!(!text.contains("$argon2"), "a password hash in the log");
    assert!(text.lines().all(|l| l.starts_with('{')), "JSON log lines");

    // Graceful shutdown on SIGTERM.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut server = server;
    let start = Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "reel serve exit: {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "reel serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn player_page_plays_the_title_through_the_licence_server_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (published, cpix) = make_title(dir.path());
    watch(dir.path(), &published, &cpix, None, "sqlite");
    let pg = support::Postgres::shared();
    let url = pg.database("reel_e2e");
    watch(dir.path(), &published, &cpix, Some(&url), "postgres");
}
