//! Load benchmark on loopback: throughput and p50/p99 latency at fixed concurrency for
//! playback authorisation, licence issuance and segment serving, with Debian's nginx serving
//! the same segment files as the peer, in the same run. `wrk` (Debian) drives every case.
//!
//!   cargo bench -p reel-services --bench load            (needs: apt-get install wrk nginx-light)
//!   REEL_LOAD_SECONDS=10 REEL_LOAD_CONNECTIONS=32 ...    (defaults)
//!
//! The service runs in this process on SQLite (a file in a temporary folder, WAL) with its
//! normal JSON request log (to a file); nginx writes its access log too. Results go to
//! stdout and `target/bench-out/services-load.json`.

#[path = "../tests/support/mod.rs"]
mod support;

use reel_drm::TrackClass;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::free_port;

fn need(tool: &str) {
    if Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("error: `{tool}` is missing: apt-get install wrk nginx-light");
        std::process::exit(2);
    }
}

/// Runs wrk with a Lua script; returns (requests/s, p50 ms, p99 ms, non-2xx responses).
fn wrk(url: &str, script: &Path, seconds: u64, connections: u32) -> (f64, f64, f64, u64) {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("wrk printed no {label}: {text}"));
        let v = line.split_whitespace().nth(1).unwrap();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap());
        let n: f64 = num.parse().unwrap();
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            _ => panic!("unit {unit}"),
        }
    };
    let rps: f64 = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, ms("50%"), ms("99%"), non2xx)
}

