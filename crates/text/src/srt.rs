//! SubRip (`.srt`) files: blocks of a cue number, a timing line `hh:mm:ss,ttt --> hh:mm:ss,ttt`
//! and text lines, separated by blank lines. There is no formal specification; this reads the
//! layout players accept, and turns the text into WebVTT cue text: `<i>`, `<b>` and `<u>`
//! are kept (WebVTT has them), `<font>` is dropped with a warning (colours are not carried),
//! an ASS position tag `{\anN}` becomes WebVTT `line`/`align` settings, and other `<`, `>`
//! and `&` become text.

use crate::webvtt::clip;
use crate::{escape, parse_timestamp, Cue, Result, Subtitles, TextError};

pub(crate) fn parse(lines: &[&str], subs: &mut Subtitles) -> Result<()> {
    let path = subs.path.clone();
    let mut i = 0;
    let mut font_warned = false;
    while i < lines.len() {
        if lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        let end = lines[i..]
            .iter()
            .position(|l| l.trim().is_empty())
            .map_or(lines.len(), |n| i + n);
        let block = &lines[start..end];
        i = end;
        let syntax = |line: usize, problem: String| TextError::Syntax {
            path: path.clone(),
            line,
            problem,
        };
        let (id, timing_at) = if block[0].trim().bytes().all(|b| b.is_ascii_digit()) {
            (block[0].trim().to_string(), 1)
        } else if block[0].contains("-->") {
            subs.warn(start + 1, "cue without a number");
            (String::new(), 0)
        } else {
            return Err(syntax(
                start + 1,
                format!("expected a cue number, found `{}`", clip(block[0])),
            ));
        };
        let line = start + timing_at + 1;
        let timing_line = block
            .get(timing_at)
            .ok_or_else(|| syntax(line, "cue number without a timing line after it".into()))?;
        let (cue_start, cue_end) = timing(timing_line).map_err(|p| syntax(line, p))?;
        let mut settings = String::new();
        let mut text_lines = Vec::new();
        for raw in &block[timing_at + 1..] {
            let (t, position, font) = text_line(raw);
            if let Some(p) = position {
                settings = p;
            }
            if font && !font_warned {
                subs.warn(
                    line,
                    "<font> colours and faces are not carried (this and later cues)",
                );
                font_warned = true;
            }
            text_lines.push(t);
        }
        subs.cues.push(Cue {
            id,
            start: cue_start,
            end: cue_end,
            settings,
            text: text_lines.join("\n"),
            line,
        });
    }
    Ok(())
}

fn timing(line: &str) -> std::result::Result<(u64, u64), String> {
    let (left, right) = line.split_once("-->").ok_or_else(|| {
        format!(
            "expected a timing line like `00:00:01,000 --> 00:00:02,000`, found `{}`",
            clip(line)
        )
    })?;
    // Some writers add display coordinates (`X1:... Y2:...`) after the end time.
    let end_text = right.split_whitespace().next().unwrap_or("");
    let stamp = |t: &str| {
        parse_timestamp(t.trim(), ',').ok_or_else(|| {
            format!(
                "`{}` is not an SRT timestamp (hh:mm:ss,ttt)",
                clip(t.trim())
            )
        })
    };
    let (start, end) = (stamp(left)?, stamp(end_text)?);
    if end <= start {
        return Err(format!(
            "the cue ends ({}) before it starts ({}) or as it starts",
            end_text.trim(),
            left.trim()
        ));
    }
    Ok((start, end))
}

