//! The command line's form of a file given with a language: `LANGUAGE[,WHAT[,NAME]]=FILE`
//! (`--subtitles en,captions=en.srt`, `--audio "en,commentary,Director's commentary=c.m4a"`),
//! where WHAT is a text track's kind or an audio track's role.

use reel_text::Language;
use std::path::PathBuf;

/// A `LANGUAGE[,WHAT[,NAME]]=FILE` argument, read: the language checked against the registry
/// and the name by `reel_media::track_title`; WHAT is left to the caller.
pub(crate) struct TaggedFile<'a> {
    pub language: Language,
    /// The second field, trimmed; `None` when it is absent or empty.
    pub what: Option<&'a str>,
    pub name: Option<String>,
    pub path: PathBuf,
}

impl<'a> TaggedFile<'a> {
    /// Reads `text`; `form` says what was expected when there is no `=` (`LANGUAGE[,KIND[,
    /// NAME]]=FILE, e.g. en,captions=en.srt`). Errors quote `text`.
    pub(crate) fn parse(text: &'a str, form: &str) -> Result<TaggedFile<'a>, String> {
        let (head, path) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}': expected {form}"))?;
        let mut parts = head.splitn(3, ',');
        let language =
            Language::parse(parts.next().unwrap_or("").trim()).map_err(|e| e.to_string())?;
        let what = parts.next().map(str::trim).filter(|w| !w.is_empty());
        let name = parts
            .next()
            .filter(|n| !n.trim().is_empty())
            .map(reel_media::track_title)
            .transpose()
            .map_err(|e| format!("'{text}': {e}"))?;
        if path.is_empty() {
            return Err(format!("'{text}': no file after '='"));
        }
        Ok(TaggedFile {
            language,
            what,
            name,
            path: PathBuf::from(path),
        })
    }
}
