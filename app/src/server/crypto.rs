//! Secrets: the installation key, encryption of access tokens at rest (AES-256-GCM),
//! and hashing of the bearer secrets we only ever compare (API tokens, session ids).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The 32-byte installation key (`QONTAK_SECRET_KEY`).
pub struct SecretKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

/// Why a key or a ciphertext was refused.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("QONTAK_SECRET_KEY must be base64 of at least 32 bytes")]
    BadKey,
    #[error("ciphertext was made with key {0}, which is not the current key")]
    WrongKey(String),
    #[error("ciphertext is damaged or was not made with this key")]
    Damaged,
}

impl SecretKey {
    /// Decodes base64 (standard or URL-safe) of 32 or more bytes; the first 32 are the key.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let raw = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| CryptoError::BadKey)?;
        let bytes: [u8; 32] = raw
            .get(..32)
            .ok_or(CryptoError::BadKey)?
            .try_into()
            .map_err(|_| CryptoError::BadKey)?;
        let id = hex(&Sha256::digest(bytes)[..4]);
        Ok(Self { bytes, id })
    }

    /// A fresh random key, as base64.
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// A short public fingerprint of the key, stored beside each ciphertext.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts to `<key id>:<base64(nonce ‖ ciphertext)>`.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let cipher = Aes256Gcm::new((&self.bytes).into());
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{}:{}", self.id, STANDARD.encode(out))
    }

    /// Reverses [`SecretKey::encrypt`].
    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let (key_id, b64) = stored.split_once(':').ok_or(CryptoError::Damaged)?;
        if key_id != self.id {
            return Err(CryptoError::WrongKey(key_id.to_string()));
        }
        let raw = STANDARD.decode(b64).map_err(|_| CryptoError::Damaged)?;
        if raw.len() < 12 {
            return Err(CryptoError::Damaged);
        }
        let (nonce, ct) = raw.split_at(12);
        let cipher = Aes256Gcm::new((&self.bytes).into());
        let pt = cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Damaged)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Damaged)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a bearer secret, hex: what the database keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new random bearer secret with a recognisable prefix (`qtk_…` for API tokens).
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_round_trips_and_hides_the_plaintext() {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let stored = key.encrypt("EAAG-secret-token");
        assert!(!stored.contains("EAAG"));
        assert!(stored.starts_with(key.id()));
        assert_eq!(key.decrypt(&stored).unwrap(), "EAAG-secret-token");
        assert_ne!(
            stored,
            key.encrypt("EAAG-secret-token"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn another_key_or_a_flipped_byte_cannot_decrypt() {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let other = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let stored = key.encrypt("token");
        assert!(matches!(
            other.decrypt(&stored),
            Err(CryptoError::WrongKey(_))
        ));
        let (id, b64) = stored.split_once(':').unwrap();
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[14] ^= 1;
        assert!(matches!(
            key.decrypt(&format!("{id}:{}", STANDARD.encode(raw))),
            Err(CryptoError::Damaged)
        ));
    }

    #[test]
    fn short_or_garbled_keys_are_refused() {
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64 at all!").is_err());
        assert!(SecretKey::from_base64(&STANDARD.encode([7u8; 48])).is_ok());
    }

    #[test]
    fn secrets_are_random_and_hashes_stable() {
        let a = random_secret("qtk_");
        assert!(a.starts_with("qtk_") && a.len() > 40);
        assert_ne!(a, random_secret("qtk_"));
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
