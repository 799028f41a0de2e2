//! Derives the project's needs from its own source, so that no hand-kept list can drift:
//! elements created with `make("...")`, programs started with `Command::new("...")`,
//! `tool("...")` or `pg_command("...")`, the browser the player harness launches, and
//! everything `fixtures/make.sh --describe` says it runs.

use crate::launch;
use crate::need::{Kind, Need};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Folders holding the project's code (the check's own folder is left out: its tests hold
/// sample source text).
const CODE_DIRS: &[&str] = &["crates", "cli", "services", "tests"];

/// The one function allowed to call `gst::ElementFactory::make`: everything else goes
/// through it with a literal name, which is what makes the element list derivable.
const ELEMENT_FACTORY_HOME: &str = "crates/encoder/src/gst_util.rs";

#[derive(Debug, Default)]
pub struct Scan {
    pub needs: Vec<Need>,
    /// Source lines that name something this scan cannot see (a computed element name).
    pub problems: Vec<String>,
}

pub fn scan_tree(root: &Path) -> Result<Scan, String> {
    let mut scan = Scan::default();
    for dir in CODE_DIRS {
        for file in files_under(&root.join(dir))? {
            let rel = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "rs" && ext != "mjs" {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            if ext == "rs" {
                scan_rust(&rel, &text, &mut scan);
            } else {
                scan_script(&rel, &text, &mut scan);
            }
        }
    }
    scan_fixtures(root, &mut scan)?;
    Ok(scan)
}

/// Every regular file under `dir`, skipping build output and installed npm packages.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {}: {e}", d.display())),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == "node_modules" || name == "out" {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Rust: `make("x")` (elements), `Command::new("x")`, `tool("x", ...)` (programs),
/// `pg_command("x")` / `pg_bin("x")` (PostgreSQL's programs).
pub fn scan_rust(file: &str, text: &str, scan: &mut Scan) {
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{file}:{}", i + 1);
        if line.contains("ElementFactory::make") && file != ELEMENT_FACTORY_HOME {
            scan.problems.push(format!(
                "{origin}: creates an element with gst::ElementFactory::make; use gst_util::make with a literal name so that setup-check sees it"
            ));
        }
        for call in calls(line, "make") {
            match call {
                Some(name) => scan.needs.push(need(Kind::Element, name, &origin)),
                None if file.starts_with("crates/encoder/") => scan.problems.push(format!(
                    "{origin}: make(...) with a computed element name; setup-check can only see literal names"
                )),
                None => {}
            }
        }
        for (callee, kind) in [
            ("Command::new", Kind::Program),
            ("tool", Kind::Program),
            ("pg_command", Kind::PostgresProgram),
            ("pg_bin", Kind::PostgresProgram),
        ] {
            for name in calls(line, callee).into_iter().flatten() {
                scan.needs.push(need(kind, name, &origin));
            }
        }
    }
}

/// JavaScript harnesses: the browser they launch (`executablePath: '/usr/bin/chromium'`).
pub fn scan_script(file: &str, text: &str, scan: &mut Scan) {
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("executablePath:") else {
            continue;
        };
        let rest = line[at + "executablePath:".len()..].trim_start();
        if let Some(name) = quoted(rest) {
            scan.needs
                .push(need(Kind::Program, name, &format!("{file}:{}", i + 1)));
        }
    }
}

/// What `fixtures/make.sh --describe` says it runs: the programs, and every element of
/// each GStreamer pipeline.
fn scan_fixtures(root: &Path, scan: &mut Scan) -> Result<(), String> {
    let script = root.join("fixtures/make.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--describe")
        .output()
        .map_err(|e| format!("running {} --describe: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --describe failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_fixture_descriptions(&String::from_utf8_lossy(&out.stdout), scan);
    Ok(())
}

/// Lines of `FIXTURE <tab> PROGRAM <tab> ARGUMENTS`.
pub fn parse_fixture_descriptions(text: &str, scan: &mut Scan) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (Some(fixture), Some(program), Some(args)) = (parts.next(), parts.next(), parts.next())
        else {
            scan.problems.push(format!(
                "fixtures/make.sh --describe printed a line without FIXTURE, PROGRAM and ARGUMENTS: {line:?}"
            ));
            continue;
        };
        let origin = format!("fixtures/make.sh ({fixture})");
        scan.needs.push(need(Kind::Program, program, &origin));
        if program == "gst-launch-1.0" {
            for element in launch::elements(args) {
                scan.needs.push(need(Kind::Element, &element, &origin));
            }
        }
    }
}

