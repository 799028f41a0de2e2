//! (Advanced) SubStation Alpha: `.ass` and `.ssa` files, and the ASS tracks of Matroska files.
//! A file's `[Events]` section names its fields in a `Format:` line; each `Dialogue:` line is
//! a cue. A dialogue's text becomes WebVTT cue text: `{\i1}`...`{\i0}`, `\b` and `\u` as
//! `<i>`, `<b>`, `<u>`; `{\anN}` (ASS) and `{\aN}` (SSA) as `line`/`align` settings; `\N`
//! and `\n` as line breaks, `\h` as a space; every other override tag is dropped with one
//! warning per file (colours, fonts, positions and motion are not carried). Styles of the
//! `[V4+ Styles]` section are not read.

use crate::srt::an_settings;
use crate::webvtt::clip;
use crate::{escape, Cue, Millis, Result, Subtitles, TextError};

/// Reads the `Dialogue:` lines of the `[Events]` section.
pub(crate) fn parse(lines: &[&str], subs: &mut Subtitles) -> Result<()> {
    let path = subs.path.clone();
    let syntax = |line: usize, problem: String| TextError::Syntax {
        path: path.clone(),
        line,
        problem,
    };
    let events = lines
        .iter()
        .position(|l| l.trim().eq_ignore_ascii_case("[events]"))
        .ok_or_else(|| syntax(1, "no [Events] section".into()))?;
    let mut fields: Option<Fields> = None;
    let mut dropped_warned = false;
    for (i, raw) in lines.iter().enumerate().skip(events + 1) {
        let line = i + 1;
        let raw = raw.trim_start();
        if raw.starts_with('[') {
            break; // the next section
        }
        let Some((key, value)) = raw.split_once(':') else {
            continue;
        };
        match key.trim() {
            "Format" => fields = Some(Fields::of(value).map_err(|p| syntax(line, p))?),
            "Dialogue" => {
                let f = fields
                    .as_ref()
                    .ok_or_else(|| syntax(line, "a Dialogue line before the Format line".into()))?;
                let parts: Vec<&str> = value.trim_start().splitn(f.count, ',').collect();
                if parts.len() < f.count {
                    return Err(syntax(
                        line,
                        format!(
                            "expected {} comma-separated fields as the Format line says, found \
                             {}: `{}`",
                            f.count,
                            parts.len(),
                            clip(raw)
                        ),
                    ));
                }
                let time = |k: usize| timestamp(parts[k].trim()).map_err(|p| syntax(line, p));
                let (start, end) = (time(f.start)?, time(f.end)?);
                let (text, settings, dropped) = dialogue_text(parts[f.text]);
                if dropped && !dropped_warned {
                    subs.warn(
                        line,
                        "ASS override tags other than \\i, \\b, \\u and \\an are not carried \
                         (colours, fonts, positions; this and later cues)",
                    );
                    dropped_warned = true;
                }
                if text.trim().is_empty() {
                    subs.warn(line, "a Dialogue without text is not a cue");
                    continue;
                }
                if end <= start {
                    subs.warn(line, "a Dialogue that ends as it begins is not a cue");
                    continue;
                }
                subs.cues.push(Cue {
                    id: String::new(),
                    start,
                    end,
                    settings: settings.unwrap_or_default(),
                    text,
                    line,
                });
            }
            _ => {} // Comment:, Picture:, Sound:, Movie:, Command:
        }
    }
    if fields.is_none() {
        return Err(syntax(events + 1, "[Events] has no Format line".into()));
    }
    Ok(())
}

/// Where the fields a cue needs are in a Dialogue line, from the `Format:` line.
struct Fields {
    count: usize,
    start: usize,
    end: usize,
    text: usize,
}

impl Fields {
    fn of(format: &str) -> std::result::Result<Fields, String> {
        let names: Vec<String> = format
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        let at = |name: &str| {
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("the Format line has no {name} field"))
        };
        let text = at("text")?;
        if text + 1 != names.len() {
            return Err("the Format line's last field must be Text".into());
        }
        Ok(Fields {
            count: names.len(),
            start: at("start")?,
            end: at("end")?,
            text,
        })
    }
}

