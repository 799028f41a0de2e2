//! TTML (W3C TTML1/TTML2) and its IMSC1 text profile, the subtitle format of broadcast and
//! studio deliveries (`.ttml`, `.dfxp`, `.xml`). Every `<p>` with a time becomes a cue:
//!
//! - times (TTML 10.3.1): clock times `hh:mm:ss.fff` and `hh:mm:ss:ff[.sub]`, offsets
//!   `12.5s`, `500ms`, `3m`, `1h`, `25f`, `90000t`, with the document's `ttp:frameRate`,
//!   `ttp:frameRateMultiplier`, `ttp:subFrameRate` and `ttp:tickRate`; `begin`, `end` and
//!   `dur` on `body`, `div`, `p` (parallel time containers: a child counts from its parent's
//!   begin and ends by its parent's end);
//! - text: `<br/>` breaks lines, white space collapses as XML's default says (kept with
//!   `xml:space="preserve"`); italic, bold and underline (`tts:fontStyle`, `tts:fontWeight`,
//!   `tts:textDecoration`, inline or from referenced styles, inherited) become WebVTT's `<i>`,
//!   `<b>` and `<u>`;
//! - position: a `region`'s `tts:origin`, `tts:extent` and `tts:displayAlign` (and a
//!   `tts:textAlign`) become the WebVTT settings `line`, `position`, `size` and `align`.
//!
//! Colours, fonts and sizes are not carried (WebVTT in CMAF has no styling of its own): a
//! warning says so once. Anything that would lose a cue (a time that cannot be read, a
//! paragraph without an end, a `smpte` time base, a sequential time container) is an error
//! naming the file and the line.

use crate::webvtt::clip;
use crate::{escape, Cue, Millis, Result, Subtitles, TextError};
use roxmltree::{Document, Node};
use std::collections::HashMap;

const TT: &str = "http://www.w3.org/ns/ttml";
/// The namespace of DFXP files written before TTML1 was a recommendation.
const TT_2006: &str = "http://www.w3.org/2006/10/ttaf1";
const TTP: &str = "http://www.w3.org/ns/ttml#parameter";
const TTS: &str = "http://www.w3.org/ns/ttml#styling";
const TTP_2006: &str = "http://www.w3.org/2006/10/ttaf1#parameter";
const TTS_2006: &str = "http://www.w3.org/2006/10/ttaf1#style";
const XML: &str = "http://www.w3.org/XML/1998/namespace";

pub(crate) fn parse(text: &str, subs: &mut Subtitles) -> Result<()> {
    let path = subs.path.clone();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| TextError::Syntax {
        path: path.clone(),
        line: e.pos().row as usize,
        problem: format!("not well-formed XML: {e}"),
    })?;
    let root = doc.root_element();
    let ns = root.tag_name().namespace().unwrap_or("");
    if root.tag_name().name() != "tt" || (ns != TT && ns != TT_2006) {
        return Err(TextError::File {
            path,
            problem: format!(
                "not a TTML document: its root element is <{}> in namespace '{ns}', not <tt> \
                 in {TT}",
                root.tag_name().name()
            ),
        });
    }
    let reader = Reader::new(&doc, subs)?;
    let Some(body) = child(root, "body") else {
        subs.warn(line_of(&doc, root), "the document has no <body>: no cues");
        return Ok(());
    };
    let document = Span {
        begin: 0,
        end: None,
        style: Style::default(),
        region: None,
    };
    let body_span = reader.span(body, &document, subs)?;
    reader.timed(body, &body_span, subs)
}

/// The document-wide values every element is read with.
struct Reader<'a, 'input> {
    doc: &'a Document<'input>,
    clock: Clock,
    styles: HashMap<String, Node<'a, 'input>>,
    regions: HashMap<String, Node<'a, 'input>>,
}

/// Rates that turn frames and ticks into time (TTML 7.2).
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// Frames per second, the multiplier applied.
    frame_rate: f64,
    sub_frame_rate: f64,
    tick_rate: f64,
}

