//! (Advanced) SubStation Alpha: `.ass` and `.ssa` files, and the ASS tracks of Matroska files.
//! A file's `[Events]` section names its fields in a `Format:` line; each `Dialogue:` line is
//! a cue. A dialogue's text becomes WebVTT cue text: `{\i1}`...`{\i0}`, `\b` and `\u` as
//! `<i>`, `<b>`, `<u>`; `{\anN}` (ASS) and `{\aN}` (SSA) as `line`/`align` settings; `\N`
//! and `\n` as line breaks, `\h` as a space; every other override tag is dropped with one
//! warning per file (colours, fonts, positions and motion are not carried). A dialogue starts
//! from its style (the `[V4+ Styles]` or SSA `[V4 Styles]` section, or a Matroska track's
//! header): its bold, italic, underline and alignment, which override tags then change (a bare
//! `\i` goes back to the style's).

use crate::srt::an_settings;
use crate::webvtt::clip;
use crate::{escape, Cue, Millis, Result, Subtitles, TextError};
use std::collections::HashMap;

/// What WebVTT carries of an ASS style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    pub bold: bool,
    pub italic: bool,
    pub underline: bool,
    /// Numpad alignment (1-3 bottom, 4-6 middle, 7-9 top; left, centre, right).
    pub alignment: u8,
}

impl Default for Style {
    /// libass's default: plain, bottom centre.
    fn default() -> Style {
        Style {
            bold: false,
            italic: false,
            underline: false,
            alignment: 2,
        }
    }
}

/// The styles of a script, by name; what a dialogue whose style is not there gets.
#[derive(Debug, Default)]
pub(crate) struct Styles {
    by_name: HashMap<String, Style>,
    /// Whether a dialogue named a style not among them yet (warned of once).
    missing_warned: bool,
}

impl Styles {
    /// The styles of the script's `[V4+ Styles]` (ASS) or `[V4 Styles]` (SSA) section, read
    /// as its `Format:` line names the fields (`Name`, `Bold`, `Italic`, `Underline`,
    /// `Alignment`; SSA has no `Underline` and its own alignment numbers). None without the
    /// section. A style line without a field the Format line names is an error naming it.
    pub(crate) fn read(lines: &[&str], subs: &mut Subtitles) -> Result<Styles> {
        let mut styles = Styles::default();
        let (at, ssa) = match (
            section(lines, "[v4+ styles]"),
            section(lines, "[v4 styles]"),
        ) {
            (Some(at), _) => (at, false),
            (None, Some(at)) => (at, true),
            (None, None) => return Ok(styles),
        };
        let path = subs.path.clone();
        let syntax = |line: usize, problem: String| TextError::Syntax {
            path: path.clone(),
            line,
            problem,
        };
        let mut names: Vec<String> = Vec::new();
        for Entry {
            line,
            raw,
            key,
            value,
        } in entries(lines, at)
        {
            match key {
                "Format" => names = format_names(value),
                "Style" => {
                    if names.is_empty() {
                        return Err(syntax(line, "a Style line before the Format line".into()));
                    }
                    let fields: Vec<&str> = value.split(',').map(str::trim).collect();
                    if fields.len() != names.len() {
                        return Err(syntax(
                            line,
                            format!(
                                "expected {} comma-separated fields as the Format line says, \
                                 found {}: `{}`",
                                names.len(),
                                fields.len(),
                                clip(raw)
                            ),
                        ));
                    }
                    let field =
                        |name: &str| names.iter().position(|n| n == name).map(|k| fields[k]);
                    // -1 is true in ASS; some writers put 1.
                    let flag = |name: &str| field(name).is_some_and(|v| v != "0" && !v.is_empty());
                    let alignment = match field("alignment").map(str::parse::<u8>) {
                        None => 2,
                        Some(Ok(n)) if ssa => ssa_alignment(n).unwrap_or(2),
                        Some(Ok(n)) if (1..=9).contains(&n) => n,
                        Some(_) => {
                            subs.warn(line, "an Alignment that is not 1 to 9 is taken as 2");
                            2
                        }
                    };
                    let name = field("name").unwrap_or("Default");
                    styles.by_name.insert(
                        style_key(name),
                        Style {
                            bold: flag("bold"),
                            italic: flag("italic"),
                            underline: flag("underline"),
                            alignment,
                        },
                    );
                }
                _ => {}
            }
        }
        Ok(styles)
    }

    /// The styles of a Matroska ASS track's header (its codec private data: the script
    /// without its events), as a file's are read.
    pub(crate) fn of_header(header: &str, subs: &mut Subtitles) -> Result<Styles> {
        let lines: Vec<&str> = header.lines().collect();
        Styles::read(&lines, subs)
    }

