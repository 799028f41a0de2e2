//! The two rules, over what was found on the machine: every need is met by a listed (or
//! Essential) package, and every listed package meets a need.

use crate::lists::PackageLine;
use crate::machine::Installed;
use crate::need::Need;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the package list is (its `packages=(...)` array).
pub const PACKAGE_LIST: &str = "scripts/setup.sh";
pub const NEEDS_FILE: &str = "scripts/needs.txt";

/// What the machine says about one need.
#[derive(Clone, Debug)]
pub enum Found {
    Missing(String),
    /// A file that no package owns.
    Unowned(PathBuf),
    Owned {
        path: PathBuf,
        owners: Vec<String>,
    },
    /// Declared as coming from outside Debian (`program NAME from WHERE`): not checked here.
    OutsideDebian(String),
}

#[derive(Clone, Debug)]
pub struct Resolved {
    pub need: Need,
    /// How many other places name the same thing.
    pub elsewhere: usize,
    pub found: Found,
}

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// listed package -> how many needs it meets
    pub uses: BTreeMap<String, usize>,
}

pub fn evaluate(
    resolved: &[Resolved],
    list: &[PackageLine],
    installed: &Installed,
    command_exists: impl Fn(&str) -> bool,
) -> Report {
    let mut report = Report::default();
    for p in list {
        report.uses.insert(p.name.clone(), 0);
    }
    for r in resolved {
        let what = describe(r);
        match &r.found {
            Found::Missing(why) => report.problems.push(format!(
                "{what} is missing: {why}. Add the Debian package that ships it to the package list in {PACKAGE_LIST}."
            )),
            Found::Unowned(path) => report.problems.push(format!(
                "{what} is {}, which no Debian package owns: add the package that should provide it to the package list in {PACKAGE_LIST}, or say where it comes from with `program {} from WHERE` in {NEEDS_FILE}.",
                path.display(),
                r.need.name
            )),
            Found::OutsideDebian(_) => {}
            Found::Owned { path, owners } => {
                let listed: Vec<&String> = owners
                    .iter()
                    .filter(|o| report.uses.contains_key(o.as_str()))
                    .collect();
                for o in &listed {
                    *report.uses.get_mut(o.as_str()).unwrap() += 1;
                }
                if listed.is_empty() && !owners.iter().any(|o| installed.essential.contains(o)) {
                    report.problems.push(format!(
                        "{what} comes from the package {} ({}), which the package list in {PACKAGE_LIST} lacks: add it there.",
                        owners.join(" or "),
                        path.display()
                    ));
                }
            }
        }
    }
    for p in list {
        let used = report.uses[&p.name];
        if installed.packages.contains(&p.name) {
            if used == 0 {
                report.problems.push(format!(
                    "{PACKAGE_LIST}:{}: {}: nothing Reel uses belongs to this package; remove the line, or add what needs it to {NEEDS_FILE}.",
                    p.line, p.name
                ));
            }
            continue;
        }
        match &p.unless_command {
            Some(cmd) if command_exists(cmd) => report.notes.push(format!(
                "{} is not installed: the {cmd} command comes from {}",
                p.name,
                installed
                    .provided_by
                    .get(&p.name)
                    .map(String::as_str)
                    .unwrap_or("another package")
            )),
            _ => report.problems.push(format!(
                "{PACKAGE_LIST}:{}: {} is listed but not installed (run scripts/setup.sh).",
                p.line, p.name
            )),
        }
    }
    report
}

