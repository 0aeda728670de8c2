//! Subject and queue-group rules for what we publish and subscribe.
//!
//! ```text
//! subject = token *("." token)
//! token   = 1*(any byte but ".", space, tab, CR, LF)
//! ```
//!
//! In a subscription a token may be `*` (exactly one token) and the last token may be `>`
//! (one or more tokens). A wildcard glued to other bytes (`foo>`, `a*`) is a literal, as
//! nats-server treats it. Publish subjects hold no wildcard token.
//!
//! ```
//! use panini_proto::subject;
//! assert!(subject::validate_publish(b"orders.eu.created").is_ok());
//! assert!(subject::validate_publish(b"orders.*").is_err());
//! assert!(subject::validate_subscribe(b"orders.*.created").is_ok());
//! assert!(subject::validate_subscribe(b"orders.>").is_ok());
//! assert!(subject::validate_subscribe(b"orders.>.x").is_err());
//! assert!(subject::validate_subscribe(b"foo..bar").is_err());
//! assert!(subject::validate_queue(b"workers").is_ok());
//! ```

use crate::Error;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// One pass over the subject: every token non-empty, no white space, and `check(token,
/// is_last)` holds for every token. (Subjects are checked on every publish: no iterator
/// chains, no second pass.)
fn scan(subject: &[u8], check: impl Fn(&[u8], bool) -> bool) -> Result<(), Error> {
    if subject.is_empty() {
        return Err(Error::InvalidSubject);
    }
    let mut start = 0;
    for (i, &b) in subject.iter().enumerate() {
        if is_space(b) {
            return Err(Error::InvalidSubject);
        }
        if b == b'.' {
            let token = &subject[start..i];
            if token.is_empty() || !check(token, false) {
                return Err(Error::InvalidSubject);
            }
            start = i + 1;
        }
    }
    let last = &subject[start..];
    if last.is_empty() || !check(last, true) {
        return Err(Error::InvalidSubject);
    }
    Ok(())
}

/// Checks a subject to publish to (also a reply subject): no empty token, no white space,
/// no wildcard token.
pub fn validate_publish(subject: &[u8]) -> Result<(), Error> {
    scan(subject, |t, _| t != b"*" && t != b">")
}

/// Checks a subject to subscribe to: as [`validate_publish`], but `*` tokens are allowed,
/// and `>` as the last token.
pub fn validate_subscribe(subject: &[u8]) -> Result<(), Error> {
    scan(subject, |t, last| last || t != b">")
}

/// Checks a queue group name: non-empty, no white space.
pub fn validate_queue(queue: &[u8]) -> Result<(), Error> {
    if queue.is_empty() || queue.iter().any(|&b| is_space(b)) {
        return Err(Error::InvalidSubject);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_by_rule() {
        let ok = |s: &[u8]| validate_publish(s).is_ok();
        let sub = |s: &[u8]| validate_subscribe(s).is_ok();
        for good in [&b"a"[..], b"a.b.c", b"foo>", b"a*", b"\xff.x"] {
            assert!(ok(good) && sub(good), "{good:?}");
        }
        for bad in [
            &b""[..],
            b".",
            b"a.",
            b".a",
            b"a..b",
            b"a b",
            b"a\tb",
            b"a\r",
            b"a\n",
        ] {
            assert!(!ok(bad) && !sub(bad), "{bad:?}");
        }
        for wild in [&b"*"[..], b">", b"a.*", b"a.>", b"*.b"] {
            assert!(!ok(wild) && sub(wild), "{wild:?}");
        }
        assert!(!sub(b">.a") && !sub(b"a.>.b"));
        assert!(validate_queue(b"q1").is_ok() && validate_queue(b"").is_err());
        assert!(validate_queue(b"q 1").is_err());
    }
}
