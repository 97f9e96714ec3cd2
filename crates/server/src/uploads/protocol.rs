//! The tus 1.0 wire format: the request headers it defines (parsed strictly, each
//! mistake a 400 naming the header), the checksum algorithms, and the headers every
//! answer carries.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::kernel::error::AppError;
use crate::media::Visibility;

pub const TUS_VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,\
checksum,checksum-trailer,termination,concatenation";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256,md5";
/// The only body type a PATCH (or a creation with upload) may have.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// The headers a browser may read from a tus answer across origins.
pub const EXPOSED: &str = "Location, Upload-Offset, Upload-Length, Upload-Defer-Length, \
Upload-Metadata, Upload-Expires, Upload-Concat, Tus-Resumable, Tus-Version, Tus-Extension, \
Tus-Max-Size, Tus-Checksum-Algorithm, Framehouse-Media-Id";

/// Adds `Tus-Resumable` (and on 412 `Tus-Version`) to an answer, error or not.
pub fn answer(result: Result<Response, AppError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if response.status() == StatusCode::PRECONDITION_FAILED {
        response
            .headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|v| Some(v.trim())).map_err(|_| {
            AppError::bad_request("invalid_tus_header", format!("{name} is not ASCII"))
        }),
    }
}

/// 412 unless the client speaks the version this server does.
pub fn check_version(headers: &HeaderMap) -> Result<(), AppError> {
    match header(headers, "tus-resumable")? {
        Some(TUS_VERSION) => Ok(()),
        other => Err(AppError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
            format!(
                "Tus-Resumable must be {TUS_VERSION} (got {})",
                other.unwrap_or("nothing")
            ),
        )),
    }
}

/// 415 unless the body is `application/offset+octet-stream`.
pub fn check_body_type(headers: &HeaderMap) -> Result<(), AppError> {
    let ok = header(headers, "content-type")?
        .is_some_and(|v| v.eq_ignore_ascii_case(OFFSET_OCTET_STREAM));
    if ok {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_content_type",
        format!("the body must be {OFFSET_OCTET_STREAM}"),
    ))
}

/// A non-negative integer header (`Upload-Length`, `Upload-Offset`).
pub fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, AppError> {
    let Some(text) = header(headers, name)? else {
        return Ok(None);
    };
    let valid = !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit());
    match valid.then(|| text.parse::<u64>().ok()).flatten() {
        Some(n) if n <= i64::MAX as u64 => Ok(Some(n)),
        _ => Err(AppError::bad_request(
            "invalid_tus_header",
            format!("{name} must be a non-negative integer"),
        )),
    }
}

/// `Upload-Defer-Length`: absent, or exactly `1`.
pub fn defers_length(headers: &HeaderMap) -> Result<bool, AppError> {
    match header(headers, "upload-defer-length")? {
        None => Ok(false),
        Some("1") => Ok(true),
        Some(_) => Err(AppError::bad_request(
            "invalid_tus_header",
            "Upload-Defer-Length must be 1",
        )),
    }
}