/// The styling WebVTT cue text can carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    italic: bool,
    bold: bool,
    underline: bool,
}

/// An element's active interval and what its children inherit.
struct Span {
    begin: Millis,
    /// `None`: no end known yet (the document's end).
    end: Option<Millis>,
    style: Style,
    region: Option<String>,
}

impl<'a, 'input> Reader<'a, 'input> {
    fn new(doc: &'a Document<'input>, subs: &mut Subtitles) -> Result<Self> {
        let root = doc.root_element();
        let syntax = |problem: String| TextError::Syntax {
            path: subs.path.clone(),
            line: line_of(doc, root),
            problem,
        };
        let param = |name: &str| {
            root.attribute((TTP, name))
                .or_else(|| root.attribute((TTP_2006, name)))
        };
        if let Some(base) = param("timeBase").filter(|b| *b != "media") {
            return Err(syntax(format!(
                "ttp:timeBase=\"{base}\" is not read: only media time (the default) is"
            )));
        }
        let number = |name: &str, text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0)
                .ok_or_else(|| {
                    syntax(format!(
                        "ttp:{name}=\"{}\" is not a positive number",
                        clip(text)
                    ))
                })
        };
        let frame_rate = param("frameRate")
            .map(|t| number("frameRate", t))
            .transpose()?;
        let multiplier = match param("frameRateMultiplier") {
            None => 1.0,
            Some(t) => match t.split_whitespace().collect::<Vec<_>>().as_slice() {
                [n, d] => number("frameRateMultiplier", n)? / number("frameRateMultiplier", d)?,
                _ => {
                    return Err(syntax(format!(
                        "ttp:frameRateMultiplier=\"{}\" is not two numbers (\"1000 1001\")",
                        clip(t)
                    )))
                }
            },
        };
        let sub_frame_rate = param("subFrameRate")
            .map(|t| number("subFrameRate", t))
            .transpose()?
            .unwrap_or(1.0);
        // TTML 7.2.8-7.2.10: 30 frames a second unless stated; ticks count at the frame
        // rate times the sub-frame rate when a frame rate is stated, else once a second.
        let tick_rate = match param("tickRate") {
            Some(t) => number("tickRate", t)?,
            None => frame_rate.map_or(1.0, |f| f * sub_frame_rate),
        };
        let clock = Clock {
            frame_rate: frame_rate.unwrap_or(30.0) * multiplier,
            sub_frame_rate,
            tick_rate,
        };
        let mut styles = HashMap::new();
        let mut regions = HashMap::new();
        if let Some(head) = child(root, "head") {
            for node in head.descendants().filter(|n| n.is_element()) {
                let Some(id) = node.attribute((XML, "id")) else {
                    continue;
                };
                match node.tag_name().name() {
                    "style" => {
                        styles.insert(id.to_string(), node);
                    }
                    "region" => {
                        regions.insert(id.to_string(), node);
                    }
                    _ => {}
                }
            }
        }
        Ok(Reader {
            doc,
            clock,
            styles,
            regions,
        })
    }

    /// Reads the timed children of `parent` (whose interval and inherited values are `outer`):
    /// `div`s in, `p`s into cues.
    fn timed(&self, parent: Node, outer: &Span, subs: &mut Subtitles) -> Result<()> {
        if let Some(kind) = parent.attribute("timeContainer").filter(|k| *k == "seq") {
            return Err(self.syntax(
                subs,
                parent,
                format!(
                    "timeContainer=\"{kind}\" is not read: only parallel timing (the default) is"
                ),
            ));
        }
        for node in parent.children().filter(|n| is_tt(n)) {
            match node.tag_name().name() {
                "div" => {
                    let span = self.span(node, outer, subs)?;
                    self.timed(node, &span, subs)?;
                }
                "p" => self.paragraph(node, outer, subs)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The interval and inherited values of `node` inside `outer`.
    fn span(&self, node: Node, outer: &Span, subs: &Subtitles) -> Result<Span> {
        let time = |name: &str| {
            node.attribute(name)
                .map(|t| {
                    parse_time(t, &self.clock).ok_or_else(|| {
                        self.syntax(
                            subs,
                            node,
                            format!(
                                "{name}=\"{}\" is not a TTML time (00:00:01.500, \
                                 00:00:01:12, 1.5s, 1500ms, 36f, 90000t)",
                                clip(t)
                            ),
                        )
                    })
                })
                .transpose()
        };
        let begin = outer.begin + time("begin")?.unwrap_or(0);
        let mut end = match (time("end")?, time("dur")?) {
            (Some(e), Some(d)) => Some((outer.begin + e).min(begin + d)),
            (Some(e), None) => Some(outer.begin + e),
            (None, Some(d)) => Some(begin + d),
            (None, None) => outer.end,
        };
        if let (Some(e), Some(o)) = (end, outer.end) {
            end = Some(e.min(o));
        }
        Ok(Span {
            begin,
            end,
            style: self.style_of(node, outer.style),
            region: node
                .attribute("region")
                .map(str::to_string)
                .or_else(|| outer.region.clone()),
        })
    }

    fn paragraph(&self, p: Node, outer: &Span, subs: &mut Subtitles) -> Result<()> {
        let span = self.span(p, outer, subs)?;
        let line = line_of(self.doc, p);
        let Some(end) = span.end else {
            return Err(self.syntax(
                subs,
                p,
                "the paragraph has no end: give it (or its div or body) an end or a dur".into(),
            ));
        };
        let mut runs = Vec::new();
        let preserve = p
            .ancestors()
            .find_map(|n| n.attribute((XML, "space")))
            .is_some_and(|s| s == "preserve");
        self.runs(p, span.style, preserve, &mut runs, subs);
        let text = cue_text(&runs);
        if text.trim().is_empty() {
            subs.warn(line, "a paragraph without text is not a cue");
            return Ok(());
        }
        if end <= span.begin {
            subs.warn(
                line,
                format!(
                    "the paragraph ends ({}) before it begins or as it does ({}); it is not shown",
                    crate::format_timestamp(end),
                    crate::format_timestamp(span.begin)
                ),
            );
            return Ok(());
        }
        subs.cues.push(Cue {
            id: p.attribute((XML, "id")).unwrap_or("").to_string(),
            start: span.begin,
            end,
            settings: self.settings(p, span.region.as_deref()),
            text,
            line,
        });
        Ok(())
    }

    /// The text of `node`'s children as runs of one style; `None` marks a line break.
    fn runs(
        &self,
        node: Node,
        style: Style,
        preserve: bool,
        runs: &mut Vec<Option<(String, Style)>>,
        subs: &mut Subtitles,
    ) {
        for n in node.children() {
            if n.is_text() {
                let text = n.text().unwrap_or("");
                if preserve {
                    for (i, part) in text.split('\n').enumerate() {
                        if i > 0 {
                            runs.push(None);
                        }
                        runs.push(Some((part.to_string(), style)));
                    }
                } else {
                    runs.push(Some((collapse(text), style)));
                }
            } else if is_tt(&n) {
                match n.tag_name().name() {
                    "br" => runs.push(None),
                    "span" => {
                        if n.attribute("begin").is_some() || n.attribute("end").is_some() {
                            subs.warn(
                                line_of(self.doc, n),
                                "a timed <span> is shown for its whole paragraph",
                            );
                        }
                        let style = self.style_of(n, style);
                        self.runs(n, style, preserve, runs, subs);
                    }
                    _ => {}
                }
            }
        }
    }

    /// `node`'s style: `inherited`, then its referenced styles in order, then its own
    /// attributes (TTML 8.4.4.2, the parts WebVTT carries).
    fn style_of(&self, node: Node, inherited: Style) -> Style {
        let mut style = inherited;
        self.apply_referenced(node, &mut style, 0);
        apply(node, &mut style);
        style
    }

    fn apply_referenced(&self, node: Node, style: &mut Style, depth: usize) {
        // Style chains are short; a loop of references must not recurse for ever.
        if depth > 8 {
            return;
        }
        for id in node.attribute("style").unwrap_or("").split_whitespace() {
            if let Some(s) = self.styles.get(id) {
                self.apply_referenced(*s, style, depth + 1);
                apply(*s, style);
            }
        }
    }

    /// A styling attribute of `node`, its own or from the styles it references.
    fn tts(&self, node: Node<'a, 'input>, name: &str) -> Option<&'a str> {
        tts(node, name).or_else(|| {
            node.attribute("style")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|id| self.styles.get(id))
                .find_map(|s| tts(*s, name))
        })
    }

    /// WebVTT settings for a paragraph in `region`: the region's box as `line`, `position`
    /// and `size`, its alignments as the line's anchor and `align`.
    fn settings(&self, p: Node, region: Option<&str>) -> String {
        let mut settings = Vec::new();
        let region = region.and_then(|id| self.regions.get(id));
        if let Some(r) = region {
            let origin = tts(*r, "origin").and_then(percent_pair);
            let extent = tts(*r, "extent").and_then(percent_pair);
            if let (Some((x, y)), Some((w, h))) = (origin, extent) {
                let (line, anchor) = match self.tts(*r, "displayAlign").unwrap_or("before") {
                    "after" => (y + h, "end"),
                    "center" => (y + h / 2.0, "center"),
                    _ => (y, "start"),
                };
                settings.push(format!("line:{}%,{anchor}", round_percent(line)));
                settings.push(format!("position:{}%,line-left", round_percent(x)));
                settings.push(format!("size:{}%", round_percent(w)));
            }
        }
        let align = self
            .tts(p, "textAlign")
            .or_else(|| region.and_then(|r| self.tts(*r, "textAlign")));
        if let Some(a) = align.filter(|a| ["start", "end", "left", "right"].contains(a)) {
            settings.push(format!("align:{a}"));
        }
        settings.join(" ")
    }

    fn syntax(&self, subs: &Subtitles, node: Node, problem: String) -> TextError {
        TextError::Syntax {
            path: subs.path.clone(),
            line: line_of(self.doc, node),
            problem,
        }
    }
}

