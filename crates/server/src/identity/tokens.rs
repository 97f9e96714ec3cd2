//! Short-lived access tokens: JWTs signed with HS256 (pinned) under a key named by the
//! `kid` header. Several keys verify, one signs, so keys rotate without logging anyone
//! out. Each token names its session (`sid`), which is what revocation acts on.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::kernel::error::AppError;

const ISSUER: &str = "framehouse";
const AUDIENCE: &str = "framehouse-api";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// What a valid access token says.
#[derive(Clone, Debug)]
pub struct AccessClaims {
    pub user_id: String,
    pub session_id: String,
}

pub struct JwtKeys {
    signing_kid: String,
    encoding: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    pub ttl_secs: u64,
}

/// A key's public name: a keyed hash of the key, so it changes with the key and
/// reveals nothing about it.
pub fn key_id(secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"framehouse-jwt-kid");
    hex::encode(&mac.finalize().into_bytes()[..8])
}

impl JwtKeys {
    /// `current` signs; it and every `previous` key verify.
    pub fn new(current: &[u8], previous: &[Vec<u8>], ttl_secs: u64) -> JwtKeys {
        // Pin the algorithm: `none`, RS256/ES256 (HS/RS confusion) and other HMAC
        // variants are all refused before any signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let mut verifying = HashMap::new();
        for key in std::iter::once(current).chain(previous.iter().map(Vec::as_slice)) {
            verifying.insert(key_id(key), DecodingKey::from_secret(key));
        }
        JwtKeys {
            signing_kid: key_id(current),
            encoding: EncodingKey::from_secret(current),
            verifying,
            validation,
            ttl_secs,
        }
    }

    pub fn issue(&self, user_id: &str, session_id: &str) -> anyhow::Result<String> {
        let now = crate::kernel::time::now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, AppError> {
        let invalid = || AppError::unauthorized("invalid or expired access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or_else(invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|_| invalid())?;
        Ok(AccessClaims {
            user_id: data.claims.sub,
            session_id: data.claims.sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OLD: &[u8] = b"old-key-old-key-old-key-old-key!";

    fn forge(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
        let head = URL_SAFE_NO_PAD.encode(header.to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{head}.{body}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{head}.{body}.{sig}")
    }

    fn claims(exp: i64) -> serde_json::Value {
        serde_json::json!({"sub":"u1","sid":"s1","iss":ISSUER,"aud":AUDIENCE,"iat":0,"exp":exp})
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let keys = JwtKeys::new(KEY, &[], 60);
        let token = keys.issue("u1", "s1").unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.user_id.as_str(), claims.session_id.as_str()),
            ("u1", "s1")
        );
        let other = JwtKeys::new(b"another-secret-another-secret-!!", &[], 60);
        assert!(other.verify(&token).is_err());
        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());
    }

    #[test]
    fn rotated_keys_verify_old_tokens_and_sign_new_ones() {
        let before = JwtKeys::new(OLD, &[], 60);
        let old_token = before.issue("u1", "s1").unwrap();
        let after = JwtKeys::new(KEY, &[OLD.to_vec()], 60);
        assert!(after.verify(&old_token).is_ok());
        let new_token = after.issue("u1", "s1").unwrap();
        assert!(
            before.verify(&new_token).is_err(),
            "signed with the new key"
        );
        let dropped = JwtKeys::new(KEY, &[], 60);
        assert!(dropped.verify(&old_token).is_err());
    }

    #[test]
    fn expired_wrong_kid_and_missing_kid_tokens_are_refused() {
        let keys = JwtKeys::new(KEY, &[], 60);
        let kid = key_id(KEY);
        let far = 9_999_999_999;
        let good = forge(
            serde_json::json!({"alg":"HS256","kid":kid}),
            claims(far),
            KEY,
        );
        assert!(keys.verify(&good).is_ok(), "the forger itself is right");
        let expired = forge(
            serde_json::json!({"alg":"HS256","kid":kid}),
            claims(1000),
            KEY,
        );
        assert!(keys.verify(&expired).is_err());
        let wrong_kid = forge(
            serde_json::json!({"alg":"HS256","kid":"0000"}),
            claims(far),
            KEY,
        );
        assert!(keys.verify(&wrong_kid).is_err());
        let no_kid = forge(serde_json::json!({"alg":"HS256"}), claims(far), KEY);
        assert!(keys.verify(&no_kid).is_err());
    }

    #[test]
    fn alg_none_and_algorithm_confusion_are_refused() {
        let keys = JwtKeys::new(KEY, &[], 60);
        let kid = key_id(KEY);
        let far = 9_999_999_999;
        let head = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg":"none","kid":kid}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims(far).to_string());
        assert!(keys.verify(&format!("{head}.{body}.")).is_err());
        // RS256 in the header with an HMAC signature by the shared key: the classic
        // confusion where a verifier picks the algorithm from the token.
        let rs = forge(
            serde_json::json!({"alg":"RS256","kid":kid}),
            claims(far),
            KEY,
        );
        assert!(keys.verify(&rs).is_err());
        let hs512 = forge(
            serde_json::json!({"alg":"HS512","kid":kid}),
            claims(far),
            KEY,
        );
        assert!(keys.verify(&hs512).is_err());
    }
}
