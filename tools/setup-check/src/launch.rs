//! The element names in a `gst-launch-1.0` pipeline description.
//!
//! The grammar (GStreamer's `gst_parse_launch`): chains of elements joined by `!`; an element
//! is a factory name followed by `property=value` pairs; a link may instead go to caps
//! (`video/x-raw,width=...`) or to a named element or pad (`name.`, `name.sink_1`); several
//! chains are separated by whitespace. Values may be quoted.

/// The factory names in `description`, in order of appearance (duplicates kept).
pub fn elements(description: &str) -> Vec<String> {
    tokens(description)
        .into_iter()
        .filter(|t| is_factory_name(t))
        .collect()
}

/// Splits on whitespace and `!`, keeping quoted values inside their token.
fn tokens(description: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in description.chars() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                current.push(c);
            }
            None if c.is_whitespace() || c == '!' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            None => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A token that names a factory: not a property (`a=b`), not caps (`x/y,...`), not a
/// reference to a named element or pad (`name.` or `name.pad`).
fn is_factory_name(token: &str) -> bool {
    !token.contains(['=', '/', '.', ',', '"', '\''])
        && token.starts_with(|c: char| c.is_ascii_alphabetic())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_caps_references_and_quoted_values() {
        let d = r#"compositor name=c sink_1::xpos=2 ! video/x-raw,width=64,framerate=25/1 ! timeoverlay font-desc="Sans 9 ! x" ! videoconvert ! x264enc ! mp4mux name=m ! filesink location=/tmp/a.mp4 videotestsrc num-buffers=3 ! c. audiotestsrc ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! m."#;
        assert_eq!(
            elements(d),
            [
                "compositor",
                "timeoverlay",
                "videoconvert",
                "x264enc",
                "mp4mux",
                "filesink",
                "videotestsrc",
                "audiotestsrc",
                "avenc_aac",
                "aacparse"
            ]
        );
    }

    #[test]
    fn pad_references_and_dashes() {
        assert_eq!(
            elements("tee name=t t.src_0 ! queue ! fake-sink t. ! queue2"),
            ["tee", "queue", "fake-sink", "queue2"]
        );
    }
}
