//! Signed transform URLs: `?s=` is the keyring's HMAC over the canonical path, and
//! `?exp=…&s=…` over the path plus the expiry. The signature is found by its position
//! (the last parameter), never by searching and replacing in the URL.

use crate::kernel::error::AppError;

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
