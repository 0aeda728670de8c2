//! Creds files: the user JWT and NKey seed that `nsc` writes into a `.creds` file, read
//! from its text. Pure: the caller reads the file, this module finds the two values.
//!
//! The shape `nsc` writes is two armoured blocks with a warning between them:
//!
//! ```text
//! -----BEGIN NATS USER JWT-----
//! eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJ...
//! ------END NATS USER JWT------
//!
//! ************************* IMPORTANT *************************
//! NKEY Seed printed below can be used to sign and prove identity.
//! NKEYs are sensitive and should be treated as secrets.
//!
//! -----BEGIN USER NKEY SEED-----
//! SUA...
//! ------END USER NKEY SEED------
//!
//! *************************************************************
//! ```
//!
//! Files edited by hand or copied between systems drift from it (CRLF line ends, no final
//! newline, blank or indented lines inside the armour), and strict parsers have refused
//! them. This one works line by line and looks only for the two values:
//! - the JWT is the first non-empty line after a line with `BEGIN` and `JWT`, if it looks
//!   like a JWT (three base64url parts); else the first line starting with `eyJ` that does;
//! - the seed is the first non-empty line after a line with `BEGIN` and `SEED`; without
//!   one, the first line starting with `SU`, `SA` or `SO` that is all base32;
//! - everything else is ignored. The seed must decode (length, checksum, kind).
//!
//! No error quotes the file: a creds file holds a secret.

// Only the feature `nkeys` reads creds files.
#![cfg_attr(not(feature = "nkeys"), allow(dead_code))]

use std::fmt;

use crate::encoding;
use crate::Error;

/// The two values of a creds file.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Creds {
    /// The user JWT, sent as `jwt` in CONNECT.
    pub(crate) jwt: String,
    /// The user's NKey seed (`SU...`), which signs the server's nonce: a secret.
    pub(crate) seed: String,
}

impl fmt::Debug for Creds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A bearer JWT is as good as a password, so neither value is shown.
        f.debug_struct("Creds")
            .field("jwt", &format_args!("<{} bytes>", self.jwt.len()))
            .field("seed", &format_args!("<redacted>"))
            .finish()
    }
}

/// Finds the user JWT and the seed in the text of a creds file (see the module docs).
pub(crate) fn parse_creds(text: &str) -> Result<Creds, Error> {
    let lines: Vec<&str> = text.split(['\r', '\n']).map(str::trim).collect();
    let jwt = find_jwt(&lines).ok_or_else(|| {
        bad(
            "no user JWT found in the credentials (expected a line of three base64url \
             parts after -----BEGIN NATS USER JWT-----)",
        )
    })?;
    let seed = find_seed(&lines).ok_or_else(|| {
        bad(
            "no NKey seed found in the credentials (expected a line starting with SU \
             after -----BEGIN USER NKEY SEED-----)",
        )
    })?;
    if let Err(why) = encoding::decode_seed(seed) {
        return Err(bad(&format!("the NKey seed in the credentials {why}")));
    }
    Ok(Creds {
        jwt: jwt.to_string(),
        seed: seed.to_string(),
    })
}

fn bad(why: &str) -> Error {
    Error::Credentials(why.into())
}

/// The armoured JWT if it looks like one, else the first line that starts like one.
fn find_jwt<'a>(lines: &[&'a str]) -> Option<&'a str> {
    armoured(lines, "JWT")
        .filter(|line| looks_like_jwt(line))
        .or_else(|| {
            let mut bare = lines.iter().copied();
            bare.find(|line| line.starts_with("eyJ") && looks_like_jwt(line))
        })
}

/// The armoured seed whatever it holds (so a mistyped one is reported as such), else the
/// first line that looks like a seed.
fn find_seed<'a>(lines: &[&'a str]) -> Option<&'a str> {
    armoured(lines, "SEED").or_else(|| lines.iter().copied().find(|line| looks_like_seed(line)))
}

/// The first non-empty line after the first `BEGIN ... <what>` line, unless that is the
/// closing dash line (an empty block).
fn armoured<'a>(lines: &[&'a str], what: &str) -> Option<&'a str> {
    let begin = lines
        .iter()
        .position(|line| line.contains("BEGIN") && line.contains(what))?;
    let value = lines[begin + 1..].iter().find(|line| !line.is_empty())?;
    (!value.starts_with("---")).then_some(*value)
}

/// `header.claims.signature`, each part non-empty base64url (padding tolerated).
fn looks_like_jwt(line: &str) -> bool {
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    };
    let parts: Vec<&str> = line.split('.').collect();
    parts.len() == 3 && parts.into_iter().all(base64url)
}

