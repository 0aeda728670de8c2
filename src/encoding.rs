//! Text encodings for credentials: base32 and CRC-16/XMODEM (the NKey string form), and
//! base64url without padding (JWT parts and the `sig` of CONNECT).
//!
//! An NKey is `base32(prefix ‖ 32 key bytes ‖ crc16 little-endian)`: 56 characters for a
//! public key, and 58 for a seed, whose two leading bytes pack the seed prefix `S` with
//! the key's kind (`SU...` for a user). This module turns those strings into bytes and
//! back; it holds no cryptography (that is [`crate::nkeys`], feature `nkeys`), so the
//! creds parser can check a seed without it. No error here ever quotes its input.

// Some helpers are used only by the feature-gated `nkeys` module.
#![cfg_attr(not(feature = "nkeys"), allow(dead_code))]

use std::fmt;

/// The kind of an NKey, the first letter of its public key (`U...` for a user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An operator (`O`): signs account JWTs; the root of trust in operator mode.
    Operator,
    /// An account (`A`): signs user JWTs.
    Account,
    /// A user (`U`): signs the server's nonce when connecting.
    User,
    /// A server (`N`).
    Server,
    /// A cluster (`C`).
    Cluster,
}

impl KeyKind {
    /// The prefix byte that starts this kind's public key.
    ///
    /// ```
    /// # #[cfg(feature = "nkeys")] {
    /// use panini::nkeys::KeyKind;
    /// assert_eq!(KeyKind::User.prefix(), 20 << 3);
    /// # }
    /// ```
    pub fn prefix(self) -> u8 {
        match self {
            KeyKind::Operator => 14 << 3,
            KeyKind::Account => 0,
            KeyKind::User => 20 << 3,
            KeyKind::Server => 13 << 3,
            KeyKind::Cluster => 2 << 3,
        }
    }

    /// The letter its public key starts with, and the second letter of its seed.
    ///
    /// ```
    /// # #[cfg(feature = "nkeys")] {
    /// use panini::nkeys::KeyKind;
    /// assert_eq!(KeyKind::Account.letter(), 'A');
    /// # }
    /// ```
    pub fn letter(self) -> char {
        match self {
            KeyKind::Operator => 'O',
            KeyKind::Account => 'A',
            KeyKind::User => 'U',
            KeyKind::Server => 'N',
            KeyKind::Cluster => 'C',
        }
    }

    /// The kind whose prefix byte is `byte`, if any.
    pub(crate) fn from_prefix(byte: u8) -> Option<KeyKind> {
        const ALL: [KeyKind; 5] = [
            KeyKind::Operator,
            KeyKind::Account,
            KeyKind::User,
            KeyKind::Server,
            KeyKind::Cluster,
        ];
        ALL.into_iter().find(|kind| kind.prefix() == byte)
    }
}

/// The prefix byte of a seed (`S`), or-ed with the top bits of the key kind.
const SEED_PREFIX: u8 = 18 << 3;
/// Characters in a public key: base32 of 1 + 32 + 2 bytes.
pub(crate) const PUBLIC_KEY_LEN: usize = 56;
/// Characters in a seed: base32 of 2 + 32 + 2 bytes.
pub(crate) const SEED_LEN: usize = 58;

/// Why an NKey string was refused. Its `Display` completes "the NKey seed ..." or "the
/// public key ..." and never quotes the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Nothing (or only whitespace) was given.
    Empty,
    /// The wrong number of characters.
    Length { found: usize, want: usize },
    /// A character outside base32's `A-Z2-7` at this 1-based position, or bits set past the
    /// last byte.
    NotBase32 { at: usize },
    /// The CRC-16 does not match the bytes before it.
    Checksum,
    /// A (valid) public key was given where a seed is needed.
    PublicKeyGiven,
    /// The first byte is not the seed prefix `S`.
    NotASeed,
    /// The kind bits name no known kind.
    UnknownKind,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("is empty"),
            KeyError::Length { found, want } => {
                write!(f, "has {found} characters where {want} are expected")
            }
            KeyError::NotBase32 { at } => write!(
                f,
                "is not base32 (A-Z and 2-7 only) at character {at}; was it mistyped?"
            ),
            KeyError::Checksum => f.write_str("fails its checksum; was it mistyped or cut short?"),
            KeyError::PublicKeyGiven => f.write_str("is a public key, not a seed"),
            KeyError::NotASeed => f.write_str("does not start with the seed prefix 'S'"),
            KeyError::UnknownKind => f.write_str("has an unknown key type"),
        }
    }
}

