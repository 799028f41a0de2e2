//! Signed, expiring tokens: `base64url(claims JSON) "." base64url(HMAC-SHA-256)`.
//!
//! Access tokens (who is signed in) and playback tokens (which title a playback session may
//! fetch) are signed with different keys derived from one secret, so neither can stand in
//! for the other.
//!
//! ```
//! use reel_services::tokens::{AccessClaims, Signer};
//! let signer = Signer::new([7u8; 32]);
//! let claims = AccessClaims { sub: "a1".into(), role: "viewer".into(), plan: "basic".into(), max_age: 18, exp: i64::MAX };
//! let token = signer.access(&claims);
//! assert_eq!(signer.verify_access(&token, 0).unwrap().sub, "a1");
//! assert!(signer.verify_playback(&token, 0).is_none());
//! ```

use crate::util::{b64, unb64};
use hmac::{Hmac, Mac};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Account id.
    pub sub: String,
    /// `viewer` or `admin`.
    pub role: String,
    /// Plan id.
    pub plan: String,
    /// The oldest minimum age the account may watch (maturity profile).
    pub max_age: i64,
    /// Expiry, Unix milliseconds.
    pub exp: i64,
}

/// Claims of a playback token: bound to one session, account and title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybackClaims {
    pub sid: String,
    pub sub: String,
    pub title: String,
    pub exp: i64,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct Signer {
    access: [u8; 32],
    playback: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

fn derive(secret: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

fn sign<T: Serialize>(key: &[u8; 32], claims: &T) -> String {
    let body = b64(&serde_json::to_vec(claims).expect("claims serialise"));
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    format!("{body}.{}", b64(&mac.finalize().into_bytes()))
}

fn verify<T: DeserializeOwned>(key: &[u8; 32], token: &str) -> Option<T> {
    if token.len() > 4096 {
        return None;
    }
    let (body, sig) = token.split_once('.')?;
    let sig = unb64(sig)?;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    mac.verify_slice(&sig).ok()?;
    serde_json::from_slice(&unb64(body)?).ok()
}

impl Signer {
    /// A signer from a 32-byte secret.
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            access: derive(&secret, "reel access token v1"),
            playback: derive(&secret, "reel playback token v1"),
        }
    }

    pub fn access(&self, claims: &AccessClaims) -> String {
        sign(&self.access, claims)
    }

    /// The claims of a valid, unexpired access token (`now` in Unix ms).
    pub fn verify_access(&self, token: &str, now: i64) -> Option<AccessClaims> {
        verify::<AccessClaims>(&self.access, token).filter(|c| c.exp > now)
    }

    pub fn playback(&self, claims: &PlaybackClaims) -> String {
        sign(&self.playback, claims)
    }

    pub fn verify_playback(&self, token: &str, now: i64) -> Option<PlaybackClaims> {
        verify::<PlaybackClaims>(&self.playback, token).filter(|c| c.exp > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: "acc".into(),
            role: "viewer".into(),
            plan: "basic".into(),
            max_age: 18,
            exp,
        }
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let s = Signer::new([1; 32]);
        let t = s.access(&claims(1000));
        assert!(s.verify_access(&t, 999).is_some());
        assert!(s.verify_access(&t, 1000).is_none(), "expired");
        // Another secret.
        assert!(Signer::new([2; 32]).verify_access(&t, 0).is_none());
        // Claims changed, signature kept: a raised role.
        let (_, sig) = t.split_once('.').unwrap();
        let mut forged = claims(1000);
        forged.role = "admin".into();
        let body = b64(&serde_json::to_vec(&forged).unwrap());
        assert!(s.verify_access(&format!("{body}.{sig}"), 0).is_none());
        // Garbage.
        for bad in ["", ".", "a.b", "....", &"x".repeat(5000)] {
            assert!(s.verify_access(bad, 0).is_none(), "{bad}");
        }
    }
}