fn apply(node: Node, style: &mut Style) {
    if let Some(v) = tts(node, "fontStyle") {
        style.italic = v == "italic" || v == "oblique";
    }
    if let Some(v) = tts(node, "fontWeight") {
        style.bold = v == "bold";
    }
    if let Some(v) = tts(node, "textDecoration") {
        if v.split_whitespace().any(|d| d == "underline") {
            style.underline = true;
        } else if v
            .split_whitespace()
            .any(|d| d == "noUnderline" || d == "none")
        {
            style.underline = false;
        }
    }
}

fn tts<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attribute((TTS, name))
        .or_else(|| node.attribute((TTS_2006, name)))
}

fn is_tt(node: &Node) -> bool {
    node.is_element() && matches!(node.tag_name().namespace(), Some(TT) | Some(TT_2006))
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|n| is_tt(n) && n.tag_name().name() == name)
}

fn line_of(doc: &Document, node: Node) -> usize {
    doc.text_pos_at(node.range().start).row as usize
}

/// XML's default white space: runs of spaces, tabs and line ends become one space.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    if space {
        out.push(' ');
    }
    out
}

/// WebVTT cue text from runs: each line trimmed, each run of a style wrapped in its tags,
/// text escaped.
fn cue_text(runs: &[Option<(String, Style)>]) -> String {
    let mut lines: Vec<Vec<(String, Style)>> = vec![Vec::new()];
    for run in runs {
        match run {
            None => lines.push(Vec::new()),
            Some((text, style)) => {
                let line = lines.last_mut().expect("one line at least");
                match line.last_mut() {
                    Some((t, s)) if s == style => t.push_str(text),
                    _ => line.push((text.clone(), *style)),
                }
            }
        }
    }
    let mut out = Vec::new();
    for mut line in lines {
        // Trim the line's ends across its runs.
        if let Some((t, _)) = line.first_mut() {
            *t = t.trim_start().to_string();
        }
        if let Some((t, _)) = line.last_mut() {
            *t = t.trim_end().to_string();
        }
        let mut text = String::new();
        for (t, style) in line.into_iter().filter(|(t, _)| !t.is_empty()) {
            let (open, close) = tags(style);
            text.push_str(&open);
            text.push_str(&escape(&t));
            text.push_str(&close);
        }
        out.push(text);
    }
    // Blank lines would end a WebVTT cue: a `<br/>` that made one is dropped.
    out.retain(|l| !l.is_empty());
    out.join("\n")
}

