//! WebVTT files (W3C WebVTT, 6.1 "WebVTT parser algorithm"): the `WEBVTT` signature, a header,
//! then blocks separated by blank lines: cues (an optional identifier, the timing line with
//! settings, the text), `NOTE` comments, and `STYLE`/`REGION` blocks, which are not carried.
//! Where the browser's parser would skip a broken block without a word, this one refuses it
//! with its line, so that no cue goes missing unseen.

use crate::{parse_timestamp, Cue, Result, Subtitles, TextError};

/// Fills `subs` from the file's `lines` (line endings removed).
pub(crate) fn parse(lines: &[&str], subs: &mut Subtitles) -> Result<()> {
    let path = subs.path.clone();
    let syntax = |line: usize, problem: String| TextError::Syntax {
        path: path.clone(),
        line,
        problem,
    };
    let first = lines.first().copied().unwrap_or("");
    let signature_ok =
        first == "WEBVTT" || first.starts_with("WEBVTT ") || first.starts_with("WEBVTT\t");
    if !signature_ok {
        return Err(syntax(
            1,
            "a WebVTT file starts with the line `WEBVTT`".into(),
        ));
    }
    // The header runs to the first blank line.
    let mut i = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let mut seen_cue = false;
    while i < lines.len() {
        if lines[i].is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        let end = lines[i..]
            .iter()
            .position(|l| l.is_empty())
            .map_or(lines.len(), |n| i + n);
        let block = &lines[start..end];
        i = end;
        let head = block[0];
        if is_keyword(head, "NOTE") {
            continue;
        }
        if !seen_cue && (is_keyword(head, "STYLE") || is_keyword(head, "REGION")) {
            let what = if is_keyword(head, "STYLE") {
                "STYLE block (CSS)"
            } else {
                "REGION block"
            };
            subs.warn(
                start + 1,
                format!("{what} is not carried into the package; cue settings and tags are"),
            );
            continue;
        }
        let (id, timing_at) = if head.contains("-->") {
            (String::new(), 0)
        } else if block.get(1).is_some_and(|l| l.contains("-->")) {
            (head.to_string(), 1)
        } else {
            return Err(syntax(
                start + 1,
                format!(
                    "expected a cue timing line like `00:00:01.000 --> 00:00:02.000`, found `{}`",
                    clip(head)
                ),
            ));
        };
        let line = start + timing_at + 1;
        let (cue_start, cue_end, settings) =
            timing(block[timing_at]).map_err(|p| syntax(line, p))?;
        let text = block[timing_at + 1..].join("\n");
        if let Some(n) = block[timing_at + 1..]
            .iter()
            .position(|l| l.contains("-->"))
        {
            return Err(syntax(
                line + 1 + n,
                "`-->` in cue text: is a blank line missing before this cue?".into(),
            ));
        }
        seen_cue = true;
        subs.cues.push(Cue {
            id,
            start: cue_start,
            end: cue_end,
            settings,
            text,
            line,
        });
    }
    Ok(())
}

/// `NOTE`, `STYLE`, `REGION` alone or followed by a space or tab.
fn is_keyword(line: &str, word: &str) -> bool {
    line.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// A timing line: `start --> end [settings]`. End after start.
pub(crate) fn timing(line: &str) -> std::result::Result<(u64, u64, String), String> {
    let (left, right) = line
        .split_once("-->")
        .ok_or_else(|| format!("no `-->` in the timing line `{}`", clip(line)))?;
    let start_text = left.trim();
    let mut rest = right.trim_start().splitn(2, [' ', '\t']);
    let end_text = rest.next().unwrap_or("");
    let settings = rest
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let stamp = |t: &str| {
        parse_timestamp(t, '.').ok_or_else(|| {
            format!(
                "`{}` is not a WebVTT timestamp (hh:mm:ss.ttt or mm:ss.ttt)",
                clip(t)
            )
        })
    };
    let (start, end) = (stamp(start_text)?, stamp(end_text)?);
    if end <= start {
        return Err(format!(
            "the cue ends ({end_text}) before it starts ({start_text}) or as it starts"
        ));
    }
    for setting in settings.split(' ').filter(|s| !s.is_empty()) {
        let name = setting.split(':').next().unwrap_or("");
        if !["vertical", "line", "position", "size", "align", "region"].contains(&name)
            || !setting.contains(':')
        {
            return Err(format!(
                "unknown cue setting `{}` (WebVTT has vertical, line, position, size, align, region)",
                clip(setting)
            ));
        }
    }
    Ok((start, end, settings))
}

/// At most 40 characters of `text`, for messages.
pub(crate) fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::parse;

    #[test]
    fn reads_cues_ids_settings_and_comments() {
        let subs = parse(
            "a.vtt",
            "WEBVTT - a title\nKind: captions\n\nNOTE a comment\n--> not a cue\n\n\
             intro\n00:00:01.000 --> 00:00:02.500 line:0 align:start\n<i>Hello</i>\nworld &amp; all\n\n\
             01:03.000 --> 01:04.000\n[music]\n",
        )
        .unwrap();
        assert_eq!(subs.cues.len(), 2);
        let c = &subs.cues[0];
        assert_eq!((c.id.as_str(), c.start, c.end), ("intro", 1000, 2500));
        assert_eq!(c.settings, "line:0 align:start");
        assert_eq!(c.text, "<i>Hello</i>\nworld &amp; all");
        assert_eq!(c.line, 8);
        assert_eq!((subs.cues[1].start, subs.cues[1].line), (63_000, 12));
        assert!(subs.warnings.is_empty());
    }

    #[test]
    fn style_blocks_warn() {
        let subs = parse(
            "s.vtt",
            "WEBVTT\n\nSTYLE\n::cue { color: red }\n\n00:01.000 --> 00:02.000\nA\n",
        )
        .unwrap();
        assert_eq!(subs.cues.len(), 1);
        assert!(subs.warnings[0].starts_with("s.vtt, line 3: STYLE block"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("WEBVT\n", 1, "starts with the line `WEBVTT`"),
            (
                "WEBVTT\n\n00:01.000 -> 00:02.000\nA\n",
                3,
                "expected a cue timing line",
            ),
            (
                "WEBVTT\n\n00:01.000 --> 00:02,000\nA\n",
                3,
                "`00:02,000` is not a WebVTT timestamp",
            ),
            (
                "WEBVTT\n\nid\n00:03.000 --> 00:02.000\nA\n",
                4,
                "ends (00:02.000) before it starts",
            ),
            (
                "WEBVTT\n\n00:01.000 --> 00:02.000 colour:red\nA\n",
                3,
                "unknown cue setting",
            ),
            (
                "WEBVTT\n\n00:01.000 --> 00:02.000\nA\n00:03.000 --> 00:04.000\nB\n",
                5,
                "blank line missing",
            ),
        ];
        for (text, line, problem) in cases {
            let err = parse("e.vtt", text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("e.vtt, line {line}: ")), "{err}");
            assert!(err.contains(problem), "{err}");
        }
    }
}