/// The 32 key bytes of a 56-character public key, with its kind.
pub(crate) fn decode_public_key(text: &str) -> Result<(KeyKind, [u8; 32]), KeyError> {
    let raw = decode_checked(text, PUBLIC_KEY_LEN)?;
    let kind = KeyKind::from_prefix(raw[0]).ok_or(KeyError::UnknownKind)?;
    Ok((kind, key_bytes(&raw[1..33])))
}

/// The 32 seed bytes of a 58-character seed (`SU...`), with its kind.
pub(crate) fn decode_seed(text: &str) -> Result<(KeyKind, [u8; 32]), KeyError> {
    if text.len() == PUBLIC_KEY_LEN && decode_public_key(text).is_ok() {
        return Err(KeyError::PublicKeyGiven);
    }
    let raw = decode_checked(text, SEED_LEN)?;
    if raw[0] & 0xF8 != SEED_PREFIX {
        return Err(KeyError::NotASeed);
    }
    let kind = ((raw[0] & 0x07) << 5) | ((raw[1] & 0xF8) >> 3);
    let kind = KeyKind::from_prefix(kind).ok_or(KeyError::UnknownKind)?;
    Ok((kind, key_bytes(&raw[2..34])))
}

/// The public key string of `kind` for these 32 Ed25519 public key bytes.
pub(crate) fn encode_public_key(kind: KeyKind, key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(35);
    raw.push(kind.prefix());
    raw.extend_from_slice(key);
    with_crc(raw)
}

/// The seed string (`S` + kind letter + ...) of `kind` for these 32 seed bytes.
pub(crate) fn encode_seed(kind: KeyKind, seed: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(36);
    raw.push(SEED_PREFIX | (kind.prefix() >> 5));
    raw.push((kind.prefix() & 0x1F) << 3);
    raw.extend_from_slice(seed);
    with_crc(raw)
}

/// Appends the CRC-16 of `raw` (little-endian) and base32-encodes the lot.
fn with_crc(mut raw: Vec<u8>) -> String {
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    base32_encode(&raw)
}

/// Decodes `text` of `want` characters and checks its trailing CRC-16; the bytes before it.
fn decode_checked(text: &str, want: usize) -> Result<Vec<u8>, KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    let found = text.chars().count();
    if found != want {
        return Err(KeyError::Length { found, want });
    }
    let mut raw = base32_decode(text).map_err(|at| KeyError::NotBase32 { at })?;
    let split = raw.len() - 2;
    let crc = u16::from_le_bytes([raw[split], raw[split + 1]]);
    raw.truncate(split);
    if crc16(&raw) != crc {
        return Err(KeyError::Checksum);
    }
    Ok(raw)
}

/// Copies 32 bytes out of a slice the callers have sized.
fn key_bytes(bytes: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(bytes);
    key
}

/// CRC-16/XMODEM: polynomial 0x1021, initial 0, no reflection, no final xor.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, without padding.
pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut acc, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        acc = (acc << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[usize::from((acc >> bits) & 31)]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[usize::from((acc << (5 - bits)) & 31)]));
    }
    out
}