fn describe(r: &Resolved) -> String {
    let n = &r.need;
    match r.elsewhere {
        0 => n.to_string(),
        1 => format!("{} {} ({} and 1 more place)", n.kind, n.name, n.origin),
        more => format!(
            "{} {} ({} and {more} more places)",
            n.kind, n.name, n.origin
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::need::Kind;

    fn owned(kind: Kind, name: &str, owner: &str) -> Resolved {
        Resolved {
            need: Need {
                kind,
                name: name.into(),
                origin: "fixtures/make.sh (a.mp4)".into(),
                outside_debian: None,
            },
            elsewhere: 0,
            found: Found::Owned {
                path: format!("/usr/lib/{name}.so").into(),
                owners: vec![owner.into()],
            },
        }
    }

    fn listed(names: &[&str]) -> Vec<PackageLine> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| PackageLine {
                name: n.to_string(),
                unless_command: None,
                line: i + 1,
            })
            .collect()
    }

    fn machine(packages: &[&str], essential: &[&str]) -> Installed {
        Installed {
            packages: packages
                .iter()
                .chain(essential)
                .map(|s| s.to_string())
                .collect(),
            essential: essential.iter().map(|s| s.to_string()).collect(),
            provided_by: [("npm".to_string(), "nodejs".to_string())].into(),
        }
    }

    /// The whole point: an extra package on the machine cannot hide a missing line.
    #[test]
    fn an_installed_but_unlisted_package_fails_naming_it() {
        let needs = [
            owned(Kind::Element, "timeoverlay", "gstreamer1.0-x"),
            owned(Kind::Element, "x264enc", "gstreamer1.0-plugins-ugly"),
        ];
        let m = machine(&["gstreamer1.0-x", "gstreamer1.0-plugins-ugly"], &[]);
        let r = evaluate(&needs, &listed(&["gstreamer1.0-plugins-ugly"]), &m, |_| {
            true
        });
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(r.problems[0].contains("timeoverlay"), "{}", r.problems[0]);
        assert!(
            r.problems[0].contains("the package gstreamer1.0-x"),
            "{}",
            r.problems[0]
        );
    }

    #[test]
    fn removing_any_one_line_fails() {
        let needs = [
            owned(Kind::Element, "timeoverlay", "gstreamer1.0-x"),
            owned(Kind::Program, "ffmpeg", "ffmpeg"),
            owned(Kind::Program, "sh", "dash"),
        ];
        let all = ["gstreamer1.0-x", "ffmpeg"];
        let m = machine(&all, &["dash"]);
        assert!(evaluate(&needs, &listed(&all), &m, |_| true)
            .problems
            .is_empty());
        for drop in all {
            let rest: Vec<&str> = all.iter().copied().filter(|p| *p != drop).collect();
            let r = evaluate(&needs, &listed(&rest), &m, |_| true);
            assert!(
                r.problems.iter().any(|p| p.contains(drop)),
                "without {drop}: {:?}",
                r.problems
            );
        }
    }

    #[test]
    fn unused_lines_missing_things_and_unowned_files_fail() {
        let mut needs = vec![owned(Kind::Program, "ffmpeg", "ffmpeg")];
        needs.push(Resolved {
            found: Found::Missing("no GStreamer plugin installed here provides it".into()),
            ..owned(Kind::Element, "rav1enc", "")
        });
        needs.push(Resolved {
            found: Found::Unowned("/usr/local/bin/x".into()),
            ..owned(Kind::Program, "x", "")
        });
        let m = machine(&["ffmpeg", "wrk"], &[]);
        let r = evaluate(&needs, &listed(&["ffmpeg", "wrk"]), &m, |_| true);
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        assert!(r.problems[0].contains("element rav1enc (fixtures/make.sh (a.mp4)) is missing"));
        assert!(r.problems[1].contains("/usr/local/bin/x, which no Debian package owns"));
        assert!(r.problems[2].starts_with("scripts/setup.sh:2: wrk: nothing Reel uses"));
    }

    #[test]
    fn a_conditional_line_is_skipped_where_its_command_exists() {
        let needs = [owned(Kind::Program, "npm", "nodejs")];
        let m = machine(&["nodejs"], &[]);
        let mut list = listed(&["nodejs", "npm"]);
        list[1].unless_command = Some("npm".into());
        let r = evaluate(&needs, &list, &m, |c| c == "npm");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(
            r.notes,
            ["npm is not installed: the npm command comes from nodejs"]
        );
        let r = evaluate(&needs, &list, &m, |_| false);
        assert!(
            r.problems[0].contains("npm is listed but not installed"),
            "{:?}",
            r.problems
        );
    }
}
