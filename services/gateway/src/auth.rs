//! Password login and bearer tokens: HS256 JWTs with a short TTL, signed with the current
//! key and verified with it or a previous one during a rotation. Refresh tokens are not
//! built yet.

use argon2::{PasswordHash, PasswordVerifier};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The agent.
    pub sub: Uuid,
    pub tenant: Uuid,
    pub supervisor: bool,
    pub exp: u64,
}

/// The signing key, plus earlier keys still accepted while a rotation's tokens expire.
pub struct Keys {
    encoding: EncodingKey,
    /// The current key first, then the previous ones.
    decoding: Vec<DecodingKey>,
    pub ttl_secs: u64,
}

impl Keys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        Self::rotating(secret, &[], ttl_secs)
    }

    /// Signs with `secret`; verifies with `secret` or any of `previous`.
    pub fn rotating(secret: &[u8], previous: &[&[u8]], ttl_secs: u64) -> Self {
        let mut decoding = vec![DecodingKey::from_secret(secret)];
        decoding.extend(previous.iter().map(|p| DecodingKey::from_secret(p)));
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding,
            ttl_secs,
        }
    }

    pub fn issue(&self, agent: Uuid, tenant: Uuid, supervisor: bool) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = jsonwebtoken::get_current_timestamp() + self.ttl_secs;
        encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: agent,
                tenant,
                supervisor,
                exp,
            },
            &self.encoding,
        )
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        self.decoding
            .iter()
            .find_map(|key| decode::<Claims>(token, key, &v).ok())
            .map(|d| d.claims)
    }
}

/// Checks a password against its stored argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same argon2 work as [`verify_password`] when there is no account to check
/// (unknown tenant or e-mail), so response times do not reveal which accounts exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| atende_session::admin::hash_password("atende: no such agent").unwrap_or_default());
    let _ = verify_password(password, &DUMMY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_key_and_not_with_another() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 60);
        let (a, t) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(a, t, false).unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, a);
        let other = Keys::new(b"fedcba9876543210fedcba9876543210", 60);
        assert!(other.verify(&token).is_none());
        assert!(keys.verify("not-a-token").is_none());
    }

    #[test]
    fn during_a_rotation_tokens_of_the_previous_key_still_verify_and_new_ones_use_the_new_key() {
        let (old, new) = (b"0123456789abcdef0123456789abcdef", b"fedcba9876543210fedcba9876543210");
        let issued_before = Keys::new(old, 60).issue(Uuid::new_v4(), Uuid::new_v4(), false).unwrap();
        let rotating = Keys::rotating(new, &[old], 60);
        assert!(rotating.verify(&issued_before).is_some());
        let issued_after = rotating.issue(Uuid::new_v4(), Uuid::new_v4(), false).unwrap();
        assert!(Keys::new(new, 60).verify(&issued_after).is_some());
        assert!(Keys::new(old, 60).verify(&issued_after).is_none());
        // Once the previous key is removed, its tokens are refused.
        assert!(Keys::new(new, 60).verify(&issued_before).is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 0);
        let claims = Claims {
            sub: Uuid::new_v4(),
            tenant: Uuid::new_v4(),
            supervisor: false,
            exp: 1,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_none());
    }
}
