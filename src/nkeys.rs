//! NKeys (feature `nkeys`): the Ed25519 key pairs NATS uses for authentication, read from
//! and written in their text form (`SU...` seeds, `U...` public keys).
//!
//! A client proves who it is by signing the nonce of the server's INFO with its user seed;
//! operators and accounts sign JWTs the same way. This module owns the key pair and its
//! signature (on `ring`); the text form itself is the crate's `encoding` module. A seed is
//! a secret: it is never shown by `Debug` and never quoted by an error.
//!
//! ```
//! use panini::nkeys::{self, KeyKind, KeyPair};
//!
//! let user = KeyPair::from_seed("SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM")?;
//! assert_eq!(user.kind(), KeyKind::User);
//! assert_eq!(user.public_key(), "UAFHG6FUD2UU4SDFVAFUL5LDFO2XM4WYM76UNXTPJYJK7EEMYRBHT2VE");
//! let sig = user.sign(b"the nonce");
//! assert!(nkeys::verify(&user.public_key(), b"the nonce", &sig));
//! # Ok::<(), panini::Error>(())
//! ```

use std::fmt;

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

use crate::encoding;
use crate::Error;

pub use crate::encoding::KeyKind;

/// An NKey: an Ed25519 key pair of some [`KeyKind`], made from its 32-byte seed.
///
/// `Debug` shows the kind and the public key, never the seed.
///
/// ```
/// use panini::nkeys::{KeyKind, KeyPair};
///
/// let account = KeyPair::from_raw_seed(KeyKind::Account, [42; 32]);
/// assert!(account.public_key().starts_with('A'));
/// assert!(!format!("{account:?}").contains(&account.seed()));
/// ```
pub struct KeyPair {
    kind: KeyKind,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl KeyPair {
    /// Reads a seed in its text form (`SU...`, 58 characters), ignoring surrounding
    /// whitespace (a trailing newline from a file, say).
    ///
    /// Fails with [`Error::Credentials`] saying what is wrong (length, a character that is
    /// not base32, the checksum, a public key given instead of a seed, ...); the error
    /// never holds the seed or a part of it.
    ///
    /// ```
    /// use panini::nkeys::KeyPair;
    ///
    /// let user = KeyPair::from_seed("SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM\n")?;
    /// assert!(user.public_key().starts_with('U'));
    /// let err = KeyPair::from_seed("SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWA");
    /// assert!(err.unwrap_err().to_string().contains("checksum"));
    /// # Ok::<(), panini::Error>(())
    /// ```
    pub fn from_seed(seed: &str) -> Result<KeyPair, Error> {
        match encoding::decode_seed(seed.trim()) {
            Ok((kind, bytes)) => Ok(KeyPair::from_raw_seed(kind, bytes)),
            Err(why) => Err(Error::Credentials(format!("the NKey seed {why}").into())),
        }
    }

    /// The key pair of `kind` whose Ed25519 seed is these 32 bytes (deterministic keys for
    /// tests, or a seed kept in some other form).
    ///
    /// ```
    /// use panini::nkeys::{KeyKind, KeyPair};
    ///
    /// let op = KeyPair::from_raw_seed(KeyKind::Operator, [1; 32]);
    /// assert_eq!(KeyPair::from_seed(&op.seed())?.public_key(), op.public_key());
    /// # Ok::<(), panini::Error>(())
    /// ```
    pub fn from_raw_seed(kind: KeyKind, seed: [u8; 32]) -> KeyPair {
        // ring refuses only a seed that is not 32 bytes long, which the type rules out.
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("ring accepts every 32-byte Ed25519 seed");
        KeyPair { kind, seed, pair }
    }

    /// The kind of this key (user, account, operator, ...).
    ///
    /// ```
    /// use panini::nkeys::{KeyKind, KeyPair};
    /// assert_eq!(KeyPair::from_raw_seed(KeyKind::User, [0; 32]).kind(), KeyKind::User);
    /// ```
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The seed in its text form (`S` + the kind's letter + 56 more characters): a secret.
    ///
    /// ```
    /// use panini::nkeys::{KeyKind, KeyPair};
    /// let seed = KeyPair::from_raw_seed(KeyKind::User, [0; 32]).seed();
    /// assert!(seed.starts_with("SU") && seed.len() == 58);
    /// ```
    pub fn seed(&self) -> String {
        encoding::encode_seed(self.kind, &self.seed)
    }

    /// The public key in its text form (the kind's letter + 55 characters): what a server
    /// config lists and what a JWT's `iss` and `sub` hold.
    ///
    /// ```
    /// use panini::nkeys::{KeyKind, KeyPair};
    /// let public = KeyPair::from_raw_seed(KeyKind::Account, [0; 32]).public_key();
    /// assert!(public.starts_with('A') && public.len() == 56);
    /// ```
    pub fn public_key(&self) -> String {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        encoding::encode_public_key(self.kind, &key)
    }

    /// The Ed25519 signature of `msg` (deterministic: the same message gives the same
    /// signature). A client signs the INFO nonce's text as received.
    ///
    /// ```
    /// use panini::nkeys::{KeyKind, KeyPair};
    /// let user = KeyPair::from_raw_seed(KeyKind::User, [5; 32]);
    /// assert_eq!(user.sign(b"nonce"), user.sign(b"nonce"));
    /// ```
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(self.pair.sign(msg).as_ref());
        sig
    }
}

impl Clone for KeyPair {
    fn clone(&self) -> Self {
        KeyPair::from_raw_seed(self.kind, self.seed)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("kind", &self.kind)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// Whether `sig` is the signature of `msg` by the key whose text form is `public_key`.
/// A public key that does not decode (length, checksum, kind) verifies nothing.
///
/// ```
/// use panini::nkeys::{self, KeyKind, KeyPair};
///
/// let user = KeyPair::from_raw_seed(KeyKind::User, [9; 32]);
/// let sig = user.sign(b"hello");
/// assert!(nkeys::verify(&user.public_key(), b"hello", &sig));
/// assert!(!nkeys::verify(&user.public_key(), b"hullo", &sig));
/// ```
pub fn verify(public_key: &str, msg: &[u8], sig: &[u8]) -> bool {
    let Ok((_, key)) = encoding::decode_public_key(public_key) else {
        return false;
    };
    signature::UnparsedPublicKey::new(&signature::ED25519, key)
        .verify(msg, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";
    const PUBLIC: &str = "UAFHG6FUD2UU4SDFVAFUL5LDFO2XM4WYM76UNXTPJYJK7EEMYRBHT2VE";

    /// The reason text of a refused seed, checked not to quote the input.
    fn refusal(text: &str) -> String {
        let err = KeyPair::from_seed(text).expect_err(text);
        let Error::Credentials(why) = &err else {
            panic!("not a credentials error: {err:?}");
        };
        let shown = err.to_string();
        let trimmed = text.trim();
        for window in trimmed.as_bytes().windows(6) {
            let window = String::from_utf8_lossy(window);
            assert!(!shown.contains(&*window), "{shown:?} quotes the input");
        }
        why.to_string()
    }

    #[test]
    fn the_public_check_vector_gives_its_user_key() {
        let user = KeyPair::from_seed(SEED).unwrap();
        assert_eq!(user.kind(), KeyKind::User);
        assert_eq!(user.public_key(), PUBLIC);
        assert_eq!(user.seed(), SEED);
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        let user = KeyPair::from_seed(&format!("  {SEED}\r\n")).unwrap();
        assert_eq!(user.public_key(), PUBLIC);
    }

    #[test]
    fn raw_seeds_round_trip_through_the_text_form_for_every_kind() {
        let kinds = [
            (KeyKind::Operator, "SO", 'O'),
            (KeyKind::Account, "SA", 'A'),
            (KeyKind::User, "SU", 'U'),
            (KeyKind::Server, "SN", 'N'),
            (KeyKind::Cluster, "SC", 'C'),
        ];
        for (i, (kind, seed_start, letter)) in kinds.into_iter().enumerate() {
            let pair = KeyPair::from_raw_seed(kind, [i as u8 + 1; 32]);
            let seed = pair.seed();
            assert!(seed.starts_with(seed_start), "{seed}");
            assert!(pair.public_key().starts_with(letter));
            let again = KeyPair::from_seed(&seed).unwrap();
            assert_eq!(
                (again.kind(), again.public_key()),
                (kind, pair.public_key())
            );
            assert_eq!(again.sign(b"x"), pair.sign(b"x"));
        }
    }

    #[test]
    fn signatures_verify_against_the_public_key_only() {
        let user = KeyPair::from_seed(SEED).unwrap();
        let other = KeyPair::from_raw_seed(KeyKind::User, [3; 32]);
        let sig = user.sign(b"nonce");
        assert!(verify(PUBLIC, b"nonce", &sig));
        assert!(!verify(PUBLIC, b"nonce", &other.sign(b"nonce")));
        assert!(!verify(PUBLIC, b"nonce", &sig[..63]));
        assert!(!verify(&PUBLIC[..55], b"nonce", &sig));
        assert!(!verify(SEED, b"nonce", &sig));
    }

    #[test]
    fn every_bad_seed_is_refused_with_a_reason_that_does_not_quote_it() {
        let mut bad_crc = SEED.to_string();
        bad_crc.replace_range(57.., "A");
        let cases = [
            ("", "is empty"),
            ("  \n", "is empty"),
            (&SEED[..57], "has 57 characters where 58 are expected"),
            (&format!("{SEED}A"), "has 59 characters"),
            (&SEED.replace('W', "w"), "is not base32"),
            (&SEED.replacen('7', "1", 1), "at character 6"),
            (&SEED.replacen('7', "é", 1), "is not base32"),
            (&bad_crc, "checksum"),
            (PUBLIC, "is a public key, not a seed"),
        ];
        for (text, want) in cases {
            let why = refusal(text);
            assert!(why.starts_with("the NKey seed "), "{why}");
            assert!(why.contains(want), "{text:?}: {why:?} lacks {want:?}");
        }
    }

    #[test]
    fn debug_shows_the_public_key_and_never_the_seed() {
        let user = KeyPair::from_seed(SEED).unwrap();
        let shown = format!("{user:?}");
        assert_eq!(
            shown,
            format!("KeyPair {{ kind: User, public_key: {PUBLIC:?}, .. }}")
        );
        assert!(!shown.contains(&SEED[2..20]));
        assert_eq!(format!("{:?}", user.clone()), shown);
    }
}
