//! Ids: every row id is a UUIDv7 in its canonical lowercase text form, so ids sort by
//! creation time and double as cursors. The newtypes below are parsed, never trusted:
//! an id that is not one of ours is refused before any query runs.

use std::fmt;

/// A new time-ordered id (UUIDv7), so ids double as creation-order cursors.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `text` is an id as this server writes them: a UUID in canonical lowercase
/// hyphenated form (checked by hand: this runs on every delivery request).
pub fn is_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id in `text`, or `None` when it is not one of ours.
            pub fn parse(text: &str) -> Option<$name> {
                is_id(text).then(|| $name(text.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

define_id!(
    /// A media item.
    MediaId
);
define_id!(
    /// A user account.
    UserId
);
define_id!(
    /// A webhook endpoint.
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_parse_as_ids() {
        let id = new_id();
        assert_eq!(MediaId::parse(&id).unwrap().as_str(), id);
        assert!(MediaId::parse(&id.to_uppercase()).is_none());
        assert!(MediaId::parse(&id.replace('-', "")).is_none());
        assert!(MediaId::parse("../etc/passwd").is_none());
        assert!(MediaId::parse("").is_none());
    }
}