/// RFC 4648 base32 without padding, strictly: upper case only, and the unused bits of the
/// last character must be zero. On error, the 1-based position of the offending character.
pub(crate) fn base32_decode(text: &str) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u16, 0u32);
    for (i, byte) in text.bytes().enumerate() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'2'..=b'7' => byte - b'2' + 26,
            _ => return Err(i + 1),
        };
        acc = (acc << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A whole character left over (lengths 1, 3, 6 mod 8), or bits that no byte holds.
    if bits >= 5 || acc != 0 {
        return Err(text.len());
    }
    Ok(out)
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 base64url (`-` and `_`), without padding: JWT parts and the CONNECT `sig`.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 4).div_ceil(3));
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(BASE64URL[sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base64url decoding, for the round trip only (the crate never decodes base64).
    fn base64url_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| BASE64URL.iter().position(|&b| b == c).unwrap() as u32;
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0, |n, (i, &c)| n | value(c) << (18 - 6 * i));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }

    #[test]
    fn base64url_matches_the_rfc_4648_vectors_without_padding() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (bytes, text) in cases {
            assert_eq!(base64url(bytes), text);
        }
    }

    #[test]
    fn base64url_uses_dash_and_underscore_not_plus_and_slash() {
        // Standard base64 would give "+/8=" and "+/+/".
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0xfb, 0xef, 0xbe]), "----");
        assert_eq!(base64url(&[0xff; 3]), "____");
    }

    #[test]
    fn base64url_round_trips_every_length_and_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            assert_eq!(base64url_decode(&base64url(&bytes[..len])), &bytes[..len]);
        }
    }

    #[test]
    fn base32_matches_the_rfc_4648_vectors_without_padding() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (bytes, text) in cases {
            assert_eq!(base32_encode(bytes), text);
            assert_eq!(base32_decode(text).as_deref(), Ok(bytes));
        }
    }

    #[test]
    fn base32_round_trips_every_length_and_byte() {
        let bytes: Vec<u8> = (0..=255).rev().collect();
        for len in 0..bytes.len() {
            let text = base32_encode(&bytes[..len]);
            assert_eq!(base32_decode(&text).as_deref(), Ok(&bytes[..len]));
        }
    }

    #[test]
    fn base32_refuses_other_characters_and_stray_bits() {
        assert_eq!(base32_decode("MZXw6"), Err(4));
        assert_eq!(base32_decode("MZX=6"), Err(4));
        assert_eq!(base32_decode("MZ1"), Err(3));
        assert_eq!(base32_decode("MZXW6É"), Err(6));
        // "MY" is "f"; "MZ" sets a bit past the byte, and "MZX" has a character too many.
        assert_eq!(base32_decode("MZ"), Err(2));
        assert_eq!(base32_decode("MZX"), Err(3));
    }

    #[test]
    fn crc16_is_xmodem() {
        // The CRC catalogue's check value for CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn seeds_and_public_keys_round_trip_for_every_kind() {
        let kinds = [
            KeyKind::Operator,
            KeyKind::Account,
            KeyKind::User,
            KeyKind::Server,
            KeyKind::Cluster,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let bytes = [i as u8 * 51; 32];
            let seed = encode_seed(kind, &bytes);
            assert_eq!(seed.len(), SEED_LEN);
            assert!(seed.starts_with(&format!("S{}", kind.letter())), "{seed}");
            assert_eq!(decode_seed(&seed), Ok((kind, bytes)));
            let public = encode_public_key(kind, &bytes);
            assert_eq!(public.len(), PUBLIC_KEY_LEN);
            assert!(public.starts_with(kind.letter()), "{public}");
            assert_eq!(decode_public_key(&public), Ok((kind, bytes)));
            assert_eq!(decode_seed(&public), Err(KeyError::PublicKeyGiven));
        }
    }

    #[test]
    fn decode_seed_says_what_is_wrong() {
        let seed = encode_seed(KeyKind::User, &[7; 32]);
        let mut flipped = seed.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        // A 58-character key whose prefix is the private key's `P`, not the seed's `S`.
        let private = {
            let mut raw = vec![15 << 3];
            raw.extend_from_slice(&[7; 33]);
            with_crc(raw)
        };
        let odd_kind = {
            let mut raw = vec![SEED_PREFIX | 7, 0xF8];
            raw.extend_from_slice(&[7; 32]);
            with_crc(raw)
        };
        let cases = [
            ("", KeyError::Empty),
            (
                &seed[..57],
                KeyError::Length {
                    found: 57,
                    want: 58,
                },
            ),
            (
                &format!("{seed}A"),
                KeyError::Length {
                    found: 59,
                    want: 58,
                },
            ),
            (&seed.to_lowercase(), KeyError::NotBase32 { at: 1 }),
            (
                &format!("{}1{}", &seed[..9], &seed[10..]),
                KeyError::NotBase32 { at: 10 },
            ),
            (&flipped, KeyError::Checksum),
            (&private, KeyError::NotASeed),
            (&odd_kind, KeyError::UnknownKind),
        ];
        for (text, want) in cases {
            assert_eq!(decode_seed(text), Err(want), "{text:?}");
        }
    }
}