/// One SRT text line as WebVTT cue text; the WebVTT settings of an `{\anN}` tag in it; whether
/// it had `<font>` tags.
fn text_line(raw: &str) -> (String, Option<String>, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut position = None;
    let mut font = false;
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            if let Some(close) = rest.find('>') {
                let tag = rest[1..close].trim().to_ascii_lowercase();
                let name = tag.trim_start_matches('/');
                match name {
                    "i" | "b" | "u" => {
                        out.push('<');
                        out.push_str(&tag);
                        out.push('>');
                        rest = &rest[close + 1..];
                        continue;
                    }
                    _ if name == "font" || name.starts_with("font ") => {
                        font = true;
                        rest = &rest[close + 1..];
                        continue;
                    }
                    _ => {}
                }
            }
        } else if c == '{' {
            if let Some(close) = rest.find('}') {
                let tag = &rest[1..close];
                if let Some(n) = tag.strip_prefix("\\an").and_then(|n| n.parse::<u8>().ok()) {
                    position = an_settings(n);
                    rest = &rest[close + 1..];
                    continue;
                }
            }
        }
        out.push_str(&escape(&rest[..c.len_utf8()]));
        rest = &rest[c.len_utf8()..];
    }
    (out, position, font)
}

/// WebVTT settings for ASS numpad alignment `\anN` (1-3 bottom, 4-6 middle, 7-9 top; left,
/// centre, right in each row). Bottom centre is WebVTT's default.
pub(crate) fn an_settings(n: u8) -> Option<String> {
    if !(1..=9).contains(&n) {
        return None;
    }
    let line = match (n - 1) / 3 {
        0 => None,
        1 => Some("line:50%"),
        _ => Some("line:0"),
    };
    let align = match (n - 1) % 3 {
        0 => Some("align:start"),
        1 => None,
        _ => Some("align:end"),
    };
    let s: Vec<&str> = [line, align].into_iter().flatten().collect();
    Some(s.join(" "))
}

#[cfg(test)]
mod tests {
    use crate::parse;

    #[test]
    fn reads_cues_and_keeps_styling_webvtt_can_carry() {
        let subs = parse(
            "a.srt",
            "\u{feff}1\r\n00:01:03,000 --> 00:01:04,500\r\n<i>Hello</i> <B>there</B>\r\n\
             a < b & c\r\n\r\n2\r\n00:01:05,000 --> 00:01:06,000 X1:10 X2:20 Y1:5 Y2:9\r\n\
             {\\an8}<font color=\"red\">Top</font>\r\n",
        )
        .unwrap();
        assert_eq!(subs.cues.len(), 2);
        let c = &subs.cues[0];
        assert_eq!(
            (c.id.as_str(), c.start, c.end, c.line),
            ("1", 63_000, 64_500, 2)
        );
        assert_eq!(c.text, "<i>Hello</i> <b>there</b>\na &lt; b &amp; c");
        assert_eq!(c.settings, "");
        let d = &subs.cues[1];
        assert_eq!((d.text.as_str(), d.settings.as_str()), ("Top", "line:0"));
        assert_eq!(subs.warnings.len(), 1, "{:?}", subs.warnings);
        assert!(subs.warnings[0].starts_with("a.srt, line 7: <font>"));
    }

    #[test]
    fn positions_from_ass_tags() {
        let subs = parse(
            "p.srt",
            "1\n00:00:01,000 --> 00:00:02,000\n{\\an7}a\n\n2\n00:00:03,000 --> 00:00:04,000\n{\\an6}b\n",
        )
        .unwrap();
        assert_eq!(subs.cues[0].settings, "line:0 align:start");
        assert_eq!(subs.cues[1].settings, "line:50% align:end");
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "1\n00:00:01.000 --> 00:00:02,000\nA\n",
                2,
                "`00:00:01.000` is not an SRT timestamp",
            ),
            (
                "1\n00:00:03,000 --> 00:00:02,000\nA\n",
                2,
                "ends (00:00:02,000) before",
            ),
            (
                "1\n00:00:01,000 --> 00:00:02,000\nA\n\nhello\n",
                5,
                "expected a cue number",
            ),
            ("1\nhello\n", 2, "expected a timing line"),
            ("7\n", 2, "without a timing line"),
        ];
        for (text, line, problem) in cases {
            let err = parse("e.srt", text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("e.srt, line {line}: ")), "{err}");
            assert!(err.contains(problem), "{err}");
        }
    }
}
