//! What this machine has: where a need's file is, and which Debian package owns it.

use crate::need::{Kind, Need};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file that satisfies `need` here, or why there is none.
pub fn locate(need: &Need) -> Result<PathBuf, String> {
    match need.kind {
        Kind::Element => element_plugin(&need.name),
        Kind::Program => program(&need.name),
        Kind::PostgresProgram => postgres_program(&need.name),
        Kind::PkgConfig => pkg_config_file(&need.name),
        Kind::File => {
            let p = PathBuf::from(&need.name);
            if p.exists() {
                Ok(p)
            } else {
                Err(format!("{} does not exist", p.display()))
            }
        }
    }
}

/// The plugin file that provides a GStreamer element (`gst-inspect-1.0`'s `Filename`).
fn element_plugin(name: &str) -> Result<PathBuf, String> {
    let out = Command::new("gst-inspect-1.0")
        .arg(name)
        .output()
        .map_err(|e| format!("running gst-inspect-1.0: {e}"))?;
    if !out.status.success() {
        return Err("no GStreamer plugin installed here provides it".into());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Filename"))
        .map(|rest| PathBuf::from(rest.trim()))
        .ok_or_else(|| "gst-inspect-1.0 names no plugin file for it".into())
}

fn program(name: &str) -> Result<PathBuf, String> {
    if name.starts_with('/') {
        let p = PathBuf::from(name);
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!("{name} does not exist"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| "not found on PATH".into())
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The newest installed PostgreSQL's copy of a server program (as the tests pick it).
fn postgres_program(name: &str) -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    let dir = versions
        .last()
        .ok_or("no PostgreSQL under /usr/lib/postgresql")?;
    let p = dir.join("bin").join(name);
    if is_executable(&p) {
        Ok(p)
    } else {
        Err(format!("{} does not exist", p.display()))
    }
}

fn pkg_config_file(module: &str) -> Result<PathBuf, String> {
    let out = Command::new("pkg-config")
        .args(["--variable=pcfiledir", module])
        .output()
        .map_err(|e| format!("running pkg-config: {e}"))?;
    if !out.status.success() {
        return Err("pkg-config does not know it".into());
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(Path::new(&dir).join(format!("{module}.pc")))
}

/// The names dpkg may have recorded for a file: as given, across the merged-/usr links
/// (`/lib` = `/usr/lib`, `/bin` = `/usr/bin`), and through symbolic links.
pub fn spellings(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(path) {
        out.push(real);
    }
    for p in out.clone() {
        let s = p.to_string_lossy();
        if let Some(rest) = s.strip_prefix("/usr/") {
            out.push(PathBuf::from(format!("/{rest}")));
        } else {
            out.push(PathBuf::from(format!("/usr{s}")));
        }
    }
    out.dedup();
    out
}

/// dpkg's owners of each file it knows among `paths` (one `dpkg-query -S` for all).
pub fn owners(paths: &BTreeSet<PathBuf>) -> Result<BTreeMap<PathBuf, Vec<String>>, String> {
    if paths.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("dpkg-query")
        .arg("-S")
        .args(paths)
        .output()
        .map_err(|e| format!("running dpkg-query -S: {e}"))?;
    Ok(parse_dpkg_search(&String::from_utf8_lossy(&out.stdout)))
}

/// `dpkg-query -S` lines: `pkg[:arch][, pkg...]: /path` (diversion lines skipped).
pub fn parse_dpkg_search(text: &str) -> BTreeMap<PathBuf, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("diversion ") {
            continue;
        }
        let Some((pkgs, path)) = line.split_once(": ") else {
            continue;
        };
        let names = pkgs
            .split(", ")
            .map(|p| p.split(':').next().unwrap_or(p).trim().to_string())
            .collect();
        out.insert(PathBuf::from(path.trim()), names);
    }
    out
}

/// Installed packages, the Essential ones, and what each installed package provides.
#[derive(Debug, Default)]
pub struct Installed {
    pub packages: BTreeSet<String>,
    pub essential: BTreeSet<String>,
    /// virtual name -> the installed package that provides it
    pub provided_by: BTreeMap<String, String>,
}

pub fn installed() -> Result<Installed, String> {
    let out = Command::new("dpkg-query")
        .args([
            "-W",
            "-f=${Package}\t${Status}\t${Essential}\t${Provides}\n",
        ])
        .output()
        .map_err(|e| format!("running dpkg-query -W: {e}"))?;
    Ok(parse_installed(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_installed(text: &str) -> Installed {
    let mut inst = Installed::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 || f[1] != "install ok installed" {
            continue;
        }
        inst.packages.insert(f[0].to_string());
        if f[2] == "yes" {
            inst.essential.insert(f[0].to_string());
        }
        for provided in f[3].split(',') {
            let virtual_name = provided.split_whitespace().next().unwrap_or("");
            if !virtual_name.is_empty() {
                inst.provided_by
                    .insert(virtual_name.to_string(), f[0].to_string());
            }
        }
    }
    inst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_search_lines() {
        let m = parse_dpkg_search(
            "pkgconf:amd64: /usr/bin/pkg-config\ndiversion by dash from: /bin/sh\nlibc6:amd64, libc6-dev:amd64: /usr/lib/x\n",
        );
        assert_eq!(m[Path::new("/usr/bin/pkg-config")], ["pkgconf"]);
        assert_eq!(m[Path::new("/usr/lib/x")], ["libc6", "libc6-dev"]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn installed_lines() {
        let inst = parse_installed(
            "coreutils\tinstall ok installed\tyes\t\nnodejs\tinstall ok installed\t\tnodejs-dev, npm (= 1)\nnpm\tdeinstall ok config-files\t\t\n",
        );
        assert!(inst.packages.contains("nodejs") && !inst.packages.contains("npm"));
        assert!(inst.essential.contains("coreutils") && !inst.essential.contains("nodejs"));
        assert_eq!(inst.provided_by["npm"], "nodejs");
    }

    #[test]
    fn merged_usr_spellings() {
        let s = spellings(Path::new(
            "/lib/x86_64-linux-gnu/gstreamer-1.0/libgstpango.so",
        ));
        assert!(s.contains(&PathBuf::from(
            "/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstpango.so"
        )));
    }
}
