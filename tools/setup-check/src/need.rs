//! What the project uses from the machine, and where the project says so.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A GStreamer element factory, found with `gst-inspect-1.0`.
    Element,
    /// A program on `PATH` (or an absolute path).
    Program,
    /// A PostgreSQL server program, found in `/usr/lib/postgresql/VERSION/bin`.
    PostgresProgram,
    /// A pkg-config module.
    PkgConfig,
    /// A file at an absolute path.
    File,
}

impl Kind {
    pub fn parse(word: &str) -> Option<Kind> {
        Some(match word {
            "element" => Kind::Element,
            "program" => Kind::Program,
            "postgres-program" => Kind::PostgresProgram,
            "pkg-config" => Kind::PkgConfig,
            "file" => Kind::File,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Element => "element",
            Kind::Program => "program",
            Kind::PostgresProgram => "PostgreSQL program",
            Kind::PkgConfig => "pkg-config module",
            Kind::File => "file",
        })
    }
}

/// One thing the project uses, and the place that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub kind: Kind,
    pub name: String,
    /// `path:line`, or `fixtures/make.sh (FIXTURE)`.
    pub origin: String,
    /// Where a program that Debian does not ship comes from (`from ...` in needs.txt).
    pub outside_debian: Option<String>,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.kind, self.name, self.origin)
    }
}