/// What an upload's `Upload-Metadata` says about the item it will become. Unknown keys
/// are ignored (clients add their own); known ones must be UTF-8.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filetype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be
/// absent). 400 on bad base64, an empty or repeated key, or more than `max` bytes.
pub fn metadata(headers: &HeaderMap, max: usize) -> Result<(Metadata, Option<String>), AppError> {
    let Some(text) = header(headers, "upload-metadata")? else {
        return Ok((Metadata::default(), None));
    };
    if text.len() > max {
        return Err(AppError::bad_request(
            "metadata_too_large",
            format!("Upload-Metadata is longer than {max} bytes"),
        ));
    }
    let bad = |why: String| AppError::bad_request("invalid_metadata", why);
    let mut meta = Metadata::default();
    let mut seen = std::collections::HashSet::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = pair.split(' ').filter(|w| !w.is_empty());
        let key = words.next().unwrap_or_default();
        let encoded = words.next();
        if words.next().is_some() || !seen.insert(key.to_string()) {
            return Err(bad(format!(
                "the Upload-Metadata pair `{pair}` is malformed"
            )));
        }
        let value = match encoded {
            None => None,
            Some(v) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| bad(format!("the value of `{key}` is not base64")))?,
            ),
        };
        let text = |value: Option<Vec<u8>>| -> Result<Option<String>, AppError> {
            value
                .map(|v| String::from_utf8(v).map_err(|_| bad(format!("`{key}` is not UTF-8"))))
                .transpose()
        };
        match key {
            "filename" | "name" => meta.filename = text(value)?,
            "filetype" | "type" => meta.filetype = text(value)?,
            "title" => meta.title = text(value)?,
            "description" => meta.description = text(value)?,
            "tags" => meta.tags = text(value)?,
            "watermark" => meta.watermark = text(value)?,
            "visibility" => {
                meta.visibility = match text(value)?.as_deref() {
                    None => None,
                    Some(v) => Some(serde_json::from_value(v.into()).map_err(|_| {
                        AppError::unprocessable(
                            "invalid_visibility",
                            "visibility must be private, friends, unlisted or public",
                        )
                    })?),
                }
            }
            _ => {}
        }
    }
    Ok((meta, Some(text.to_string())))
}

/// `Upload-Concat`: `partial`, or `final;` followed by the URLs of the partial uploads
/// (absolute or paths), given here as their upload ids.
pub enum Concat {
    Partial,
    Final(Vec<String>),
}

pub fn concat(headers: &HeaderMap) -> Result<Option<Concat>, AppError> {
    let Some(text) = header(headers, "upload-concat")? else {
        return Ok(None);
    };
    if text == "partial" {
        return Ok(Some(Concat::Partial));
    }
    let bad = || {
        AppError::bad_request(
            "invalid_concat",
            "Upload-Concat must be `partial` or `final;` and the URLs of partial uploads",
        )
    };
    let urls = text.strip_prefix("final;").ok_or_else(bad)?;
    let ids: Vec<String> = urls
        .split(' ')
        .filter(|u| !u.is_empty())
        .map(|u| {
            let path = u.split(['?', '#']).next().unwrap_or_default();
            let id = path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            let under = path.trim_end_matches('/').trim_end_matches(id);
            if under.ends_with("/api/v1/uploads/") && !id.is_empty() {
                Ok(id.to_string())
            } else {
                Err(bad())
            }
        })
        .collect::<Result<_, _>>()?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(bad());
    }
    Ok(Some(Concat::Final(ids)))
}

/// A digest being computed over a request body, to compare with `Upload-Checksum`.
#[derive(Clone)]
pub enum BodyDigest {
    Sha1(Sha1),
    Sha256(Sha256),
    Md5(Md5),
}

impl BodyDigest {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            BodyDigest::Sha1(h) => h.update(bytes),
            BodyDigest::Sha256(h) => h.update(bytes),
            BodyDigest::Md5(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            BodyDigest::Sha1(h) => h.finalize().to_vec(),
            BodyDigest::Sha256(h) => h.finalize().to_vec(),
            BodyDigest::Md5(h) => h.finalize().to_vec(),
        }
    }
}

/// A parsed `Upload-Checksum`: the algorithm's running digest and the expected value.
pub struct Checksum {
    pub digest: BodyDigest,
    expected: Vec<u8>,
}

