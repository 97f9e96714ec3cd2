//! The HMAC keyring behind every signed URL (transforms, playback tokens): HMAC-SHA256,
//! base64url without padding. The first key signs and every key verifies (rotation), and
//! verification is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub struct Keyring {
    keys: Vec<Vec<u8>>,
    /// Whether keys were configured (then every transform URL must be signed).
    pub configured: bool,
}

impl Keyring {
    /// `configured` keys sign and verify; without any, `fallback` (a key generated into the
    /// data dir) still signs the expiring URLs owners mint.
    pub fn new(configured: Vec<Vec<u8>>, fallback: Vec<u8>) -> Keyring {
        let is_configured = !configured.is_empty();
        let keys = if is_configured {
            configured
        } else {
            vec![fallback]
        };
        Keyring {
            keys,
            configured: is_configured,
        }
    }

    fn mac(key: &[u8]) -> HmacSha256 {
        HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, message: &str) -> String {
        let mut mac = Self::mac(&self.keys[0]);
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn verify(&self, message: &str, signature: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.keys.iter().any(|key| {
            let mut mac = Self::mac(key);
            mac.update(message.as_bytes());
            mac.verify_slice(&raw).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_any_active_key_and_only_for_their_message() {
        let old = Keyring::new(vec![b"old-key".to_vec()], vec![]);
        let rotated = Keyring::new(vec![b"new-key".to_vec(), b"old-key".to_vec()], vec![]);
        let sig = old.sign("/img/a/w_10.jpg");
        assert!(rotated.verify("/img/a/w_10.jpg", &sig));
        assert!(!rotated.verify("/img/a/w_11.jpg", &sig));
        assert!(!Keyring::new(vec![b"new-key".to_vec()], vec![]).verify("/img/a/w_10.jpg", &sig));
        assert!(!old.verify("/img/a/w_10.jpg", "not base64!"));
    }
}