fn tags(style: Style) -> (String, String) {
    let mut open = String::new();
    let mut close = String::new();
    for (on, tag) in [
        (style.italic, "i"),
        (style.bold, "b"),
        (style.underline, "u"),
    ] {
        if on {
            open.push_str(&format!("<{tag}>"));
            close.insert_str(0, &format!("</{tag}>"));
        }
    }
    (open, close)
}

/// `"10% 80%"` as (10, 80).
fn percent_pair(text: &str) -> Option<(f64, f64)> {
    let mut parts = text.split_whitespace().map(|p| {
        p.strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|v| (0.0..=100.0).contains(v))
    });
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), None) => Some((a, b)),
        _ => None,
    }
}

fn round_percent(v: f64) -> String {
    let v = (v.clamp(0.0, 100.0) * 100.0).round() / 100.0;
    format!("{v}")
}

/// A TTML time expression (TTML 10.3.1) in milliseconds, rounded to the nearest.
fn parse_time(text: &str, clock: &Clock) -> Option<Millis> {
    let text = text.trim();
    let seconds = if text.contains(':') {
        clock_time(text, clock)?
    } else {
        offset_time(text, clock)?
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as Millis)
}

/// `hh:mm:ss`, `hh:mm:ss.fff` or `hh:mm:ss:ff[.sub]`, in seconds.
fn clock_time(text: &str, clock: &Clock) -> Option<f64> {
    let fields: Vec<&str> = text.split(':').collect();
    let digits = |f: &str, n: Option<usize>| {
        (!f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) && n.is_none_or(|n| f.len() == n))
            .then(|| f.parse::<f64>().ok())
            .flatten()
    };
    let (h, m) = (digits(fields[0], None)?, digits(fields.get(1)?, Some(2))?);
    if fields[0].len() < 2 || m > 59.0 {
        return None;
    }
    let (s, frames) = match fields.as_slice() {
        [_, _, s] => {
            let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
            let whole = digits(whole, Some(2))?;
            let fraction = if fraction.is_empty() {
                if s.ends_with('.') {
                    return None;
                }
                0.0
            } else {
                digits(fraction, None)? / 10f64.powi(fraction.len() as i32)
            };
            (whole + fraction, 0.0)
        }
        [_, _, s, f] => {
            let (frames, sub) = f.split_once('.').unwrap_or((f, ""));
            let frames = digits(frames, None)?;
            let sub = if sub.is_empty() {
                0.0
            } else {
                digits(sub, None)?
            };
            if frames >= clock.frame_rate.ceil() {
                return None;
            }
            (digits(s, Some(2))?, frames + sub / clock.sub_frame_rate)
        }
        _ => return None,
    };
    if s > 59.999_999 {
        return None;
    }
    Some(h * 3600.0 + m * 60.0 + s + frames / clock.frame_rate)
}

