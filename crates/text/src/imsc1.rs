//! Cues as IMSC1 text-profile TTML documents, one per segment: the samples of an `stpp`
//! track (ISO/IEC 14496-30 6, DASH-IF IOP's IMSC1 in CMAF). A document holds the cues shown
//! in its segment, cut to it, with times on the track's timeline (the title's own times,
//! as 14496-30 counts them for every sample of the track). WebVTT cue text becomes TTML
//! content: lines split at `<br/>`, `<i>`, `<b>` and `<u>` as styled spans, other tags
//! dropped with their text kept; a cue placed at the top (`line` above the middle) goes to
//! a top region, every other to the bottom one.

use crate::{format_timestamp, Cue, Millis};

/// The `codecs` value of an IMSC1 text track in MP4.
pub const CODECS: &str = "stpp.ttml.im1t";

/// The IMSC1 document for the span `[start, end)` (ms) of `cues`, in `language` (BCP 47).
pub fn document(cues: &[Cue], start: Millis, end: Millis, language: &str) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<tt xmlns=\"http://www.w3.org/ns/ttml\" ",
        "xmlns:ttp=\"http://www.w3.org/ns/ttml#parameter\" ",
        "xmlns:tts=\"http://www.w3.org/ns/ttml#styling\" ",
        "ttp:profile=\"http://www.w3.org/ns/ttml/profile/imsc1/text\" ",
    ));
    out.push_str(&format!("xml:lang=\"{}\">\n", attribute(language)));
    out.push_str(concat!(
        "<head><layout>\n",
        "<region xml:id=\"top\" tts:origin=\"10% 10%\" tts:extent=\"80% 80%\" ",
        "tts:displayAlign=\"before\" tts:textAlign=\"center\"/>\n",
        "<region xml:id=\"bottom\" tts:origin=\"10% 10%\" tts:extent=\"80% 80%\" ",
        "tts:displayAlign=\"after\" tts:textAlign=\"center\"/>\n",
        "</layout></head>\n<body><div>\n",
    ));
    for cue in cues.iter().filter(|c| c.start < end && c.end > start) {
        let (from, to) = (cue.start.max(start), cue.end.min(end));
        out.push_str(&format!(
            "<p begin=\"{}\" end=\"{}\" region=\"{}\">",
            format_timestamp(from),
            format_timestamp(to),
            if at_top(&cue.settings) {
                "top"
            } else {
                "bottom"
            }
        ));
        content(&cue.text, &mut out);
        out.push_str("</p>\n");
    }
    out.push_str("</div></body>\n</tt>\n");
    out
}

/// Whether WebVTT `settings` put the cue in the top half: a `line` that is a line number
/// from the top (0 or more) or a percentage below 50.
fn at_top(settings: &str) -> bool {
    settings
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("line:"))
        .map(|v| v.split(',').next().unwrap_or(""))
        .any(|v| match v.strip_suffix('%') {
            Some(p) => p.parse::<f64>().is_ok_and(|p| p < 50.0),
            None => v.parse::<i64>().is_ok_and(|n| n >= 0),
        })
}

/// WebVTT cue text as TTML content into `out`.
fn content(text: &str, out: &mut String) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let Some(close) = rest.find('>') else {
                    out.push_str("&lt;");
                    rest = &rest[1..];
                    continue;
                };
                let tag = &rest[1..close];
                rest = &rest[close + 1..];
                let closing = tag.starts_with('/');
                // The tag's name, without classes (`i.loud`) or an annotation (`v Bob`).
                let name = tag
                    .trim_start_matches('/')
                    .split(['.', ' ', '\t'])
                    .next()
                    .unwrap_or("");
                let style = match name {
                    "i" => "tts:fontStyle=\"italic\"",
                    "b" => "tts:fontWeight=\"bold\"",
                    "u" => "tts:textDecoration=\"underline\"",
                    _ => continue,
                };
                if closing {
                    if open.last() == Some(&name) {
                        open.pop();
                        out.push_str("</span>");
                    }
                } else {
                    open.push(name);
                    out.push_str(&format!("<span {style}>"));
                }
            }
            '&' => {
                let entity = rest.find(';').map(|i| &rest[..=i]);
                let (xml, used) = match entity {
                    Some("&amp;") => ("&amp;", 5),
                    Some("&lt;") => ("&lt;", 4),
                    Some("&gt;") => ("&gt;", 4),
                    Some("&nbsp;") => ("&#160;", 6),
                    Some("&lrm;") => ("&#8206;", 5),
                    Some("&rlm;") => ("&#8207;", 5),
                    // WebVTT reads any other `&` as text.
                    _ => ("&amp;", 1),
                };
                out.push_str(xml);
                rest = &rest[used..];
            }
            '\n' => {
                out.push_str("<br/>");
                rest = &rest[1..];
            }
            '>' => {
                out.push_str("&gt;");
                rest = &rest[1..];
            }
            '"' => {
                out.push_str("&quot;");
                rest = &rest[1..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    for _ in open {
        out.push_str("</span>");
    }
}

fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_cue;

    fn cue(start: Millis, end: Millis, settings: &str, text: &str) -> Cue {
        test_cue("", start, end, settings, text)
    }

    #[test]
    fn cue_text_becomes_ttml_content() {
        let mut out = String::new();
        content(
            "<i>One</i> <b.loud>two</b>\n<v Bob>Tom &amp; Jerry &lt;3&nbsp;&x",
            &mut out,
        );
        assert_eq!(
            out,
            "<span tts:fontStyle=\"italic\">One</span> <span tts:fontWeight=\"bold\">two</span>\
             <br/>Tom &amp; Jerry &lt;3&#160;&amp;x"
        );
        let mut out = String::new();
        content("<u>left open", &mut out);
        assert_eq!(
            out,
            "<span tts:textDecoration=\"underline\">left open</span>"
        );
    }

    #[test]
    fn top_or_bottom() {
        assert!(at_top("line:0"));
        assert!(at_top("align:start line:5%,start position:10%"));
        assert!(!at_top("line:-1"));
        assert!(!at_top("line:90%,end"));
        assert!(!at_top(""));
    }

    /// A document is well-formed TTML that the reader reads back to the same cues, cut to
    /// the segment.
    #[test]
    fn a_document_reads_back_to_its_cues() {
        let cues = [
            cue(500, 2_500, "", "<i>Across</i> the join"),
            cue(3_000, 3_960, "line:0", "Toi &amp; moi &lt;3\nencore"),
            cue(5_000, 6_000, "", "later"),
        ];
        let doc = document(&cues, 2_000, 4_000, "fr-CA");
        assert!(doc.contains("xml:lang=\"fr-CA\""), "{doc}");
        let back = crate::parse("seg.ttml", &doc).unwrap();
        let read: Vec<_> = back
            .cues
            .iter()
            .map(|c| (c.start, c.end, c.text.as_str(), c.settings.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                (
                    2_000,
                    2_500,
                    "<i>Across</i> the join",
                    "line:90%,end position:10%,line-left size:80%"
                ),
                (
                    3_000,
                    3_960,
                    "Toi &amp; moi &lt;3\nencore",
                    "line:10%,start position:10%,line-left size:80%"
                ),
            ]
        );
        assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    }

    #[test]
    fn an_empty_segment_is_an_empty_document() {
        let doc = document(&[], 0, 2_000, "en");
        let back = crate::parse("seg.ttml", &doc).unwrap();
        assert!(back.cues.is_empty() && back.warnings.is_empty());
    }
}
