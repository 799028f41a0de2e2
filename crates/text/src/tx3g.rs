//! 3GPP timed text (`tx3g`, what ffmpeg calls mov_text), 3GPP TS 26.245: a sample is the
//! text's length and its text, then modifier boxes; the `styl` box's style records say which
//! characters are bold, italic or underlined. Read as WebVTT cue text: `<b>`, `<i>`, `<u>`
//! around each run of characters, the rest escaped. Fonts, sizes, colours, karaoke, links and
//! scrolling are not carried. Lengths are checked against the sample, never trusted.

use crate::escape;
use reel_media::Tx3gDefaults;

/// Face style flags of a style record (TS 26.245 5.16, `face-style-flags`).
const BOLD: u8 = 1;
const ITALIC: u8 = 2;
const UNDERLINE: u8 = 4;

/// WebVTT settings for a track's vertical justification: `line:0` at the top, `line:50%` in
/// the middle, none at the bottom (WebVTT's own place).
pub fn settings(defaults: Tx3gDefaults) -> &'static str {
    match defaults.vertical_justification {
        0 => "line:0",
        1 => "line:50%",
        _ => "",
    }
}

/// The WebVTT cue text of one `tx3g` sample; an error says what in the sample is wrong.
pub fn sample_text(sample: &[u8], defaults: Tx3gDefaults) -> Result<String, String> {
    let (text, modifiers) = text_field(sample)?;
    let chars: Vec<char> = text.chars().collect();
    let mut faces = vec![defaults.face; chars.len()];
    for (kind, body) in boxes(modifiers)? {
        if &kind == b"styl" {
            for record in style_records(body)? {
                let end = usize::from(record.end_char).min(chars.len());
                let start = usize::from(record.start_char).min(end);
                faces[start..end].fill(record.face);
            }
        }
    }
    Ok(runs_as_webvtt(&chars, &faces))
}

/// The sample's `text-length` and text (UTF-8, or UTF-16 after a byte-order mark), and the
/// bytes after it, where the modifier boxes are.
fn text_field(sample: &[u8]) -> Result<(String, &[u8]), String> {
    let [a, b, rest @ ..] = sample else {
        return Err(format!(
            "{} bytes, too short for the text length",
            sample.len()
        ));
    };
    let length = usize::from(u16::from_be_bytes([*a, *b]));
    let Some(bytes) = rest.get(..length) else {
        return Err(format!(
            "text length {length} but {} bytes follow it",
            rest.len()
        ));
    };
    let text = match bytes {
        [0xFE, 0xFF, utf16 @ ..] => {
            let units = utf16
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| "text is not valid UTF-16".to_string())?
        }
        _ => std::str::from_utf8(bytes)
            .map_err(|e| format!("text is not UTF-8 (at byte {})", e.valid_up_to()))?
            .to_string(),
    };
    Ok((text.replace("\r\n", "\n"), &rest[length..]))
}

/// Boxes as (type, body).
type Boxes<'a> = Vec<([u8; 4], &'a [u8])>;

/// The boxes after the text. A size that runs past the sample is an error.
fn boxes(mut data: &[u8]) -> Result<Boxes<'_>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let header: [u8; 8] = data
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| format!("{} stray bytes after the text", data.len()))?;
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        if size < 8 || size > data.len() {
            return Err(format!(
                "a `{}` box of {size} bytes where {} are left",
                String::from_utf8_lossy(&kind),
                data.len()
            ));
        }
        out.push((kind, &data[8..size]));
        data = &data[size..];
    }
    Ok(out)
}

/// A style record's run and face (font, size and colour are not carried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StyleRecord {
    start_char: u16,
    /// The first character after the run.
    end_char: u16,
    face: u8,
}

/// The body of a `styl` box: `entry-count`, then 12-byte style records.
fn style_records(body: &[u8]) -> Result<Vec<StyleRecord>, String> {
    let [a, b, records @ ..] = body else {
        return Err("a `styl` box without its entry count".into());
    };
    let count = usize::from(u16::from_be_bytes([*a, *b]));
    if records.len() < count * 12 {
        return Err(format!(
            "a `styl` box of {count} style records has room for {}",
            records.len() / 12
        ));
    }
    Ok(records
        .chunks_exact(12)
        .take(count)
        .map(|r| StyleRecord {
            start_char: u16::from_be_bytes([r[0], r[1]]),
            end_char: u16::from_be_bytes([r[2], r[3]]),
            face: r[6],
        })
        .collect())
}

