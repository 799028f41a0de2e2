//! Content keys at rest: wrapped with AES-256-GCM under a key-encryption key (KEK) from the
//! configuration. The title and key ID are the associated data, so a wrapped key copied to
//! another row does not unwrap.

use crate::util::{b64, random_bytes, unb64};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// The key-encryption key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Kek(Aes256Gcm);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Aes256Gcm::new(&bytes.into()))
    }

    fn aad(title: &str, kid: &str) -> Vec<u8> {
        format!("reel key v1|{title}|{kid}").into_bytes()
    }

    /// `base64url(nonce || ciphertext+tag)`.
    pub fn wrap(&self, title: &str, kid: &str, key: &[u8; 16]) -> String {
        let nonce = random_bytes::<12>();
        let aad = Self::aad(title, kid);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of 16 bytes cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        b64(&out)
    }

    /// The key, or `None` when the wrapped value was altered, moved or wrapped under another
    /// KEK. Every copy of the key this makes is zeroed when dropped.
    pub fn unwrap(&self, title: &str, kid: &str, wrapped: &str) -> Option<Zeroizing<[u8; 16]>> {
        let raw = unb64(wrapped)?;
        if raw.len() != 12 + 16 + 16 {
            return None;
        }
        let aad = Self::aad(title, kid);
        let key = Zeroizing::new(
            self.0
                .decrypt(
                    Nonce::from_slice(&raw[..12]),
                    Payload {
                        msg: &raw[12..],
                        aad: &aad,
                    },
                )
                .ok()?,
        );
        if key.len() != 16 {
            return None;
        }
        let mut out = Zeroizing::new([0u8; 16]);
        out.copy_from_slice(&key);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_refuses_moved_or_foreign_keys() {
        let kek = Kek::new([3; 32]);
        let w = kek.wrap("t1", "kid1", &[9; 16]);
        assert!(!w.contains(&b64(&[9; 16])));
        assert_eq!(kek.unwrap("t1", "kid1", &w).as_deref(), Some(&[9; 16]));
        assert_eq!(kek.unwrap("t2", "kid1", &w), None);
        assert_eq!(kek.unwrap("t1", "kid2", &w), None);
        assert_eq!(Kek::new([4; 32]).unwrap("t1", "kid1", &w), None);
        assert_eq!(kek.unwrap("t1", "kid1", "AAAA"), None);
    }
}
