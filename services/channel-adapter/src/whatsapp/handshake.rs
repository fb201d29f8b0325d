//! Meta's webhook subscription handshake (`GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`).
//!
//! Meta proves the URL is ours by sending back the verify token we configured; we prove we
//! hold it by echoing the challenge. Anyone can call the URL, so the token comparison is
//! constant-time (over SHA-256 digests, which also hides the token's length), an unset token
//! refuses every handshake, and the echoed challenge is limited to a safe alphabet because it is
//! reflected verbatim into a response body.

use atende_domain::error::ErrorCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Meta's challenge is a decimal number; this is generous headroom.
const MAX_CHALLENGE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("hub.mode is not subscribe")]
    WrongMode,
    #[error("hub.verify_token does not match")]
    TokenMismatch,
    #[error("hub.challenge missing or not a plain token")]
    BadChallenge,
    #[error("verify token not configured")]
    NotConfigured,
}

impl HandshakeError {
    /// Meta expects `403` for a refused handshake; `NotConfigured` is our fault.
    pub fn code(&self) -> ErrorCode {
        match self {
            HandshakeError::NotConfigured => ErrorCode::Internal,
            _ => ErrorCode::PermissionDenied,
        }
    }
}

/// Returns the challenge to send back with `200` when `mode` is `subscribe` and `token` equals
/// `expected_token`.
pub fn verify_subscription(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, HandshakeError> {
    if expected_token.is_empty() {
        return Err(HandshakeError::NotConfigured);
    }
    if mode != Some("subscribe") {
        return Err(HandshakeError::WrongMode);
    }
    let given = Sha256::digest(token.unwrap_or_default().as_bytes());
    let expected = Sha256::digest(expected_token.as_bytes());
    if !bool::from(given.ct_eq(&expected)) || token.is_none() {
        return Err(HandshakeError::TokenMismatch);
    }
    let challenge = challenge.ok_or(HandshakeError::BadChallenge)?;
    let safe = !challenge.is_empty()
        && challenge.len() <= MAX_CHALLENGE_LEN
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        return Err(HandshakeError::BadChallenge);
    }
    Ok(challenge.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_subscribe_echoes_the_challenge() {
        let got = verify_subscription(Some("subscribe"), Some("s3cret"), Some("1158201444"), "s3cret");
        assert_eq!(got, Ok("1158201444".to_owned()));
    }

    #[test]
    fn a_wrong_or_missing_token_is_refused_with_403() {
        for token in [Some("s3cre"), Some("s3cret "), Some(""), None] {
            let err = verify_subscription(Some("subscribe"), token, Some("1"), "s3cret").unwrap_err();
            assert_eq!(err, HandshakeError::TokenMismatch, "{token:?}");
            assert_eq!(err.code().http_status(), 403);
        }
    }

    #[test]
    fn any_mode_but_subscribe_is_refused() {
        for mode in [None, Some("unsubscribe"), Some("Subscribe"), Some("")] {
            assert_eq!(
                verify_subscription(mode, Some("t"), Some("1"), "t"),
                Err(HandshakeError::WrongMode)
            );
        }
    }

    #[test]
    fn a_missing_or_unsafe_challenge_is_refused() {
        for challenge in [None, Some(""), Some("<script>"), Some("1 2")] {
            assert_eq!(
                verify_subscription(Some("subscribe"), Some("t"), challenge, "t"),
                Err(HandshakeError::BadChallenge),
                "{challenge:?}"
            );
        }
        let long = "9".repeat(MAX_CHALLENGE_LEN + 1);
        assert_eq!(
            verify_subscription(Some("subscribe"), Some("t"), Some(&long), "t"),
            Err(HandshakeError::BadChallenge)
        );
    }

    #[test]
    fn an_unconfigured_token_refuses_even_an_empty_one() {
        assert_eq!(
            verify_subscription(Some("subscribe"), Some(""), Some("1"), ""),
            Err(HandshakeError::NotConfigured)
        );
    }
}
