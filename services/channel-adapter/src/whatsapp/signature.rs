//! `X-Hub-Signature-256` verification for Meta webhooks.
//!
//! The webhook URL is public, so this check is the only thing separating Meta's events from
//! anyone's. It must run over the **raw bytes** as received: Meta signs its own serialisation
//! (compact, non-ASCII as `\uXXXX`, `/` as `\/`), and any re-encoding of the JSON changes the
//! bytes and breaks the signature. The comparison is constant-time (`Mac::verify_slice`) so the
//! response time leaks nothing about how many leading bytes of a forged signature were right.

use atende_domain::error::ErrorCode;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs with. Header names are case-insensitive; this is Meta's spelling.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &str = "sha256=";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header is not sha256=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
    /// An empty secret would make every signature forgeable; refuse rather than "verify".
    #[error("app secret not configured")]
    NoSecret,
}

impl SignatureError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SignatureError::NoSecret => ErrorCode::Internal,
            _ => ErrorCode::InvalidSignature,
        }
    }
}

/// Checks `header` (the `X-Hub-Signature-256` value, `sha256=<hex>`) against
/// HMAC-SHA256(`app_secret`, `raw_body`).
pub fn verify_signature(app_secret: &[u8], raw_body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let hex_digest = header.strip_prefix(PREFIX).ok_or(SignatureError::Malformed)?;
    // Length first so a wrong-length value is "malformed", not a mismatch; the length of a
    // SHA-256 digest is public, so this leaks nothing.
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).map_err(|_| SignatureError::NoSecret)?;
    mac.update(raw_body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a1b2c3d4e5f6";

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_known_vector_verifies() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC-style test vector.
        let header = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        assert_eq!(
            verify_signature(b"key", b"The quick brown fox jumps over the lazy dog", Some(header)),
            Ok(())
        );
    }

    #[test]
    fn a_body_with_escaped_emoji_verifies_only_as_sent() {
        let raw = br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"reaction":{"emoji":"\ud83d\ude2e"}}]}}]}]}"#;
        let header = sign(SECRET, raw);
        assert_eq!(verify_signature(SECRET, raw, Some(&header)), Ok(()));

        // The same JSON re-serialised (emoji as raw UTF-8) is a different byte string.
        let reencoded = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(raw).unwrap()).unwrap();
        assert_ne!(reencoded.as_slice(), raw.as_slice());
        assert_eq!(
            verify_signature(SECRET, &reencoded, Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_fixture_bodies_verify_byte_for_byte() {
        let raw = include_bytes!("../../tests/fixtures/whatsapp/reaction.json");
        assert_eq!(verify_signature(SECRET, raw, Some(&sign(SECRET, raw))), Ok(()));
    }

    #[test]
    fn uppercase_hex_is_the_same_digest() {
        let header = sign(SECRET, b"x").to_uppercase().replacen("SHA256=", "sha256=", 1);
        assert_eq!(verify_signature(SECRET, b"x", Some(&header)), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_tampered_body_is_a_mismatch() {
        let header = sign(SECRET, b"body");
        assert_eq!(
            verify_signature(b"other", b"body", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, b"body ", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(SignatureError::Mismatch.code(), ErrorCode::InvalidSignature);
    }

    #[test]
    fn missing_and_garbled_headers_are_refused() {
        let good = sign(SECRET, b"b");
        assert_eq!(verify_signature(SECRET, b"b", None), Err(SignatureError::Missing));
        assert_eq!(verify_signature(SECRET, b"b", Some("  ")), Err(SignatureError::Missing));
        for bad in [
            good.trim_start_matches("sha256=").to_owned(), // no prefix
            good.replacen("sha256=", "sha1=", 1),
            format!("{good}00"),
            good[..good.len() - 2].to_owned(),
            format!("sha256={}", "zz".repeat(32)),
            "sha256=".to_owned(),
        ] {
            assert_eq!(
                verify_signature(SECRET, b"b", Some(&bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        let header = sign(b"", b"b");
        assert_eq!(
            verify_signature(b"", b"b", Some(&header)),
            Err(SignatureError::NoSecret)
        );
    }
}