/// `SU`, `SA` or `SO`, then base32 characters only.
fn looks_like_seed(line: &str) -> bool {
    ["SU", "SA", "SO"]
        .iter()
        .any(|start| line.starts_with(start))
        && line.bytes().all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";
    /// Not a valid signature, but a JWT by shape (the parser does not verify it).
    const JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2lnbmF0dXJl";

    /// A creds file in the shape `nsc` writes.
    fn nsc(jwt: &str, seed: &str) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        )
    }

    /// Parses `text` and checks it gave the test JWT and seed.
    fn parses(text: &str) {
        let creds = parse_creds(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(
            (creds.jwt.as_str(), creds.seed.as_str()),
            (JWT, SEED),
            "{text:?}"
        );
    }

    /// Parses `text`, expects a refusal containing `want`, and checks it quotes nothing.
    fn refuses(text: &str, want: &str) {
        let err = parse_creds(text).expect_err(text);
        assert!(matches!(err, Error::Credentials(_)), "{err:?}");
        let shown = err.to_string();
        assert!(shown.contains(want), "{shown:?} lacks {want:?}");
        for secret in [SEED, JWT] {
            for window in secret.as_bytes().windows(8) {
                let window = String::from_utf8_lossy(window);
                assert!(!shown.contains(&*window), "{shown:?} quotes the file");
            }
        }
    }

    #[test]
    fn the_nsc_shape() {
        parses(&nsc(JWT, SEED));
    }

    #[test]
    fn crlf_line_ends() {
        parses(&nsc(JWT, SEED).replace('\n', "\r\n"));
    }

    #[test]
    fn lone_cr_line_ends() {
        parses(&nsc(JWT, SEED).replace('\n', "\r"));
    }

    #[test]
    fn no_final_newline() {
        let text = nsc(JWT, SEED);
        parses(text.trim_end());
        let cut = text.rfind("\n\n*****").map(|end| &text[..end]);
        parses(cut.expect("the seed block ends the file"));
    }

    #[test]
    fn blank_lines_inside_the_armour() {
        let text = nsc(JWT, SEED)
            .replace(&format!("{JWT}\n"), &format!("\n\n{JWT}\n\n"))
            .replace(&format!("{SEED}\n"), &format!("\n{SEED}\n\n"));
        parses(&text);
    }

    #[test]
    fn indented_lines_and_trailing_spaces() {
        let text: String = nsc(JWT, SEED)
            .lines()
            .map(|line| format!("    {line} \t\n"))
            .collect();
        parses(&text);
    }

    #[test]
    fn five_dash_end_lines() {
        parses(&nsc(JWT, SEED).replace("------", "-----"));
    }

    #[test]
    fn no_armour_at_all() {
        parses(&format!("{JWT}\n{SEED}\n"));
        parses(&format!("# my creds\n\n{SEED}\n{JWT}"));
    }

    #[test]
    fn a_jwt_block_holding_something_else_falls_back_to_a_bare_jwt() {
        let text = format!("-----BEGIN NATS USER JWT-----\nnot a jwt\n-----END\n{JWT}\n{SEED}\n");
        parses(&text);
    }

    #[test]
    fn the_seed_may_be_of_an_account_or_operator() {
        let account = crate::encoding::encode_seed(crate::encoding::KeyKind::Account, &[1; 32]);
        let creds = parse_creds(&nsc(JWT, &account)).unwrap();
        assert_eq!(creds.seed, account);
    }

    #[test]
    fn a_missing_jwt_is_named() {
        let no_jwt = "no user JWT found in the credentials";
        refuses("", no_jwt);
        refuses(&format!("{SEED}\n"), no_jwt);
        refuses(&nsc("", SEED), no_jwt);
        refuses(&nsc("eyJhbGci.only-two", SEED), no_jwt);
    }

    #[test]
    fn a_missing_seed_is_named() {
        let no_seed = "no NKey seed found in the credentials";
        refuses(&format!("{JWT}\n"), no_seed);
        refuses(&nsc(JWT, ""), no_seed);
        // A public key is not a seed, and a line merely starting with "SO" is not either.
        refuses(
            &format!("{JWT}\nUAFHG6FUD2UU4SDFVAFUL5LDFO2XM4WYM76UNXTPJYJK7EEMYRBHT2VE\nSO what?\n"),
            no_seed,
        );
    }

    #[test]
    fn a_garbled_seed_says_what_is_wrong_without_quoting_it() {
        let why = "the NKey seed in the credentials";
        refuses(&nsc(JWT, &SEED[..50]), &format!("{why} has 50 characters"));
        refuses(
            &nsc(JWT, &SEED.replace('W', "w")),
            &format!("{why} is not base32"),
        );
        let mut bad_crc = SEED.to_string();
        bad_crc.replace_range(57.., "A");
        refuses(&nsc(JWT, &bad_crc), &format!("{why} fails its checksum"));
        refuses(&format!("{JWT}\n{bad_crc}\n"), "checksum");
    }

    #[test]
    fn debug_shows_neither_value() {
        let creds = parse_creds(&nsc(JWT, SEED)).unwrap();
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains(&SEED[..10]) && !shown.contains(&JWT[..10]),
            "{shown}"
        );
        assert_eq!(
            shown,
            format!("Creds {{ jwt: <{} bytes>, seed: <redacted> }}", JWT.len())
        );
    }
}
