//! A hash as a record holds it. irun's own are xxh3-128, written as 32 lowercase hex digits; kept as those 16
//! bytes, a record's six hashes take no allocation of their own (as text they took 48 bytes of heap each, 2.4 MB
//! at 10,000 tasks). Anything else a record may hold where a hash goes (an older irun's, a dep's stamp, a test's
//! marker) is kept as its text. Either way a digest reads, compares, hashes and is written as the text it stands
//! for: the state file and `irun state --json` are the same as when these were strings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    /// 32 lowercase hex digits, as their 16 bytes (most significant first).
    Hex([u8; 16]),
    /// Any other text (empty: no hash).
    Text(Box<str>),
}

impl Default for Digest {
    fn default() -> Self {
        Digest::Text(Box::default())
    }
}

impl Digest {
    /// An xxh3-128 digest, as irun writes its hashes.
    pub(crate) fn of(value: u128) -> Digest {
        Digest::Hex(value.to_be_bytes())
    }

    /// The digest `text` stands for: itself, in 16 bytes when it is 32 lowercase hex digits.
    pub(crate) fn parse(text: &str) -> Digest {
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        match text.len() == 32 && text.as_bytes().iter().all(lower_hex) {
            true => u128::from_str_radix(text, 16).map_or_else(|_| Digest::Text(text.into()), Digest::of),
            false => Digest::Text(text.into()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Digest::Text(t) if t.is_empty())
    }

    /// Calls `f` with the text: without an allocation (hex is written into a buffer on the stack).
    pub(crate) fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Digest::Hex(bytes) => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut buf = [0u8; 32];
                for (i, b) in bytes.iter().enumerate() {
                    buf[2 * i] = DIGITS[usize::from(b >> 4)];
                    buf[2 * i + 1] = DIGITS[usize::from(b & 15)];
                }
                f(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
            }
            Digest::Text(text) => f(text),
        }
    }
}

impl From<&str> for Digest {
    fn from(text: &str) -> Digest {
        Digest::parse(text)
    }
}

impl From<String> for Digest {
    fn from(text: String) -> Digest {
        Digest::parse(&text)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|t| f.write_str(t))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|t| write!(f, "{t:?}"))
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.with_text(|t| t == other)
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_text(|t| serializer.serialize_str(t))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text: std::borrow::Cow<'de, str> = Deserialize::deserialize(deserializer)?;
        Ok(Digest::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irun_s_hashes_take_sixteen_bytes_and_read_back_as_the_text_they_were() {
        let value = xxhash_rust::xxh3::xxh3_128(b"x");
        let text = format!("{value:032x}");
        let d = Digest::parse(&text);
        assert_eq!(d, Digest::of(value));
        assert!(matches!(d, Digest::Hex(_)));
        assert_eq!(d.to_string(), text);
        assert_eq!(Digest::of(1).to_string(), format!("{:032x}", 1u128), "leading zeros are kept");
    }

    #[test]
    fn other_text_is_kept_as_it_is() {
        let upper = "0123456789ABCDEF0123456789abcdef";
        for text in ["", "ff", "not a regular file", upper, "0123456789abcdef0123456789abcdef0"] {
            let d = Digest::parse(text);
            assert!(matches!(d, Digest::Text(_)), "{text}");
            assert_eq!(d.to_string(), text);
            assert_eq!(d, *text);
        }
        assert!(Digest::default().is_empty() && !Digest::of(0).is_empty());
    }

    #[test]
    fn a_digest_is_as_small_as_the_string_it_replaces() {
        assert!(size_of::<Digest>() <= size_of::<String>());
    }
}