/// `1.5s`, `1500ms`, `2m`, `1h`, `36f`, `90000t`, in seconds.
fn offset_time(text: &str, clock: &Clock) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (count, metric) = text.split_at(split);
    if count.is_empty() || count.starts_with('.') || count.ends_with('.') {
        return None;
    }
    let count: f64 = count.parse().ok()?;
    Some(match metric {
        "h" => count * 3600.0,
        "m" => count * 60.0,
        "s" => count,
        "ms" => count / 1000.0,
        "f" => count / clock.frame_rate,
        "t" => count / clock.tick_rate,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn read(text: &str) -> Subtitles {
        crate::parse("t.ttml", text).unwrap()
    }

    fn error(text: &str) -> String {
        crate::parse("t.ttml", text).unwrap_err().to_string()
    }

    const CLOCK: Clock = Clock {
        frame_rate: 25.0,
        sub_frame_rate: 1.0,
        tick_rate: 10_000_000.0,
    };

    #[test]
    fn time_expressions() {
        let t = |s| parse_time(s, &CLOCK);
        assert_eq!(t("00:01:03.000"), Some(63_000));
        assert_eq!(t("00:01:03.5"), Some(63_500));
        assert_eq!(t("00:01:03"), Some(63_000));
        assert_eq!(t("00:01:03:12"), Some(63_480));
        assert_eq!(t("100:00:00.000"), Some(360_000_000));
        assert_eq!(t("1.5s"), Some(1_500));
        assert_eq!(t("1500ms"), Some(1_500));
        assert_eq!(t("2m"), Some(120_000));
        assert_eq!(t("1h"), Some(3_600_000));
        assert_eq!(t("36f"), Some(1_440));
        assert_eq!(t("15000000t"), Some(1_500));
        for bad in [
            "",
            "1",
            "1.s",
            "s",
            "1x",
            "0:01:03.000",
            "00:1:03",
            "00:60:00",
            "00:00:61",
            "00:00:01:25",
            "00:00:01.",
            "-1s",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    /// An IMSC1 text document as subtitle vendors write them: styles by reference, a region
    /// at the top and one at the bottom, frames, `<br/>`, an italic span, entities.
    #[test]
    fn an_imsc1_document_becomes_cues() {
        let subs = read(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter"
    xmlns:tts="http://www.w3.org/ns/ttml#styling" ttp:frameRate="25" xml:lang="fr">
  <head>
    <styling>
      <style xml:id="base" tts:color="white" tts:fontFamily="proportionalSansSerif"/>
      <style xml:id="it" style="base" tts:fontStyle="italic"/>
    </styling>
    <layout>
      <region xml:id="top" tts:origin="10% 5%" tts:extent="80% 15%" tts:displayAlign="before"/>
      <region xml:id="bottom" tts:origin="10% 80%" tts:extent="80% 15%" tts:displayAlign="after"/>
    </layout>
  </head>
  <body style="base" region="bottom">
    <div>
      <p xml:id="c1" begin="00:01:03.000" end="00:01:05:12">Bonjour
         <span style="it">tout le monde</span><br/>
         Tom &amp; Jerry &lt;3</p>
      <p begin="00:01:06.000" dur="2s" region="top" tts:textAlign="left"><span tts:fontWeight="bold">EN HAUT</span></p>
    </div>
  </body>
</tt>"#,
        );
        assert_eq!(subs.cues.len(), 2, "{subs:?}");
        let (a, b) = (&subs.cues[0], &subs.cues[1]);
        assert_eq!((a.id.as_str(), a.start, a.end), ("c1", 63_000, 65_480));
        assert_eq!(
            a.text,
            "Bonjour <i>tout le monde</i>\nTom &amp; Jerry &lt;3"
        );
        assert_eq!(a.settings, "line:95%,end position:10%,line-left size:80%");
        assert_eq!(a.line, 16);
        assert_eq!((b.start, b.end), (66_000, 68_000));
        assert_eq!(b.text, "<b>EN HAUT</b>");
        assert_eq!(
            b.settings,
            "line:5%,start position:10%,line-left size:80% align:left"
        );
        assert!(subs.warnings.is_empty(), "{:?}", subs.warnings);
    }

    /// Times in a div count from the div's begin, and a paragraph ends by its div's end.
    #[test]
    fn timing_nests() {
        let subs = read(
            r#"<tt xmlns="http://www.w3.org/ns/ttml"><body begin="10s"><div begin="5s" end="9s">
<p begin="1s" end="2s">a</p><p begin="3s">b</p><p begin="3.5s" end="20s">c</p></div>
<div><p begin="0.25s" dur="250ms">d</p></div></body></tt>"#,
        );
        let times: Vec<(Millis, Millis)> = subs.cues.iter().map(|c| (c.start, c.end)).collect();
        assert_eq!(
            times,
            [
                (10_250, 10_500),
                (16_000, 17_000),
                (18_000, 19_000),
                (18_500, 19_000)
            ]
        );
    }

    #[test]
    fn preserved_white_space_keeps_line_ends() {
        let subs = read(
            "<tt xmlns=\"http://www.w3.org/ns/ttml\" xml:space=\"preserve\"><body><div>\
             <p begin=\"1s\" end=\"2s\">one\ntwo</p></div></body></tt>",
        );
        assert_eq!(subs.cues[0].text, "one\ntwo");
    }

    #[test]
    fn a_ticks_document_counts_at_its_tick_rate() {
        let subs = read(
            r#"<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter"
ttp:tickRate="10000000"><body><div><p begin="12345670000t" end="12355670000t">x</p></div></body></tt>"#,
        );
        assert_eq!(
            (subs.cues[0].start, subs.cues[0].end),
            (1_234_567, 1_235_567)
        );
    }

    #[test]
    fn what_cannot_be_read_is_named_with_its_line() {
        let head = "<tt xmlns=\"http://www.w3.org/ns/ttml\"><body><div>\n";
        let e = error(&format!(
            "{head}<p begin=\"1s\" end=\"soon\">x</p></div></body></tt>"
        ));
        assert!(
            e.contains("t.ttml, line 2") && e.contains("end=\"soon\""),
            "{e}"
        );
        let e = error(&format!("{head}\n<p begin=\"1s\">x</p></div></body></tt>"));
        assert!(e.contains("line 3") && e.contains("no end"), "{e}");
        let e = error(&format!(
            "{head}<p begin=\"1s\" end=\"2s\">x</div></body></tt>"
        ));
        assert!(e.contains("line 2") && e.contains("not well-formed"), "{e}");
        let e = error("<html><body/></html>");
        assert!(e.contains("not a TTML document"), "{e}");
        let e = error(
            "<tt xmlns=\"http://www.w3.org/ns/ttml\" xmlns:ttp=\"http://www.w3.org/ns/ttml#parameter\" \
             ttp:timeBase=\"smpte\"><body/></tt>",
        );
        assert!(e.contains("timeBase=\"smpte\""), "{e}");
        let e = error(
            "<tt xmlns=\"http://www.w3.org/ns/ttml\"><body><div timeContainer=\"seq\"></div></body></tt>",
        );
        assert!(e.contains("timeContainer"), "{e}");
    }

    #[test]
    fn surprises_are_warned_of_with_their_line() {
        let subs = read(
            "<tt xmlns=\"http://www.w3.org/ns/ttml\"><body><div>\n<p begin=\"1s\" end=\"2s\"> </p>\n\
             <p begin=\"3s\" end=\"3s\">x</p>\n<p begin=\"4s\" end=\"5s\">a <span begin=\"0.5s\">b</span></p>\
             </div></body></tt>",
        );
        assert_eq!(subs.cues.len(), 1);
        assert_eq!(subs.cues[0].text, "a b");
        let w = subs.warnings.join("\n");
        for line in ["line 2", "line 3", "line 4"] {
            assert!(w.contains(&format!("t.ttml, {line}")), "{w}");
        }
    }

    #[test]
    fn dfxp_of_2006_is_read_too() {
        let subs = crate::parse(
            Path::new("old.dfxp"),
            r#"<tt xmlns="http://www.w3.org/2006/10/ttaf1" xmlns:tts="http://www.w3.org/2006/10/ttaf1#style">
<body><div><p begin="00:00:01.00" end="00:00:02.00" tts:fontStyle="italic">old</p></div></body></tt>"#,
        )
        .unwrap();
        assert_eq!(subs.cues[0].text, "<i>old</i>");
    }
}
