//! Secrets at rest: envelope encryption of provider credentials.
//!
//! Each secret gets a fresh 256-bit data key; the secret is sealed with it (AES-256-GCM), and
//! the data key is sealed with a key-encryption key from configuration (`crypto.keys`), whose
//! id is stored beside the ciphertext. Rotating means adding a key and making it active: what
//! older keys sealed still opens while they stay configured, and `atende reseal-secrets`
//! re-seals every stored secret with the active key so the old one can be removed.
//!
//! Stored form (text, one column per secret):
//! `sealed:v1:<key id>:<hex(nonce ‖ sealed data key)>:<hex(nonce ‖ sealed secret)>`.
//! The key id and the column's purpose are bound as associated data, so a ciphertext moved to
//! another column or relabelled with another key id does not open.

use std::collections::HashMap;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

const PREFIX: &str = "sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no configured key `{0}`: keep a rotated-out key configured until `atende reseal-secrets` ran")]
    UnknownKey(String),
    #[error("the stored secret is not in the sealed format")]
    Format,
    #[error("the stored secret does not open with its key (wrong key or tampered)")]
    Open,
    #[error("the system random source failed")]
    Random,
}

/// A secret as stored: opaque until opened with the [`Keyring`]. Its `Debug` names only the key.
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// The id of the key that sealed it (`None` for a value stored before sealing existed).
    pub fn key_id(&self) -> Option<&str> {
        self.0.strip_prefix(PREFIX).and_then(|r| r.split(':').next())
    }

    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({})", self.key_id().unwrap_or("legacy plaintext"))
    }
}

/// What a sealed value is for; bound into the ciphertext.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    AppSecret,
    VerifyToken,
    AccessToken,
    SmtpPassword,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::AppSecret => b"channels.app_secret",
            Purpose::VerifyToken => b"channels.verify_token",
            Purpose::AccessToken => b"channels.access_token",
            Purpose::SmtpPassword => b"tenants.mail_password",
        }
    }
}

/// The key-encryption keys by id, and which one seals new secrets.
pub struct Keyring {
    active: String,
    keys: HashMap<String, LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        write!(f, "Keyring(active: {}, keys: {ids:?})", self.active)
    }
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    // AES-256 takes any 32 bytes; `new` fails only on a wrong length.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"))
}

fn aad(key_id: &str, purpose: Purpose) -> Vec<u8> {
    [purpose.label(), b"|", key_id.as_bytes()].concat()
}

impl Keyring {
    /// `keys` by id (32 bytes each); `active` must be one of them.
    pub fn new(active: &str, keys: Vec<(String, [u8; 32])>) -> Result<Keyring, SealError> {
        let keys: HashMap<_, _> = keys.into_iter().map(|(id, k)| (id, aead_key(&k))).collect();
        if !keys.contains_key(active) {
            return Err(SealError::UnknownKey(active.to_string()));
        }
        Ok(Keyring {
            active: active.to_string(),
            keys,
            random: SystemRandom::new(),
        })
    }

    pub fn active_key(&self) -> &str {
        &self.active
    }