impl Checksum {
    /// From the header's (or trailer's) value `algorithm base64digest`; 400 on an
    /// algorithm not offered or a malformed value.
    pub fn parse(value: &HeaderValue) -> Result<Checksum, AppError> {
        let text = value.to_str().map_err(|_| {
            AppError::bad_request("invalid_checksum", "Upload-Checksum is not ASCII")
        })?;
        let (algorithm, encoded) = text.trim().split_once(' ').ok_or_else(|| {
            AppError::bad_request(
                "invalid_checksum",
                "Upload-Checksum must be `algorithm base64digest`",
            )
        })?;
        let digest = match algorithm {
            "sha1" => BodyDigest::Sha1(Sha1::new()),
            "sha256" => BodyDigest::Sha256(Sha256::new()),
            "md5" => BodyDigest::Md5(Md5::new()),
            other => {
                return Err(AppError::bad_request(
                    "unsupported_checksum",
                    format!("checksum algorithm `{other}` is not one of {CHECKSUM_ALGORITHMS}"),
                ))
            }
        };
        let expected = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| {
                AppError::bad_request(
                    "invalid_checksum",
                    "the Upload-Checksum digest is not base64",
                )
            })?;
        Ok(Checksum { digest, expected })
    }

    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Checksum>, AppError> {
        headers
            .get("upload-checksum")
            .map(Checksum::parse)
            .transpose()
    }

    /// Whether the body had the expected digest; 460 when it did not.
    pub fn verify(self, digest: BodyDigest) -> Result<(), AppError> {
        let actual = digest.finish();
        if subtle::ConstantTimeEq::ct_eq(actual.as_slice(), self.expected.as_slice()).into() {
            return Ok(());
        }
        Err(AppError::new(
            StatusCode::from_u16(460).expect("460 is a valid status"),
            "checksum_mismatch",
            "the body does not match Upload-Checksum; nothing of it was kept",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn metadata_decodes_known_keys_and_ignores_others() {
        let h = headers(&[(
            "upload-metadata",
            "filename Y2F0LmpwZw==,title SGVsbG8=,relativePath,visibility cHVibGlj,x eA==",
        )]);
        let (meta, raw) = metadata(&h, 4096).unwrap();
        assert_eq!(meta.filename.as_deref(), Some("cat.jpg"));
        assert_eq!(meta.title.as_deref(), Some("Hello"));
        assert_eq!(meta.visibility, Some(Visibility::Public));
        assert!(raw.is_some());
    }

    #[test]
    fn metadata_with_bad_base64_or_repeated_keys_is_refused() {
        for bad in ["filename ***", "a YQ==,a YQ==", "a YQ== YQ=="] {
            let h = headers(&[("upload-metadata", bad)]);
            assert!(metadata(&h, 4096).is_err(), "{bad}");
        }
        let h = headers(&[("upload-metadata", "a YQ==")]);
        assert!(metadata(&h, 3).is_err());
    }

    #[test]
    fn numbers_are_strict() {
        for bad in ["-1", "1.0", "", "0x10", "99999999999999999999"] {
            assert!(number(&headers(&[("upload-length", bad)]), "upload-length").is_err());
        }
        assert_eq!(
            number(&headers(&[("upload-length", "42")]), "upload-length").unwrap(),
            Some(42)
        );
    }

    #[test]
    fn final_concat_lists_partial_ids() {
        let h = headers(&[(
            "upload-concat",
            "final;http://x/api/v1/uploads/a /api/v1/uploads/b",
        )]);
        match concat(&h).unwrap() {
            Some(Concat::Final(ids)) => assert_eq!(ids, ["a", "b"]),
            _ => panic!("not final"),
        }
        let h = headers(&[("upload-concat", "final;http://x/elsewhere/a")]);
        assert!(concat(&h).is_err());
    }

    #[test]
    fn checksums_verify_and_mismatch_is_460() {
        let sha1_of_abc = "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=";
        let c = Checksum::parse(&HeaderValue::from_str(&format!("sha1 {sha1_of_abc}")).unwrap())
            .unwrap();
        let mut d = c.digest.clone();
        d.update(b"abc");
        assert!(c.verify(d).is_ok());
        let c = Checksum::parse(&HeaderValue::from_static("md5 AAAA")).unwrap();
        let d = c.digest.clone();
        let status = c.verify(d).unwrap_err().into_response().status();
        assert_eq!(status.as_u16(), 460);
        assert!(Checksum::parse(&HeaderValue::from_static("crc32 AAAA")).is_err());
    }
}