    /// The style of a dialogue at `line` that names `name` (SSA's leading `*` and case
    /// ignored, as renderers do), or `Default`'s when there is none of that name: warned of
    /// once, naming the line and the style.
    fn of_dialogue(&mut self, name: &str, line: usize, subs: &mut Subtitles) -> Style {
        let fallback = self.by_name.get("default").copied().unwrap_or_default();
        let key = style_key(name);
        if let Some(style) = self.by_name.get(&key) {
            return *style;
        }
        if !key.is_empty() && !self.missing_warned {
            subs.warn(
                line,
                format!(
                    "style `{}` is not among the script's styles: Default's is used (this and \
                     later cues)",
                    name.trim()
                ),
            );
            self.missing_warned = true;
        }
        fallback
    }
}

/// Where the section headed `header` (lower case, as `[events]`) begins, by line index.
fn section(lines: &[&str], header: &str) -> Option<usize> {
    lines
        .iter()
        .position(|l| l.trim().eq_ignore_ascii_case(header))
}

/// A `Key: value` line of a section.
struct Entry<'a> {
    /// 1-based.
    line: usize,
    /// The whole line, for messages.
    raw: &'a str,
    key: &'a str,
    value: &'a str,
}

/// The `Key: value` lines of the section whose header is at index `header`, up to the next
/// section; lines without a colon are passed over.
fn entries<'a>(lines: &'a [&'a str], header: usize) -> impl Iterator<Item = Entry<'a>> {
    lines
        .iter()
        .enumerate()
        .skip(header + 1)
        .map(|(i, raw)| (i + 1, raw.trim_start()))
        .take_while(|(_, raw)| !raw.starts_with('['))
        .filter_map(|(line, raw)| {
            let (key, value) = raw.split_once(':')?;
            Some(Entry {
                line,
                raw,
                key: key.trim(),
                value,
            })
        })
}

/// The field names of a `Format:` line, lower case.
fn format_names(format: &str) -> Vec<String> {
    format
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

fn style_key(name: &str) -> String {
    name.trim().trim_start_matches('*').to_ascii_lowercase()
}

/// SSA's alignment numbers (1-3 bottom, 5-7 top, 9-11 middle; left, centre, right) as numpad.
fn ssa_alignment(n: u8) -> Option<u8> {
    match n {
        1..=3 => Some(n),
        5..=7 => Some(n + 2),
        9..=11 => Some(n - 5),
        _ => None,
    }
}

/// Reads the `Dialogue:` lines of the `[Events]` section.
pub(crate) fn parse(lines: &[&str], subs: &mut Subtitles) -> Result<()> {
    let path = subs.path.clone();
    let syntax = |line: usize, problem: String| TextError::Syntax {
        path: path.clone(),
        line,
        problem,
    };
    let events =
        section(lines, "[events]").ok_or_else(|| syntax(1, "no [Events] section".into()))?;
    let mut styles = Styles::read(lines, subs)?;
    let mut fields: Option<Fields> = None;
    let mut dropped_warned = false;
    for Entry {
        line,
        raw,
        key,
        value,
    } in entries(lines, events)
    {
        match key {
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
                let style = styles.of_dialogue(f.style.map_or("", |k| parts[k]), line, subs);
                let (text, settings, dropped) = dialogue_text(parts[f.text], style);
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
                    settings,
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
    style: Option<usize>,
    text: usize,
}

impl Fields {
    fn of(format: &str) -> std::result::Result<Fields, String> {
        let names = format_names(format);
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
            style: at("style").ok(),
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

/// The Style and Text fields of a Matroska ASS block (`ReadOrder,Layer,Style,Name,MarginL,
/// MarginR,MarginV,Effect,Text`, Matroska's codec mapping for `S_TEXT/ASS`): the third field,
/// and everything after the eighth comma. A block with fewer fields is taken whole as text.
pub(crate) fn block_fields(block: &str) -> (&str, &str) {
    let fields: Vec<&str> = block.splitn(9, ',').collect();
    match fields[..] {
        [_, _, style, _, _, _, _, _, text] => (style, text),
        _ => ("", block),
    }
}

/// The cue text and settings of a Matroska ASS block (sample `line` of its track) in a track
/// whose header has `styles` (a style not among them is warned of as in files).
pub(crate) fn block_cue(
    block: &str,
    styles: &mut Styles,
    line: usize,
    subs: &mut Subtitles,
) -> (String, String) {
    let (name, raw) = block_fields(block);
    let style = styles.of_dialogue(name, line, subs);
    let (text, settings, _) = dialogue_text(raw, style);
    (text, settings)
}

/// A dialogue's text in `style` as WebVTT cue text; its settings (the style's alignment, or
/// an alignment tag's); whether other override tags were dropped. The style's bold, italic
/// and underline open the text; open `<i>`, `<b>`, `<u>` are closed at its end.
pub(crate) fn dialogue_text(raw: &str, style: Style) -> (String, String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut alignment = style.alignment;
    let mut dropped = false;
    let mut open: Vec<char> = Vec::new();
    let of_style = |name: char| match name {
        'b' => style.bold,
        'i' => style.italic,
        _ => style.underline,
    };
    for name in ['b', 'i', 'u'].into_iter().filter(|&n| of_style(n)) {
        out.push_str(&format!("<{name}>"));
        open.push(name);
    }
    let mut rest = raw.trim_end_matches(['\r', '\n']);
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            if let Some(close) = rest.find('}') {
                for tag in rest[1..close].split('\\').filter(|t| !t.is_empty()) {
                    match override_tag(tag) {
                        Some(Override::Style(name, on)) => {
                            let on = on.unwrap_or_else(|| of_style(name));
                            let is_open = open.contains(&name);
                            if on && !is_open {
                                out.push_str(&format!("<{name}>"));
                                open.push(name);
                            } else if !on && is_open {
                                out.push_str(&format!("</{name}>"));
                                open.retain(|&n| n != name);
                            }
                        }
                        Some(Override::Align(n)) => {
                            if (1..=9).contains(&n) {
                                alignment = n;
                            }
                        }
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
    (text, an_settings(alignment).unwrap_or_default(), dropped)
}

/// An override tag Reel carries.
enum Override {
    /// `i`, `b` or `u`: on, off, or (`None`) back to the style's.
    Style(char, Option<bool>),
    /// Numpad alignment (ASS `\an`; SSA's `\a` mapped to it).
    Align(u8),
}

fn override_tag(tag: &str) -> Option<Override> {
    if let Some(n) = tag.strip_prefix("an").and_then(|n| n.parse::<u8>().ok()) {
        return Some(Override::Align(n));
    }
    if let Some(n) = tag.strip_prefix('a').and_then(|n| n.parse::<u8>().ok()) {
        return ssa_alignment(n).map(Override::Align);
    }
    let name = tag.chars().next()?;
    if !matches!(name, 'i' | 'b' | 'u') {
        return None;
    }
    // `\i1` on, `\i0` off, a bare `\i` back to the style; `\b700` is a weight: bold.
    match tag[1..].parse::<u32>() {
        Ok(v) => Some(Override::Style(name, Some(v != 0))),
        Err(_) if tag.len() == 1 => Some(Override::Style(name, None)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Style;
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
    fn dialogues_start_from_their_style() {
        let file = "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n\
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, \
Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,2,10,10,10,1\n\
Style: Thoughts,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,-1,0,0,100,100,0,0,1,2,0,2,10,10,10,1\n\
Style: Sign,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,-1,0,-1,0,100,100,0,0,1,2,0,7,10,10,10,1\n\n\
[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
Dialogue: 0,0:00:01.00,0:00:02.00,Thoughts,,0,0,0,,I wonder{\\i0} - no{\\i}, yes\n\
Dialogue: 0,0:00:02.00,0:00:03.00,sign,,0,0,0,,{\\an2}CLOSED\n\
Dialogue: 0,0:00:03.00,0:00:04.00,Sign,,0,0,0,,OPEN\n\
Dialogue: 0,0:00:04.00,0:00:05.00,Missing,,0,0,0,,plain\n";
        let subs = parse("styled.ass", file).unwrap();
        let cues: Vec<(&str, &str)> = subs
            .cues
            .iter()
            .map(|c| (c.text.as_str(), c.settings.as_str()))
            .collect();
        assert_eq!(
            cues,
            [
                // Italic by its style: `\i0` ends it, a bare `\i` goes back to the style's.
                ("<i>I wonder</i> - no<i>, yes</i>", ""),
                // Names match without case; an override tag moves it back to the bottom.
                ("<b><u>CLOSED</u></b>", ""),
                ("<b><u>OPEN</u></b>", "line:0 align:start"),
                ("plain", ""),
            ]
        );
        // A style not in the section gets Default's, with one warning naming the line.
        assert_eq!(subs.warnings.len(), 1, "{:?}", subs.warnings);
        assert!(
            subs.warnings[0].contains("line 15") && subs.warnings[0].contains("`Missing`"),
            "{:?}",
            subs.warnings
        );
        let bad = parse(
            "bad.ass",
            "[V4+ Styles]\nFormat: Name, Bold\nStyle: Default\n[Events]\nFormat: Start, End, Text\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("bad.ass, line 3: expected 2"), "{bad}");
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
            super::block_fields("0,0,Default,,0,0,0,,{\\i1}Hi{\\i0}, you"),
            ("Default", "{\\i1}Hi{\\i0}, you")
        );
        assert_eq!(
            super::dialogue_text("{\\i1}unclosed", Style::default()).0,
            "<i>unclosed</i>",
            "open tags are closed"
        );
    }
}
