//! Password policy for new passwords: long enough, not absurdly long, not one of the
//! passwords attackers try first, and not the username.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Longest accepted password, in bytes: longer ones only cost hashing time.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords of 8+ characters that top public breach-frequency lists, lowercased, one a
/// line. Shorter ones are already refused by the minimum length.
const COMMON_LIST: &str = include_str!("common-passwords.txt");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyViolation {
    TooShort { min: usize },
    TooLong,
    Common,
    SameAsUsername,
}

impl PolicyViolation {
    /// A sentence to show the user.
    pub fn message(&self) -> String {
        match self {
            Self::TooShort { min } => format!("Password must be at least {min} characters long."),
            Self::TooLong => {
                format!("Password must be at most {MAX_PASSWORD_BYTES} bytes long.")
            }
            Self::Common => {
                "This password is too common or too easy to guess; choose another.".to_owned()
            }
            Self::SameAsUsername => "Password must not be your username.".to_owned(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PolicyViolation {}

/// Checks a new password for `username`. Length is counted in characters, the upper bound
/// in bytes; the username and common-password checks ignore case.
pub fn check_password(
    password: &str,
    username: &str,
    min_len: usize,
) -> Result<(), PolicyViolation> {
    // Bytes first: cheap, and bounds the work of every check after it.
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyViolation::TooLong);
    }
    if password.chars().count() < min_len {
        return Err(PolicyViolation::TooShort { min: min_len });
    }
    let lower = password.to_lowercase();
    if is_username(&lower, &username.to_lowercase()) {
        return Err(PolicyViolation::SameAsUsername);
    }
    if is_common(&lower) {
        return Err(PolicyViolation::Common);
    }
    Ok(())
}

/// The username itself, or the username followed only by digits ("alice2024").
fn is_username(password: &str, username: &str) -> bool {
    if username.is_empty() {
        return false;
    }
    password
        .strip_prefix(username)
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
}

fn is_common(password: &str) -> bool {
    common().contains(password) || is_one_char_repeated(password) || is_sequence(password)
}

fn common() -> &'static HashSet<&'static str> {
    static COMMON: OnceLock<HashSet<&'static str>> = OnceLock::new();
    COMMON.get_or_init(|| {
        COMMON_LIST
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

fn is_one_char_repeated(password: &str) -> bool {
    let mut chars = password.chars();
    chars.next().is_some_and(|first| chars.all(|c| c == first))
}

/// A whole-password run of consecutive digits or letters, ascending ("12345678",
/// "abcdefgh") or descending ("87654321"). Digits wrap, as on a keyboard row, so
/// "1234567890" and "0987654321" count.
fn is_sequence(password: &str) -> bool {
    let bytes = password.as_bytes();
    if bytes.len() < 2 {
        return false;
    }
    let steps = |up: bool| {
        bytes.windows(2).all(|pair| {
            let (a, b) = if up {
                (pair[0], pair[1])
            } else {
                (pair[1], pair[0])
            };
            match a {
                b'0'..=b'8' | b'a'..=b'y' => b == a + 1,
                b'9' => b == b'0',
                _ => false,
            }
        })
    };
    let all_digits = bytes.iter().all(u8::is_ascii_digit);
    let all_letters = bytes.iter().all(u8::is_ascii_lowercase);
    (all_digits || all_letters) && (steps(true) || steps(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: usize = 8;

    fn check(password: &str) -> Result<(), PolicyViolation> {
        check_password(password, "alice", MIN)
    }

    #[test]
    fn good_passwords_are_accepted() {
        for password in [
            "correct horse battery staple",
            "Tr0ub4dor&3x",
            "alicealice7x",
            "zebra-kettle-41",
            "ünïcödé pässwörd",
        ] {
            assert_eq!(check(password), Ok(()), "{password}");
        }
    }

    #[test]
    fn short_passwords_are_refused_counting_characters_not_bytes() {
        assert_eq!(check("k9$vQ2z"), Err(PolicyViolation::TooShort { min: 8 }));
        // Eight characters but sixteen bytes: long enough.
        assert_eq!(check("жбдфгкнм"), Ok(()));
        assert_eq!(check("жбдфгкн"), Err(PolicyViolation::TooShort { min: 8 }));
        assert_eq!(
            check_password("k9$vQ2z!x", "alice", 12),
            Err(PolicyViolation::TooShort { min: 12 })
        );
    }

    #[test]
    fn passwords_over_1024_bytes_are_refused() {
        let ok = "x7".repeat(512);
        assert_eq!(check(&ok), Ok(()));
        assert_eq!(check(&format!("{ok}y")), Err(PolicyViolation::TooLong));
        // 600 characters but 1200 bytes.
        assert_eq!(check(&"éz".repeat(400)), Err(PolicyViolation::TooLong));
    }

    #[test]
    fn listed_passwords_are_refused_whatever_their_case() {
        for password in [
            "password",
            "PassWord1",
            "ILOVEYOU",
            "qwerty123",
            "Trustno1",
            "P@ssw0rd",
        ] {
            assert_eq!(check(password), Err(PolicyViolation::Common), "{password}");
        }
    }

    #[test]
    fn repeated_characters_and_sequences_are_refused() {
        for password in [
            "zzzzzzzzzzzz",
            "!!!!!!!!",
            "ßßßßßßßß",
            "23456789",
            "ABCDEFGHIJ",
            "zyxwvutsrq",
            "7654321098",
            "klmnopqrst",
        ] {
            assert_eq!(check(password), Err(PolicyViolation::Common), "{password}");
        }
        for password in ["12345679", "abcdefgz", "1234abcd5678", "abcABCabc"] {
            assert!(!is_sequence(&password.to_lowercase()), "{password}");
        }
    }

    #[test]
    fn the_username_is_refused_alone_or_followed_by_digits() {
        let check = |p: &str| check_password(p, "Gandalf", MIN);
        assert_eq!(check("gandalf"), Err(PolicyViolation::TooShort { min: 8 }));
        assert_eq!(check("GANDALF1"), Err(PolicyViolation::SameAsUsername));
        assert_eq!(check("gandalf2024"), Err(PolicyViolation::SameAsUsername));
        assert_eq!(
            check_password("gandalfthegrey", "GandalfTheGrey", MIN),
            Err(PolicyViolation::SameAsUsername)
        );
        assert_eq!(check("gandalf2024!"), Ok(()));
        assert_eq!(check("2024gandalf"), Ok(()));
        // An empty username does not turn every all-digit password into a match.
        assert_eq!(check_password("83920175", "", MIN), Ok(()));
    }

    #[test]
    fn every_violation_has_a_sentence() {
        for violation in [
            PolicyViolation::TooShort { min: 10 },
            PolicyViolation::TooLong,
            PolicyViolation::Common,
            PolicyViolation::SameAsUsername,
        ] {
            let message = violation.message();
            assert!(message.ends_with('.'), "{message}");
            assert_eq!(violation.to_string(), message);
        }
        assert!(PolicyViolation::TooShort { min: 10 }
            .message()
            .contains("10"));
    }

    #[test]
    fn the_common_list_is_large_lowercase_deduplicated_and_8_plus_characters() {
        let lines: Vec<&str> = COMMON_LIST.lines().collect();
        assert!(lines.len() >= 300, "only {}", lines.len());
        assert_eq!(common().len(), lines.len(), "duplicates in the list");
        for line in lines {
            assert_eq!(line, line.trim(), "{line:?}");
            assert_eq!(line, line.to_lowercase(), "{line:?}");
            assert!(line.chars().count() >= 8, "{line:?}");
        }
    }
}
