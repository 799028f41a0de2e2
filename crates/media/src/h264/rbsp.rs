//! The raw byte sequence payload of a NAL unit (ITU-T H.264 7.3.1, 7.4.1): the NAL unit's
//! bytes with each `emulation_prevention_three_byte` removed.

/// An RBSP, and where bytes were removed so that RBSP lengths map back to NAL unit bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rbsp {
    pub data: Vec<u8>,
    /// For each removed `0x03`, the RBSP index the next byte landed at.
    removed: Vec<usize>,
}

impl Rbsp {
    /// Unescapes at most `limit` bytes of `escaped` (a NAL unit after its header byte).
    pub fn unescape(escaped: &[u8], limit: usize) -> Self {
        let mut data = Vec::with_capacity(escaped.len().min(limit));
        let mut removed = Vec::new();
        let mut zeros = 0;
        for &b in escaped.iter().take(limit) {
            if zeros >= 2 && b == 3 {
                removed.push(data.len());
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Self { data, removed }
    }

    /// How many escaped bytes hold the first `rbsp_bytes` bytes of the RBSP.
    pub fn escaped_len(&self, rbsp_bytes: usize) -> usize {
        rbsp_bytes + self.removed.iter().filter(|&&at| at < rbsp_bytes).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_is_removed_and_mapped_back() {
        let r = Rbsp::unescape(&[0, 0, 3, 1, 5, 0, 0, 3, 0], usize::MAX);
        assert_eq!(r.data, [0, 0, 1, 5, 0, 0, 0]);
        assert_eq!(r.removed, [2, 6]);
        assert_eq!(r.escaped_len(2), 2);
        assert_eq!(r.escaped_len(3), 4);
        assert_eq!(r.escaped_len(7), 9);
    }

    #[test]
    fn a_three_not_after_two_zeros_is_data() {
        let r = Rbsp::unescape(&[0, 3, 0, 0, 2, 3], usize::MAX);
        assert_eq!(r.data, [0, 3, 0, 0, 2, 3]);
        assert_eq!(Rbsp::unescape(&[0, 0, 3, 3], 3).data, [0, 0]);
    }
}
