//! Agents' passwords: argon2id PHC strings. Hashing lives here, beside every role, so the
//! session role (which creates agents) and the gateway (which logs them in) share it without
//! one service importing another.

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::{PasswordHash, PasswordVerifier};

/// Argon2id with a random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same argon2 work as [`verify`] when there is no account to check (unknown
/// tenant or e-mail), so response times do not reveal which accounts exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash("atende: no such agent").unwrap_or_default());
    let _ = verify(password, &DUMMY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horse ", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        assert_ne!(hash("correct horse").unwrap(), phc, "each hash has its own salt");
    }
}
