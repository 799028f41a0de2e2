//! The two hand-kept lists: the `packages` array of `scripts/setup.sh` (what setup installs) and
//! `scripts/needs.txt` (what the project uses that no source line names).

use crate::need::{Kind, Need};

/// One line of the package list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageLine {
    pub name: String,
    /// `unless-command NAME`: installed only where no `NAME` command exists.
    pub unless_command: Option<String>,
    pub line: usize,
}

/// The `packages=( ... )` array of `scripts/setup.sh` (one package a line, comments allowed)
/// and its `unless_command=([PACKAGE]=COMMAND ...)` map.
pub fn parse_packages(setup: &str) -> Result<Vec<PackageLine>, String> {
    let lines: Vec<&str> = setup.lines().collect();
    let open = lines
        .iter()
        .position(|l| l.trim() == "packages=(")
        .ok_or("no `packages=(` line")?;
    let mut out: Vec<PackageLine> = Vec::new();
    let mut closed = false;
    for (i, raw) in lines.iter().enumerate().skip(open + 1) {
        let line = i + 1;
        let words: Vec<&str> = uncommented(raw).split_whitespace().collect();
        match words.as_slice() {
            [] => continue,
            [")"] => {
                closed = true;
                break;
            }
            [name] => {
                if !is_package_name(name) {
                    return Err(format!(
                        "line {line}: {name:?} is not a Debian package name"
                    ));
                }
                if out.iter().any(|p| p.name == *name) {
                    return Err(format!("line {line}: {name} is listed twice"));
                }
                out.push(PackageLine {
                    name: name.to_string(),
                    unless_command: None,
                    line,
                });
            }
            _ => {
                return Err(format!(
                    "line {line}: expected one package a line, found {raw:?}"
                ))
            }
        }
    }
    if !closed {
        return Err(format!("line {}: `packages=(` is never closed", open + 1));
    }
    for (package, command) in unless_command(setup) {
        match out.iter_mut().find(|p| p.name == package) {
            Some(p) => p.unless_command = Some(command),
            None => {
                return Err(format!(
                    "unless_command names {package}, which is not in packages"
                ))
            }
        }
    }
    Ok(out)
}

/// `declare -A unless_command=([npm]=npm)`: pairs of package and command.
fn unless_command(setup: &str) -> Vec<(String, String)> {
    let Some(line) = setup.lines().find(|l| l.contains("unless_command=(")) else {
        return Vec::new();
    };
    let inner = line
        .split_once("unless_command=(")
        .map(|(_, rest)| rest.split(')').next().unwrap_or(""))
        .unwrap_or("");
    inner
        .split_whitespace()
        .filter_map(|pair| {
            let (key, command) = pair.split_once('=')?;
            let package = key.strip_prefix('[')?.strip_suffix(']')?;
            Some((package.to_string(), command.to_string()))
        })
        .collect()
}

pub fn parse_needs(file: &str, text: &str) -> Result<Vec<Need>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let words: Vec<&str> = uncommented(raw).split_whitespace().collect();
        let origin = format!("{file}:{}", i + 1);
        let (kind, name, outside_debian) = match words.as_slice() {
            [] => continue,
            [kind, name] => (kind, name, None),
            ["program", name, "from", rest @ ..] if !rest.is_empty() => {
                (&"program", name, Some(rest.join(" ")))
            }
            _ => {
                return Err(format!(
                "{origin}: expected `KIND NAME  # why` or `program NAME from WHERE`, found {raw:?}"
            ))
            }
        };
        let kind = Kind::parse(kind).ok_or_else(|| {
            format!("{origin}: unknown kind {kind:?} (element, program, postgres-program, pkg-config, file)")
        })?;
        out.push(Need {
            kind,
            name: name.to_string(),
            origin,
            outside_debian,
        });
    }
    Ok(out)
}

fn uncommented(line: &str) -> &str {
    line.split('#').next().unwrap_or("").trim()
}

/// Debian policy 5.6.1: lower-case letters, digits, `+ - .`, at least two characters,
/// starting with an alphanumeric.
fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lines() {
        let setup = "set -e\n# x\npackages=(\n  # head\n\n  ffmpeg   # ffprobe\n  npm # why\n)\ndeclare -A unless_command=([npm]=npm)\n";
        let list = parse_packages(setup).unwrap();
        assert_eq!(
            list,
            [
                PackageLine {
                    name: "ffmpeg".into(),
                    unless_command: None,
                    line: 6
                },
                PackageLine {
                    name: "npm".into(),
                    unless_command: Some("npm".into()),
                    line: 7
                },
            ]
        );
    }

    #[test]
    fn bad_package_lines_are_refused_with_their_line() {
        for (text, says) in [
            ("packages=(\nffmpeg chromium\n)\n", "line 2: expected"),
            (
                "packages=(\nFoo\n)\n",
                "line 2: \"Foo\" is not a Debian package name",
            ),
            (
                "packages=(\nffmpeg\nffmpeg\n)\n",
                "line 3: ffmpeg is listed twice",
            ),
            (
                "packages=(\nffmpeg\n",
                "line 1: `packages=(` is never closed",
            ),
            ("nothing\n", "no `packages=(` line"),
            (
                "packages=(\nffmpeg\n)\nunless_command=([npm]=npm)\n",
                "unless_command names npm",
            ),
        ] {
            let err = parse_packages(text).unwrap_err();
            assert!(err.starts_with(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn need_lines() {
        let needs = parse_needs(
            "needs.txt",
            "element qtdemux  # MP4\nprogram s3s-fs from scripts/setup.sh (cargo install)\n",
        )
        .unwrap();
        assert_eq!(needs[0].kind, Kind::Element);
        assert_eq!(needs[0].origin, "needs.txt:1");
        assert_eq!(
            needs[1].outside_debian.as_deref(),
            Some("scripts/setup.sh (cargo install)")
        );
        assert!(parse_needs("n", "gadget x\n")
            .unwrap_err()
            .contains("unknown kind"));
        assert!(parse_needs("n", "element\n")
            .unwrap_err()
            .starts_with("n:1: expected"));
    }
}
