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

fn tokens(subject: &[u8]) -> Result<impl Iterator<Item = &[u8]>, Error> {
    if subject.is_empty() || subject.iter().any(|&b| is_space(b)) {
        return Err(Error::InvalidSubject);
    }
    if subject.split(|&b| b == b'.').any(<[u8]>::is_empty) {
        return Err(Error::InvalidSubject);
    }
    Ok(subject.split(|&b| b == b'.'))
}

/// Checks a subject to publish to (also a reply subject): no empty token, no white space,
/// no wildcard token.
pub fn validate_publish(subject: &[u8]) -> Result<(), Error> {
    if tokens(subject)?.any(|t| t == b"*" || t == b">") {
        return Err(Error::InvalidSubject);
    }
    Ok(())
}

/// Checks a subject to subscribe to: as [`validate_publish`], but `*` tokens are allowed,
/// and `>` as the last token.
pub fn validate_subscribe(subject: &[u8]) -> Result<(), Error> {
    let mut toks = tokens(subject)?.peekable();
    while let Some(t) = toks.next() {
        if t == b">" && toks.peek().is_some() {
            return Err(Error::InvalidSubject);
        }
    }
    Ok(())
}

/// Checks a queue group name: non-empty, no white space.
pub fn validate_queue(queue: &[u8]) -> Result<(), Error> {
    if queue.is_empty() || queue.iter().any(|&b| is_space(b)) {
        return Err(Error::InvalidSubject);
    }
    Ok(())
}