/// `H:MM:SS.CC` (centiseconds; any number of hour digits) in milliseconds.
fn timestamp(text: &str) -> std::result::Result<Millis, String> {
    let bad = || format!("`{text}` is not an ASS time (H:MM:SS.CC)");
    let (hms, fraction) = text.split_once('.').ok_or_else(bad)?;
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, s] = parts[..] else {
        return Err(bad());
    };
    let number = |t: &str| -> std::result::Result<u64, String> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    if m > 59 || s > 59 || fraction.is_empty() || fraction.len() > 3 {
        return Err(bad());
    }
    // Centiseconds as ASS writes them; milliseconds when a writer gives three digits.
    let ms = number(fraction)? * 10u64.pow(3 - fraction.len() as u32);
    Ok(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// The Text field of a Matroska ASS block (`ReadOrder,Layer,Style,Name,MarginL,MarginR,
/// MarginV,Effect,Text`, Matroska's codec mapping for `S_TEXT/ASS`): everything after the
/// eighth comma. A block with fewer fields is taken whole.
pub(crate) fn block_text(block: &str) -> &str {
    block.splitn(9, ',').nth(8).unwrap_or(block)
}

/// A dialogue's text as WebVTT cue text; the settings of an alignment tag in it; whether
/// other override tags were dropped. Open `<i>`, `<b>`, `<u>` are closed at its end.
pub(crate) fn dialogue_text(raw: &str) -> (String, Option<String>, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut settings = None;
    let mut dropped = false;
    let mut open: Vec<char> = Vec::new();
    let mut rest = raw.trim_end_matches(['\r', '\n']);
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            if let Some(close) = rest.find('}') {
                for tag in rest[1..close].split('\\').filter(|t| !t.is_empty()) {
                    match override_tag(tag) {
                        Some(Override::Style(name, on)) => {
                            let is_open = open.contains(&name);
                            if on && !is_open {
                                out.push_str(&format!("<{name}>"));
                                open.push(name);
                            } else if !on && is_open {
                                out.push_str(&format!("</{name}>"));
                                open.retain(|&n| n != name);
                            }
                        }
                        Some(Override::Align(n)) => settings = an_settings(n),
                        None => dropped = true,
                    }
                }
                rest = &rest[close + 1..];
                continue;
            }
        }
        if c == '\\' {
            match rest.as_bytes().get(1) {
                Some(b'N') | Some(b'n') => {
                    out.push('\n');
                    rest = &rest[2..];
                    continue;
                }
                Some(b'h') => {
                    out.push(' ');
                    rest = &rest[2..];
                    continue;
                }
                _ => {}
            }
        }
        out.push_str(&escape(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    while let Some(name) = open.pop() {
        out.push_str(&format!("</{name}>"));
    }
    let text = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (text, settings, dropped)
}

/// An override tag Reel carries.
enum Override {
    /// `i`, `b` or `u`, on or off.
    Style(char, bool),
    /// Numpad alignment (ASS `\an`; SSA's `\a` mapped to it).
    Align(u8),
}

fn override_tag(tag: &str) -> Option<Override> {
    if let Some(n) = tag.strip_prefix("an").and_then(|n| n.parse::<u8>().ok()) {
        return Some(Override::Align(n));
    }
    if let Some(n) = tag.strip_prefix('a').and_then(|n| n.parse::<u8>().ok()) {
        // SSA: 1-3 bottom, 5-7 top, 9-11 middle (left, centre, right).
        let an = match n {
            1..=3 => n,
            5..=7 => n + 2,
            9..=11 => n - 5,
            _ => return None,
        };
        return Some(Override::Align(an));
    }
    let name = tag.chars().next()?;
    if !matches!(name, 'i' | 'b' | 'u') {
        return None;
    }
    // `\i1` on, `\i0` or a bare `\i` (back to the style) off; `\b700` is a weight: bold.
    match tag[1..].parse::<u32>() {
        Ok(v) => Some(Override::Style(name, v != 0)),
        Err(_) if tag.len() == 1 => Some(Override::Style(name, false)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    const FILE: &str = "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n\
Format: Name, Fontname, Fontsize\nStyle: Default,Arial,20\n\n[Events]\n\
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,{\\i1}Hello{\\i0}, there\n\
Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,not shown\n\
Dialogue: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,{\\an8\\b1}Top{\\c&H00FF00&} line\\Nsecond, with a comma\n";

    #[test]
    fn dialogues_become_cues_with_the_styling_webvtt_carries() {
        let subs = parse("a.ass", FILE).unwrap();
        let cues: Vec<(u64, u64, &str, &str)> = subs
            .cues
            .iter()
            .map(|c| (c.start, c.end, c.text.as_str(), c.settings.as_str()))
            .collect();
        assert_eq!(
            cues,
            [
                (1000, 2500, "<i>Hello</i>, there", ""),
                (
                    3000,
                    4000,
                    "<b>Top line\nsecond, with a comma</b>",
                    "line:0"
                ),
            ]
        );
        assert_eq!(subs.cues[1].line, 12);
        // The colour tag is dropped, once, with a warning naming the line.
        assert_eq!(subs.warnings.len(), 1, "{:?}", subs.warnings);
        assert!(subs.warnings[0].contains("line 12"), "{:?}", subs.warnings);
    }

    #[test]
    fn ssa_files_and_their_alignment() {
        let ssa = "[Events]\nFormat: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, \
                   Effect, Text\nDialogue: Marked=0,0:00:05.10,0:00:06.00,*Default,,0000,0000,\
                   0000,,{\\a6}Top & centre\n";
        let subs = parse("a.ssa", ssa).unwrap();
        assert_eq!(subs.cues[0].start, 5100);
        assert_eq!(subs.cues[0].settings, "line:0");
        assert_eq!(subs.cues[0].text, "Top &amp; centre");
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |text: &str, expected: &str| {
            let e = parse("bad.ass", text).unwrap_err().to_string();
            assert!(e.contains("bad.ass") && e.contains(expected), "{e}");
        };
        bad("[Script Info]\n", "no [Events] section");
        bad(
            "[Events]\nDialogue: 0,0:00:01.00,0:00:02.00,,,0,0,0,,x\n",
            "line 2: a Dialogue line before the Format line",
        );
        bad(
            "[Events]\nFormat: Start, End, Text\nDialogue: 0:00:01.00,1:2:3,x\n",
            "line 3: `1:2:3` is not an ASS time",
        );
        bad(
            "[Events]\nFormat: Start, Text, End\n",
            "last field must be Text",
        );
        bad(
            "[Events]\nFormat: Start, End, Style, Text\nDialogue: 0:00:01.00,0:00:02.00\n",
            "expected 4 comma-separated fields",
        );
    }

    #[test]
    fn matroska_blocks_carry_the_text_after_eight_fields() {
        assert_eq!(
            super::block_text("0,0,Default,,0,0,0,,{\\i1}Hi{\\i0}, you"),
            "{\\i1}Hi{\\i0}, you"
        );
        assert_eq!(
            super::dialogue_text("{\\i1}unclosed").0,
            "<i>unclosed</i>",
            "open tags are closed"
        );
    }
}