fn need(kind: Kind, name: &str, origin: &str) -> Need {
    Need {
        kind,
        name: name.to_string(),
        origin: origin.to_string(),
        outside_debian: None,
    }
}

/// The first argument of each call of `callee` on `line`: `Some(literal)` when it is a
/// string literal, `None` when it is computed. A call is `callee(` not preceded by an
/// identifier character, `::` (another type's function) or `fn ` (the definition).
fn calls<'a>(line: &'a str, callee: &str) -> Vec<Option<&'a str>> {
    let pattern = format!("{callee}(");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = line[from..].find(&pattern) {
        let start = from + pos;
        from = start + pattern.len();
        let before = &line[..start];
        let joined = before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
            || (before.ends_with("::") && !callee.contains("::"))
            || before.trim_end().ends_with("fn");
        if joined {
            continue;
        }
        out.push(quoted(&line[from..]));
    }
    out
}

/// The string literal that `text` starts with (double or single quotes), if any.
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &text[1..];
    body.find(quote).map(|end| &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(scan: &Scan) -> Vec<(Kind, &str, &str)> {
        scan.needs
            .iter()
            .map(|n| (n.kind, n.name.as_str(), n.origin.as_str()))
            .collect()
    }

    #[test]
    fn rust_calls_with_literals() {
        let mut scan = Scan::default();
        let src = r#"
            let decode = make("uridecodebin3")?; let q = make("queue")?;
            fn make(factory: &str) -> Element { todo!() }
            let out = Command::new("ffprobe").arg("-v");
            let o = tool("ffmpeg", &["-i"]);
            let p = pg_command("initdb"); let q = self.make("not-ours");
            let c = Command::new(env!("CARGO_BIN_EXE_reel"));
        "#;
        scan_rust("crates/encoder/src/encode.rs", src, &mut scan);
        assert_eq!(
            names(&scan),
            [
                (
                    Kind::Element,
                    "uridecodebin3",
                    "crates/encoder/src/encode.rs:2"
                ),
                (Kind::Element, "queue", "crates/encoder/src/encode.rs:2"),
                (Kind::Program, "ffprobe", "crates/encoder/src/encode.rs:4"),
                (Kind::Program, "ffmpeg", "crates/encoder/src/encode.rs:5"),
                (
                    Kind::PostgresProgram,
                    "initdb",
                    "crates/encoder/src/encode.rs:6"
                ),
            ]
        );
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    }

    #[test]
    fn computed_element_names_and_stray_factories_are_problems() {
        let mut scan = Scan::default();
        scan_rust(
            "crates/encoder/src/raw.rs",
            "let e = make(if hq { \"x265enc\" } else { \"x264enc\" })?;\nlet f = gst::ElementFactory::make(\"tee\").build();",
            &mut scan,
        );
        assert_eq!(scan.problems.len(), 2, "{:?}", scan.problems);
        assert!(scan.problems[0].starts_with("crates/encoder/src/raw.rs:1:"));
        assert!(scan.problems[1].starts_with("crates/encoder/src/raw.rs:2:"));
    }

    #[test]
    fn player_browser() {
        let mut scan = Scan::default();
        scan_script(
            "tests/players/chromium.mjs",
            "  const b = await chromium.launch({\n    executablePath: '/usr/bin/chromium',\n",
            &mut scan,
        );
        assert_eq!(
            names(&scan),
            [(
                Kind::Program,
                "/usr/bin/chromium",
                "tests/players/chromium.mjs:2"
            )]
        );
    }

    #[test]
    fn fixture_descriptions() {
        let mut scan = Scan::default();
        parse_fixture_descriptions(
            "a.mp4\tgst-launch-1.0\tvideotestsrc ! timeoverlay font-desc=\"Sans 9\" ! x264enc ! mp4mux ! filesink location=@OUT@\nb.mp4\tffmpeg\ttestsrc2=s=64x64[v]\n",
            &mut scan,
        );
        let got: Vec<_> = names(&scan).into_iter().map(|(k, n, _)| (k, n)).collect();
        assert_eq!(
            got,
            [
                (Kind::Program, "gst-launch-1.0"),
                (Kind::Element, "videotestsrc"),
                (Kind::Element, "timeoverlay"),
                (Kind::Element, "x264enc"),
                (Kind::Element, "mp4mux"),
                (Kind::Element, "filesink"),
                (Kind::Program, "ffmpeg"),
            ]
        );
        assert_eq!(scan.needs[1].origin, "fixtures/make.sh (a.mp4)");
    }
}
