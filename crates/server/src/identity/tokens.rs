//! Short-lived access tokens (JWT, HS256 pinned) and the request extractors built on them.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::AppState;

const ISSUER: &str = "framehouse";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    adm: bool,
    iss: String,
    iat: i64,
    exp: i64,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl_secs: u64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> JwtKeys {
        // Pin the algorithm: tokens claiming `none` or an asymmetric algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    pub fn issue(&self, user_id: &str, is_admin: bool) -> anyhow::Result<String> {
        let now = crate::db::now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            adm: is_admin,
            iss: ISSUER.into(),
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::unauthorized("invalid or expired access token"))?;
        Ok(Caller {
            user_id: data.claims.sub,
            is_admin: data.claims.adm,
        })
    }
}

/// An authenticated user. As an extractor it answers 401 when no valid token is sent.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
    pub is_admin: bool,
}

/// The caller if a token was sent, else anonymous. A token that is sent but invalid is
/// still a 401: a client with a broken token should hear so, not be served as anonymous.
#[derive(Clone, Debug)]
pub struct Viewer(pub Option<Caller>);

fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::unauthorized("malformed Authorization"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AppError::unauthorized(
            "expected `Authorization: Bearer <token>`",
        )),
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match bearer(parts)? {
            Some(token) => Ok(Viewer(Some(state.jwt.verify(token)?))),
            None => Ok(Viewer(None)),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Viewer::from_request_parts(parts, state)
            .await?
            .0
            .ok_or_else(|| {
                AppError::unauthorized("sign in first: send `Authorization: Bearer <token>`")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = keys.issue("u1", true).unwrap();
        let caller = keys.verify(&token).unwrap();
        assert_eq!(caller.user_id, "u1");
        assert!(caller.is_admin);
        let other = JwtKeys::new(b"another-secret-another-secret-!!", 60);
        assert!(other.verify(&token).is_err());
        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());
    }

    #[test]
    fn alg_none_tokens_are_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        // {"alg":"none","typ":"JWT"} . {"sub":"u1","adm":true,"iss":"framehouse","iat":0,"exp":9999999999} .
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImFkbSI6dHJ1ZSwiaXNzIjoiZnJhbWVob3VzZSIsImlhdCI6MCwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(keys.verify(token).is_err());
    }
}
