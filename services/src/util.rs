//! Small helpers: time, random ids, base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Milliseconds since 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails where the OS has no entropy source; nothing here can go on then.
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// A random identifier: 16 bytes, base64url (22 characters).
pub fn random_id() -> String {
    b64(&random_bytes::<16>())
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Refuses text with control characters (PostgreSQL cannot even store NUL), naming the field.
pub fn plain_text<'a>(field: &str, text: &'a str) -> crate::Result<&'a str> {
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(crate::ServiceError::BadRequest(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(text)
}
