//! Cue timestamps: WebVTT's `[hh:]mm:ss.ttt` and SRT's `hh:mm:ss,ttt`, in milliseconds.

/// A cue time in milliseconds from the start of the title.
pub type Millis = u64;

/// Parses a WebVTT timestamp (WebVTT 6.4 "collect a WebVTT timestamp"): hours optional and
/// of two or more digits, minutes and seconds of two digits below 60, three digits of
/// milliseconds after a full stop. `separator` is `.` for WebVTT and `,` for SRT (which also
/// requires the hours).
pub fn parse_timestamp(text: &str, separator: char) -> Option<Millis> {
    let (clock, fraction) = text.split_once(separator)?;
    if fraction.len() != 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fields: Vec<&str> = clock.split(':').collect();
    let (hours, minutes, seconds) = match fields.as_slice() {
        [m, s] if separator == '.' => ("0", *m, *s),
        [h, m, s] if h.len() >= 2 || (separator == ',' && !h.is_empty()) => (*h, *m, *s),
        _ => return None,
    };
    let number = |f: &str, digits: Option<usize>| -> Option<u64> {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.is_some_and(|d| f.len() != d) {
            return None;
        }
        f.parse().ok()
    };
    let (h, m, s) = (
        number(hours, None)?,
        number(minutes, Some(2))?,
        number(seconds, Some(2))?,
    );
    if m > 59 || s > 59 {
        return None;
    }
    let ms: u64 = fraction.parse().ok()?;
    h.checked_mul(3_600_000)?
        .checked_add(m * 60_000 + s * 1000 + ms)
}

/// Writes `ms` as a WebVTT timestamp, always with hours: `01:02:03.004`.
pub fn format_timestamp(ms: Millis) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webvtt_timestamps() {
        assert_eq!(parse_timestamp("00:01:03.000", '.'), Some(63_000));
        assert_eq!(parse_timestamp("01:03.250", '.'), Some(63_250));
        assert_eq!(parse_timestamp("100:00:00.001", '.'), Some(360_000_001));
        assert_eq!(
            parse_timestamp("1:03.250", '.'),
            None,
            "minutes need two digits"
        );
        assert_eq!(
            parse_timestamp("0:01:03.000", '.'),
            None,
            "hours need two digits"
        );
        assert_eq!(parse_timestamp("00:61:03.000", '.'), None);
        assert_eq!(parse_timestamp("00:01:63.000", '.'), None);
        assert_eq!(parse_timestamp("00:01:03.00", '.'), None);
        assert_eq!(parse_timestamp("00:01:03,000", '.'), None);
        assert_eq!(parse_timestamp("aa:01:03.000", '.'), None);
    }

    #[test]
    fn srt_timestamps() {
        assert_eq!(parse_timestamp("00:01:03,000", ','), Some(63_000));
        assert_eq!(parse_timestamp("0:01:03,500", ','), Some(63_500));
        assert_eq!(
            parse_timestamp("01:03,500", ','),
            None,
            "SRT always has hours"
        );
        assert_eq!(parse_timestamp("00:01:03.000", ','), None);
    }

    #[test]
    fn formats_with_hours() {
        assert_eq!(format_timestamp(63_000), "00:01:03.000");
        assert_eq!(format_timestamp(3_723_004), "01:02:03.004");
        for ms in [0, 999, 59_999, 3_599_999, 360_000_001] {
            assert_eq!(parse_timestamp(&format_timestamp(ms), '.'), Some(ms));
        }
    }
}
