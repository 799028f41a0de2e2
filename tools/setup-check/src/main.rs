//! `reel-setup-check`: run from the project root after `scripts/setup.sh` has installed its
//! packages. Derives what the project uses from its source (see `scan`), adds
//! `scripts/needs.txt`, finds each thing on this machine and the Debian package that owns
//! it, and holds the package list in `scripts/setup.sh` to the rules in `check`. Exit status 1, with
//! one line per problem naming the package, when a fresh Debian 12 machine would lack
//! something that this one happens to have.
//!
//! `--verbose` prints every need with its file and package.

mod check;
mod launch;
mod lists;
mod machine;
mod need;
mod scan;

use check::{Found, Resolved, NEEDS_FILE, PACKAGE_LIST};
use need::Need;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let verbose = std::env::args().any(|a| a == "--verbose" || a == "-v");
    match run(verbose) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("setup-check: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(verbose: bool) -> Result<bool, String> {
    let root = Path::new(".");
    let list = lists::parse_packages(&read(root, PACKAGE_LIST)?)
        .map_err(|e| format!("{PACKAGE_LIST}: {e}"))?;
    let scanned = scan::scan_tree(root)?;
    let mut needs = scanned.needs;
    needs.extend(lists::parse_needs(NEEDS_FILE, &read(root, NEEDS_FILE)?)?);
    let resolved = resolve(needs)?;
    let installed = machine::installed()?;
    let mut report = check::evaluate(&resolved, &list, &installed, command_exists);
    report.problems.extend(scanned.problems);

    if verbose {
        for r in &resolved {
            let found = match &r.found {
                Found::Missing(why) => format!("MISSING: {why}"),
                Found::Unowned(p) => format!("{} (no package)", p.display()),
                Found::Owned { path, owners } => {
                    format!("{} <- {}", path.display(), owners.join(", "))
                }
                Found::OutsideDebian(from) => format!("from {from}"),
            };
            println!(
                "{:<18} {:<28} {found}",
                r.need.kind.to_string(),
                r.need.name
            );
        }
    }
    for note in &report.notes {
        println!("setup-check: note: {note}");
    }
    for problem in &report.problems {
        eprintln!("setup-check: {problem}");
    }
    let count = |k: need::Kind| resolved.iter().filter(|r| r.need.kind == k).count();
    if report.problems.is_empty() {
        println!(
            "setup-check: {} elements, {} programs, {} other files: each from a package listed in {PACKAGE_LIST} (or an Essential one); each of its {} packages used",
            count(need::Kind::Element),
            count(need::Kind::Program) + count(need::Kind::PostgresProgram),
            count(need::Kind::PkgConfig) + count(need::Kind::File),
            list.len()
        );
    }
    Ok(report.problems.is_empty())
}

fn read(root: &Path, file: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(file))
        .map_err(|e| format!("reading {file} (run from the project root): {e}"))
}

/// One entry per thing needed (the first place that names it, and how many others do),
/// found on this machine with its owning package.
fn resolve(needs: Vec<Need>) -> Result<Vec<Resolved>, String> {
    let mut unique: BTreeMap<(need::Kind, String), (Need, usize)> = BTreeMap::new();
    for n in needs {
        unique
            .entry((n.kind, n.name.clone()))
            .and_modify(|(first, more)| {
                *more += 1;
                if first.outside_debian.is_none() {
                    first.outside_debian = n.outside_debian.clone();
                }
            })
            .or_insert((n, 0));
    }
    let located: Vec<(Need, usize, Result<std::path::PathBuf, String>)> = unique
        .into_values()
        .map(|(n, more)| {
            let place = match &n.outside_debian {
                Some(_) => Ok(Default::default()),
                None => machine::locate(&n),
            };
            (n, more, place)
        })
        .collect();
    let spellings: BTreeSet<_> = located
        .iter()
        .filter_map(|(_, _, p)| p.as_ref().ok())
        .filter(|p| !p.as_os_str().is_empty())
        .flat_map(|p| machine::spellings(p))
        .collect();
    let owners = machine::owners(&spellings)?;
    Ok(located
        .into_iter()
        .map(|(need, elsewhere, place)| {
            let found = match (&need.outside_debian, place) {
                (Some(from), _) => Found::OutsideDebian(from.clone()),
                (None, Err(why)) => Found::Missing(why),
                (None, Ok(path)) => {
                    match machine::spellings(&path).iter().find_map(|s| owners.get(s)) {
                        Some(o) => Found::Owned {
                            path,
                            owners: o.clone(),
                        },
                        None => Found::Unowned(path),
                    }
                }
            };
            Resolved {
                need,
                elsewhere,
                found,
            }
        })
        .collect())
}

fn command_exists(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}