/// The characters as WebVTT cue text, each run of one face inside its tags.
fn runs_as_webvtt(chars: &[char], faces: &[u8]) -> String {
    let tags = [(BOLD, "b"), (ITALIC, "i"), (UNDERLINE, "u")];
    let mut out = String::with_capacity(chars.len() + 16);
    let mut at = 0;
    while at < chars.len() {
        let face = faces[at];
        let end = (at..chars.len())
            .find(|&i| faces[i] != face)
            .unwrap_or(chars.len());
        let run: String = chars[at..end].iter().collect();
        let on: Vec<&str> = tags
            .iter()
            .filter(|(flag, _)| face & flag != 0)
            .map(|(_, tag)| *tag)
            .collect();
        for tag in &on {
            out.push_str(&format!("<{tag}>"));
        }
        out.push_str(&escape(&run));
        for tag in on.iter().rev() {
            out.push_str(&format!("</{tag}>"));
        }
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample as ffmpeg's mov_text encoder lays it out: text length, text, a `styl` box.
    fn sample(text: &str, styles: &[(u16, u16, u8)]) -> Vec<u8> {
        let mut s = (text.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(text.as_bytes());
        if !styles.is_empty() {
            s.extend_from_slice(&((10 + 12 * styles.len()) as u32).to_be_bytes());
            s.extend_from_slice(b"styl");
            s.extend_from_slice(&(styles.len() as u16).to_be_bytes());
            for &(start, end, face) in styles {
                s.extend_from_slice(&start.to_be_bytes());
                s.extend_from_slice(&end.to_be_bytes());
                s.extend_from_slice(&[0, 1, face, 18, 255, 255, 255, 255]);
            }
        }
        s
    }

    #[test]
    fn style_records_become_tags_on_character_runs() {
        // Offsets count characters, not bytes: `é` is one.
        let s = sample(
            "Porte & café\nbold",
            &[(8, 12, ITALIC), (13, 17, BOLD | UNDERLINE)],
        );
        assert_eq!(
            sample_text(&s, Tx3gDefaults::default()).unwrap(),
            "Porte &amp; <i>café</i>\n<b><u>bold</u></b>"
        );
        // The sample entry's face is every character's until a record says otherwise.
        let defaults = Tx3gDefaults {
            face: ITALIC,
            vertical_justification: 0,
        };
        assert_eq!(
            sample_text(&sample("all", &[]), defaults).unwrap(),
            "<i>all</i>"
        );
        assert_eq!(settings(defaults), "line:0");
        // A record past the text is cut to it.
        assert_eq!(
            sample_text(&sample("ab", &[(1, 40, BOLD)]), Tx3gDefaults::default()).unwrap(),
            "a<b>b</b>"
        );
        // Other boxes (a text box, karaoke) are passed over.
        let mut with_tbox = sample("x", &[]);
        with_tbox.extend_from_slice(&[0, 0, 0, 16, b't', b'b', b'o', b'x', 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            sample_text(&with_tbox, Tx3gDefaults::default()).unwrap(),
            "x"
        );
    }

    #[test]
    fn lengths_are_checked() {
        let bad = |s: &[u8], says: &str| {
            let e = sample_text(s, Tx3gDefaults::default()).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        bad(&[0], "too short");
        bad(&[0, 9, b'a'], "text length 9 but 1 bytes");
        let mut s = sample("ab", &[(0, 1, BOLD)]);
        s[7] = 200; // the styl box's size
        bad(&s, "`styl` box of 200 bytes");
        let mut s = sample("ab", &[(0, 1, BOLD)]);
        s[13] = 5; // entry count
        bad(&s, "5 style records has room for 1");
        bad(&[0, 1, 0xFF], "not UTF-8");
    }
}
