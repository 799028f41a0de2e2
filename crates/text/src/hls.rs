//! Segmented WebVTT for HLS (RFC 8216 3.1.4 and 3.5): one WebVTT file per segment, with the
//! cues shown during it, each file mapping its times onto the media's with
//! `X-TIMESTAMP-MAP`. Cue times stay the title's own (a cue at 00:01:03.000 says so in the
//! file); the map says that local time 0 is media time 0 (`MPEGTS:0`), as the packaged media
//! starts at 0. A cue that spans a boundary is in both segments; players drop the repeat.

use crate::{format_timestamp, Cue, Millis};

/// The WebVTT file of the segment `[start, end)` ms.
pub fn segment(cues: &[Cue], start: Millis, end: Millis) -> String {
    let mut out = String::from("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n");
    for cue in cues.iter().filter(|c| c.start < end && c.end > start) {
        out.push('\n');
        if !cue.id.is_empty() {
            out.push_str(&cue.id);
            out.push('\n');
        }
        out.push_str(&format_timestamp(cue.start));
        out.push_str(" --> ");
        out.push_str(&format_timestamp(cue.end));
        if !cue.settings.is_empty() {
            out.push(' ');
            out.push_str(&cue.settings);
        }
        out.push('\n');
        out.push_str(&cue.text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_hold_the_cues_shown_in_them() {
        let subs = crate::parse(
            "a.vtt",
            "WEBVTT\n\nx\n00:01.000 --> 00:05.000 line:0\nA\n\n00:06.000 --> 00:07.000\nB\n",
        )
        .unwrap();
        let first = segment(&subs.cues, 0, 4000);
        assert_eq!(
            first,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\nx\n00:00:01.000 --> 00:00:05.000 line:0\nA\n"
        );
        let second = segment(&subs.cues, 4000, 8000);
        assert!(second.contains("00:00:01.000 --> 00:00:05.000") && second.contains("\nB\n"));
        // What we write reads back as the same cues.
        let fields = |c: &Cue| {
            (
                c.id.clone(),
                c.start,
                c.end,
                c.settings.clone(),
                c.text.clone(),
            )
        };
        let again = crate::parse("b.vtt", &second).unwrap();
        let want: Vec<_> = subs.cues.iter().map(fields).collect();
        assert_eq!(again.cues.iter().map(fields).collect::<Vec<_>>(), want);
    }
}