fn lua_list(name: &str, items: &[String]) -> String {
    format!(
        "local {name} = {{{}}}\n",
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn main() {
    need("wrk");
    need("nginx");
    let seconds: u64 = std::env::var("REEL_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let connections: u32 = std::env::var("REEL_LOAD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    let published = support::publish_title(dir.path(), "bench", "PG", &["Documentary"], 2026);
    // Segments of a realistic size: 2 s of 1.5 Mbit/s video, 375 KiB each.
    let segment: Vec<u8> = (0..375 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for n in 1..=16 {
        std::fs::write(
            published.dir.join("720p").join(format!("{n}.m4s")),
            &segment,
        )
        .unwrap();
    }
    let port = free_port();
    let config = reel_services::Config::parse_from([
        "x",
        "--data",
        dir.path().join("data").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--kek",
        &"ab".repeat(32),
        "--token-secret",
        &"cd".repeat(32),
        // Setting up signs many accounts in from one address.
        "--signin-per-ip",
        "1000000",
        // The cases drive a few accounts at thousands of requests a second: the per-account
        // row limit (checked on every request all the same) must not be what is measured.
        "--writes-per-account",
        "4000000000",
    ]);
    let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::sync::Mutex::new(log))
        .with_env_filter("info,sqlx=warn")
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let accounts = 100;
    let (tokens, playback) = runtime.block_on(async {
        let state = reel_services::AppState::open(&config).await.unwrap();
        reel_services::catalog::import_title(
            &state,
            published.dir.to_str().unwrap(),
            Some((&published.cpix, "bench")),
        )
        .await
        .unwrap();
        let mut tokens = Vec::new();
        for i in 0..accounts {
            let email = format!("viewer{i}@example.com");
            reel_services::auth::create_account(
                &state,
                &email,
                "bench password",
                "viewer",
                "premium",
            )
            .await
            .unwrap();
            tokens.push(email);
        }
        let server = state.clone();
        tokio::spawn(async move { reel_services::serve(server).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        (tokens, state)
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = |method: &str, path: &str, bearer: Option<&str>, body: Value| -> Value {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-X",
            method,
            &format!("{base}{path}"),
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
        ]);
        if let Some(t) = bearer {
            c.args(["-H", &format!("authorization: Bearer {t}")]);
        }
        serde_json::from_slice(&c.output().unwrap().stdout).unwrap_or(Value::Null)
    };
    // Sign every account in.
    let mut access = Vec::new();
    for email in &tokens {
        let v = http(
            "POST",
            "/v1/auth/signin",
            None,
            json!({ "email": email, "password": "bench password" }),
        );
        access.push(
            v["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("sign-in: {v}"))
                .to_string(),
        );
    }
    let _ = playback;
    // Playback sessions for the licence and origin cases.
    let mut licence_paths = Vec::new();
    let mut origin_token = String::new();
    for (i, t) in access.iter().enumerate().take(50) {
        let g = http(
            "POST",
            "/v1/playback/bench",
            Some(t),
            json!({ "device": format!("setup-{i}") }),
        );
        licence_paths.push(
            g["licence"]
                .as_str()
                .unwrap_or_else(|| panic!("{g}"))
                .to_string(),
        );
        origin_token = g["dash"]
            .as_str()
            .unwrap()
            .trim_start_matches("/origin/")
            .split('/')
            .next()
            .unwrap()
            .to_string();
    }
    let kid = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            published
                .keys
                .for_track(TrackClass::Sd)
                .unwrap()
                .kid
                .as_bytes(),
        )
    };

    // nginx over the same title folder.
    let nginx_port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, format!(
        "daemon off; worker_processes 2; user root; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log {d}/nginx-access.log; sendfile on; tcp_nopush on; keepalive_requests 100000;\n\
           types {{ video/mp4 m4s mp4; }}\n\
           server {{ listen 127.0.0.1:{nginx_port}; root {root}; }} }}\n",
        d = dir.path().display(), root = published.dir.display())).unwrap();
    let mut nginx = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    std::thread::sleep(Duration::from_millis(300));

    let scripts = dir.path();
    std::fs::write(scripts.join("auth.lua"), format!(
        "{}local n = 0\nrequest = function()\n  n = n + 1\n  local i = (n % #tokens) + 1\n  return wrk.format('POST', '/v1/playback/bench', {{['authorization'] = 'Bearer ' .. tokens[i], ['content-type'] = 'application/json'}}, '{{\"device\":\"bench\"}}')\nend\n",
        lua_list("tokens", &access))).unwrap();
    std::fs::write(scripts.join("licence.lua"), format!(
        "{}local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format('POST', paths[(n % #paths) + 1], {{['content-type'] = 'application/json'}}, '{{\"kids\":[\"{kid}\"],\"type\":\"temporary\"}}')\nend\n",
        lua_list("paths", &licence_paths))).unwrap();
    let segs: Vec<String> = (1..=16).map(|n| format!("720p/{n}.m4s")).collect();
    // The same segments in turn, from the origin (token in the path) or from nginx.
    let seg_script = |prefix: &str| {
        format!(
        "{}local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format('GET', '{prefix}' .. segs[(n % #segs) + 1])\nend\n",
        lua_list("segs", &segs))
    };
    std::fs::write(
        scripts.join("reel-seg.lua"),
        seg_script(&format!("/origin/{origin_token}/")),
    )
    .unwrap();
    std::fs::write(scripts.join("nginx-seg.lua"), seg_script("/")).unwrap();

    let mut results = Vec::new();
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>8}",
        "case", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (case, url, script) in [
        ("playback authorisation", base.clone(), "auth.lua"),
        ("licence issuance", base.clone(), "licence.lua"),
        ("segment (reel origin)", base.clone(), "reel-seg.lua"),
        (
            "segment (nginx)",
            format!("http://127.0.0.1:{nginx_port}"),
            "nginx-seg.lua",
        ),
    ] {
        let (rps, p50, p99, errors) = wrk(&url, &scripts.join(script), seconds, connections);
        println!("{case:<28} {rps:>10.0} {p50:>9.2} {p99:>9.2} {errors:>8}");
        results.push(json!({ "case": case, "requests_per_second": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": errors }));
    }
    // `nginx -s stop` makes the master stop its workers too (a SIGKILL to the master left
    // them running, holding the port and this process's output open).
    let _ = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir.path())
        .args(["-s", "stop"])
        .status();
    let _ = nginx.wait();
    let ratio = results[2]["requests_per_second"].as_f64().unwrap()
        / results[3]["requests_per_second"].as_f64().unwrap();
    println!("segment serving: reel/nginx = {ratio:.2}x ({connections} connections, {seconds} s each, wrk -t2, SQLite)");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("services-load.json"), serde_json::to_vec_pretty(&json!({
        "connections": connections, "seconds": seconds, "database": "sqlite", "cases": results, "segment_ratio_vs_nginx": ratio,
    })).unwrap()).unwrap();
    runtime.shutdown_timeout(Duration::from_secs(1));
}