    fn seal_with(&self, key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Random)?;
        Ok([nonce.as_slice(), &buf].concat())
    }

    fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Format);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Format)?;
        let mut buf = body.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    /// Seals `secret` under a fresh data key wrapped by the active key.
    pub fn seal(&self, purpose: Purpose, secret: &str) -> Result<Sealed, SealError> {
        let kek = &self.keys[&self.active];
        let aad = aad(&self.active, purpose);
        let mut dek = [0u8; 32];
        self.random.fill(&mut dek).map_err(|_| SealError::Random)?;
        let wrapped = self.seal_with(kek, &aad, &dek)?;
        let body = self.seal_with(&aead_key(&dek), &aad, secret.as_bytes())?;
        Ok(Sealed(format!(
            "{PREFIX}{}:{}:{}",
            self.active,
            hex::encode(wrapped),
            hex::encode(body)
        )))
    }

    /// Opens what [`Keyring::seal`] stored. A value from before sealing existed (no prefix)
    /// is returned as it is, with a warning: `atende reseal-secrets` seals those.
    pub fn open(&self, purpose: Purpose, sealed: &Sealed) -> Result<SecretString, SealError> {
        let Some(rest) = sealed.0.strip_prefix(PREFIX) else {
            tracing::warn!(purpose = ?purpose, "a secret is stored in plaintext; run `atende reseal-secrets`");
            return Ok(SecretString::from(sealed.0.clone()));
        };
        let mut parts = rest.split(':');
        let (Some(key_id), Some(wrapped), Some(body), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Format);
        };
        let kek = self
            .keys
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        let aad = aad(key_id, purpose);
        let wrapped = hex::decode(wrapped).map_err(|_| SealError::Format)?;
        let dek: [u8; 32] = Self::open_with(kek, &aad, &wrapped)?
            .try_into()
            .map_err(|_| SealError::Format)?;
        let body = hex::decode(body).map_err(|_| SealError::Format)?;
        let plain = Self::open_with(&aead_key(&dek), &aad, &body)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SealError::Format)
    }

    /// True when `sealed` should be re-sealed: plaintext, or sealed by a key that is not active.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id() != Some(self.active.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ring(active: &str) -> Keyring {
        Keyring::new(active, vec![("k1".into(), [1u8; 32]), ("k2".into(), [2u8; 32])]).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_to_itself_and_shows_nothing_of_it() {
        let k = ring("k1");
        let sealed = k.seal(Purpose::AccessToken, "EAAG-very-secret").unwrap();
        assert!(!sealed.as_stored().contains("EAAG"));
        assert!(!format!("{sealed:?}").contains("EAAG"));
        assert_eq!(sealed.key_id(), Some("k1"));
        assert_eq!(
            k.open(Purpose::AccessToken, &sealed).unwrap().expose_secret(),
            "EAAG-very-secret"
        );
        // Fresh data key and nonces: the same secret never seals to the same text.
        assert_ne!(sealed, k.seal(Purpose::AccessToken, "EAAG-very-secret").unwrap());
    }

    #[test]
    fn after_a_rotation_old_secrets_still_open_and_need_resealing() {
        let sealed_by_k1 = ring("k1").seal(Purpose::AppSecret, "s").unwrap();
        let rotated = ring("k2");
        assert_eq!(
            rotated.open(Purpose::AppSecret, &sealed_by_k1).unwrap().expose_secret(),
            "s"
        );
        assert!(rotated.needs_reseal(&sealed_by_k1));
        assert!(!rotated.needs_reseal(&rotated.seal(Purpose::AppSecret, "s").unwrap()));
        let without_k1 = Keyring::new("k2", vec![("k2".into(), [2u8; 32])]).unwrap();
        assert!(matches!(
            without_k1.open(Purpose::AppSecret, &sealed_by_k1),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_tampered_moved_or_relabelled_ciphertext_does_not_open() {
        let k = ring("k1");
        let sealed = k.seal(Purpose::AppSecret, "secret").unwrap();
        assert!(matches!(k.open(Purpose::AccessToken, &sealed), Err(SealError::Open)));
        let relabelled = Sealed(sealed.0.replacen("sealed:v1:k1:", "sealed:v1:k2:", 1));
        assert!(matches!(k.open(Purpose::AppSecret, &relabelled), Err(SealError::Open)));
        let mut bytes = sealed.0.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        let tampered = Sealed(String::from_utf8(bytes).unwrap());
        assert!(matches!(k.open(Purpose::AppSecret, &tampered), Err(SealError::Open)));
        assert!(matches!(
            k.open(Purpose::AppSecret, &Sealed("sealed:v1:k1:zz".into())),
            Err(SealError::Format)
        ));
    }

    #[test]
    fn a_keyring_needs_its_active_key() {
        assert!(matches!(
            Keyring::new("k9", vec![("k1".into(), [1u8; 32])]),
            Err(SealError::UnknownKey(_))
        ));
    }
}
