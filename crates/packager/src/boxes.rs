//! The box helper: reserve the header, let a closure write the body, then patch the size.

use crate::{PackagerError, Result};

/// Writes a box: 32-bit size and four-character type, then the body, then patches the size.
/// A body larger than a 32-bit size allows is moved behind a 64-bit `largesize` header.
pub fn write_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(fourcc);
    body(out)?;
    let size = (out.len() - start) as u64;
    match u32::try_from(size) {
        Ok(s) => out[start..start + 4].copy_from_slice(&s.to_be_bytes()),
        Err(_) => {
            let large = size
                .checked_add(8)
                .ok_or_else(|| PackagerError::BoxTooLarge {
                    fourcc: String::from_utf8_lossy(fourcc).into_owned(),
                    size,
                })?;
            out[start..start + 4].copy_from_slice(&1u32.to_be_bytes());
            let at = start + 8;
            out.splice(at..at, large.to_be_bytes());
        }
    }
    Ok(())
}

/// Writes a full box: a box whose body starts with a version byte and 24 bits of flags.
pub fn write_full_box(
    out: &mut Vec<u8>,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    write_box(out, fourcc, |out| {
        out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(out)
    })
}

/// Big-endian writers for box fields.
pub trait Put {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn i32(&mut self, v: i32);
    fn u64(&mut self, v: u64);
    fn zeros(&mut self, n: usize);
}

impl Put for Vec<u8> {
    fn u8(&mut self, v: u8) {
        self.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn zeros(&mut self, n: usize) {
        self.resize(self.len() + n, 0);
    }
}

/// The 3x3 unity transformation matrix of `mvhd` and `tkhd`.
pub fn unity_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        out.u32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_patched() {
        let mut out = Vec::new();
        write_box(&mut out, b"moov", |o| {
            write_full_box(o, b"mvhd", 1, 0x000102, |o| {
                o.u32(7);
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 24, b'm', b'o', b'o', b'v', 0, 0, 0, 16, b'm', b'v', b'h', b'd', 1, 0, 1,
                2, 0, 0, 0, 7
            ]
        );
    }
}
