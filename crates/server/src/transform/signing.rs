//! Signed transform URLs: `?s=` is HMAC-SHA256 (base64url) over the canonical path, and
//! `?exp=…&s=…` over the path plus the expiry. Several keys verify at once (rotation),
//! comparisons are constant-time, and the signature is found by its position (the last
//! parameter), never by searching and replacing in the URL.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AppError;

type HmacSha256 = Hmac<Sha256>;

pub struct Signer {
    keys: Vec<Vec<u8>>,
    /// Whether every `/img` URL must be signed (keys were configured).
    pub required: bool,
}

impl Signer {
    /// `configured` keys sign and verify; without any, `fallback` (a key generated into the
    /// data dir) still signs the expiring URLs owners mint, and unsigned URLs stay allowed.
    pub fn new(configured: Vec<Vec<u8>>, fallback: Vec<u8>) -> Signer {
        let required = !configured.is_empty();
        let keys = if required { configured } else { vec![fallback] };
        Signer { keys, required }
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

/// The signing parameters of a transform URL.
#[derive(Debug, Default, PartialEq)]
pub struct UrlSignature {
    pub exp: Option<i64>,
    pub sig: Option<String>,
}

/// Reads `[exp=N&]s=SIG` — in that order, each once, nothing else.
pub fn parse_query(raw: Option<&str>) -> Result<UrlSignature, AppError> {
    let mut out = UrlSignature::default();
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return Ok(out);
    };
    let pairs: Vec<&str> = raw.split('&').collect();
    for (i, pair) in pairs.iter().enumerate() {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let last = i + 1 == pairs.len();
        match key {
            "s" if last && out.sig.is_none() => out.sig = Some(value.to_string()),
            "s" => return Err(invalid_signature()),
            "exp" if i == 0 && !last => {
                let exp = value.parse::<i64>().map_err(|_| {
                    AppError::bad_request("invalid_query", "`exp` must be a Unix timestamp")
                })?;
                out.exp = Some(exp);
            }
            "exp" => {
                return Err(AppError::bad_request(
                    "invalid_query",
                    "`exp` must come first and be followed by `s`",
                ))
            }
            other => {
                return Err(AppError::bad_request(
                    "invalid_query",
                    format!("unexpected query parameter `{other}` (only exp and s)"),
                ))
            }
        }
    }
    Ok(out)
}

/// What is signed: the canonical path, plus the expiry when there is one.
pub fn message(media_id: &str, canonical_ops: &str, ext: &str, exp: Option<i64>) -> String {
    let ops = if canonical_ops.is_empty() {
        "_"
    } else {
        canonical_ops
    };
    match exp {
        Some(exp) => format!("/img/{media_id}/{ops}.{ext}?exp={exp}"),
        None => format!("/img/{media_id}/{ops}.{ext}"),
    }
}

pub fn invalid_signature() -> AppError {
    AppError::forbidden_code("invalid_signature", "the URL signature is missing or wrong")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_any_active_key_and_only_for_their_message() {
        let old = Signer::new(vec![b"old-key".to_vec()], vec![]);
        let rotated = Signer::new(vec![b"new-key".to_vec(), b"old-key".to_vec()], vec![]);
        let sig = old.sign("/img/a/w_10.jpg");
        assert!(rotated.verify("/img/a/w_10.jpg", &sig));
        assert!(!rotated.verify("/img/a/w_11.jpg", &sig));
        assert!(!Signer::new(vec![b"new-key".to_vec()], vec![]).verify("/img/a/w_10.jpg", &sig));
        assert!(!old.verify("/img/a/w_10.jpg", "not base64!"));
    }

    #[test]
    fn the_signature_is_the_last_parameter_and_appears_once() {
        assert_eq!(
            parse_query(Some("s=abc")).unwrap(),
            UrlSignature {
                exp: None,
                sig: Some("abc".into())
            }
        );
        assert_eq!(parse_query(Some("exp=5&s=abc")).unwrap().exp, Some(5));
        assert!(parse_query(Some("s=abc&s=abc")).is_err());
        assert!(parse_query(Some("s=abc&exp=5")).is_err());
        assert!(parse_query(Some("exp=5")).is_err());
        assert!(parse_query(Some("w=5&s=abc")).is_err());
        assert_eq!(parse_query(None).unwrap(), UrlSignature::default());
    }
}
