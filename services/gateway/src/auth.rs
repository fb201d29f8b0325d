//! Bearer tokens and opaque secrets.
//!
//! Access tokens are HS256 JWTs with a short TTL, signed with the current key and verified
//! with it or a previous one during a rotation; each names the session (`sid`) it belongs to.
//! Refresh tokens and WebSocket tickets are opaque random secrets of which only the SHA-256
//! is stored, so neither the database nor Redis holds anything a client could present.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The agent.
    pub sub: Uuid,
    pub tenant: Uuid,
    pub supervisor: bool,
    /// What the agent may do beyond his own conversations: `in_person` (register in-person
    /// attendances), `bulk` (act on many conversations at once).
    #[serde(default)]
    pub perms: Vec<String>,
    /// The session (refresh-token family) the token was issued for; logout revokes it.
    pub sid: Uuid,
    pub exp: u64,
}

impl Claims {
    pub fn may(&self, perm: &str) -> bool {
        self.perms.iter().any(|p| p == perm)
    }

    /// PERMISSION_DENIED unless the token carries `perm`.
    pub fn require(&self, perm: &str) -> Result<(), atende_runtime::http_api::ErrorResponse> {
        if self.may(perm) {
            Ok(())
        } else {
            Err(atende_runtime::http_api::error(
                atende_domain::ErrorCode::PermissionDenied,
                &format!("needs the {perm} permission"),
            ))
        }
    }

    /// PERMISSION_DENIED unless the token is a supervisor's.
    pub fn require_supervisor(&self) -> Result<(), atende_runtime::http_api::ErrorResponse> {
        if self.supervisor {
            Ok(())
        } else {
            Err(atende_runtime::http_api::error(
                atende_domain::ErrorCode::PermissionDenied,
                "supervisors only",
            ))
        }
    }
}

/// `admin`, `supervisor` or `agent`, as the login answer names it.
pub fn role(a: &atende_store::admin::Agent) -> &'static str {
    if a.admin {
        "admin"
    } else if a.supervisor {
        "supervisor"
    } else {
        "agent"
    }
}

/// The permissions of an agent's tokens, from his record: `in_person` (register in-person
/// attendances), `bulk` (bulk transfers and finishes, with supervision) and `admin` (manage
/// the tenant's agents and services).
pub fn permissions(a: &atende_store::admin::Agent) -> Vec<String> {
    let mut perms = Vec::new();
    if a.can_attend_in_person {
        perms.push("in_person".to_string());
    }
    if a.supervises() {
        perms.push("bulk".to_string());
    }
    if a.admin {
        perms.push("admin".to_string());
    }
    perms
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

    pub fn issue(
        &self,
        agent: Uuid,
        tenant: Uuid,
        supervisor: bool,
        perms: Vec<String>,
        sid: Uuid,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = jsonwebtoken::get_current_timestamp() + self.ttl_secs;
        encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: agent,
                tenant,
                supervisor,
                perms,
                sid,
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

/// An opaque secret for a client (a refresh token or a WebSocket ticket): 256 random bits
/// from the OS, hex-encoded, and the SHA-256 that is stored in its place.
pub struct Opaque {
    pub secret: String,
    pub digest: [u8; 32],
}

impl Opaque {
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let digest = Self::digest_of(&secret);
        Self { secret, digest }
    }

    /// The digest a presented secret is looked up by.
    pub fn digest_of(presented: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(presented.trim().as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_key_and_not_with_another() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 60);
        let (a, t) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(a, t, false, Vec::new(), Uuid::new_v4()).unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, a);
        let other = Keys::new(b"fedcba9876543210fedcba9876543210", 60);
        assert!(other.verify(&token).is_none());
        assert!(keys.verify("not-a-token").is_none());
    }

    #[test]
    fn during_a_rotation_tokens_of_the_previous_key_still_verify_and_new_ones_use_the_new_key() {
        let (old, new) = (b"0123456789abcdef0123456789abcdef", b"fedcba9876543210fedcba9876543210");
        let issued_before = Keys::new(old, 60)
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, Vec::new(), Uuid::new_v4())
            .unwrap();
        let rotating = Keys::rotating(new, &[old], 60);
        assert!(rotating.verify(&issued_before).is_some());
        let issued_after = rotating
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, Vec::new(), Uuid::new_v4())
            .unwrap();
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
            perms: Vec::new(),
            sid: Uuid::new_v4(),
            exp: 1,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn opaque_secrets_are_distinct_and_found_by_their_digest() {
        let (a, b) = (Opaque::generate(), Opaque::generate());
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 64, "256 bits");
        assert_eq!(Opaque::digest_of(&a.secret), a.digest);
        assert_ne!(Opaque::digest_of(&b.secret), a.digest);
    }
}
