//! Parsing a request head with `httparse`: method, target (origin or absolute form), path
//! and query, headers, and what the server itself reads from them: keep-alive, the body's
//! framing (RFC 9112 §6.3) and `Expect: 100-continue`.

use std::mem::MaybeUninit;

use super::query::parse_query;
use super::request::{Method, Parts};
use super::HttpLimits;

/// How the body is framed.
pub(crate) enum Body {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed head: the request (body still empty), the head's length, whether the
/// connection may stay open, the body's framing, and whether the client waits for a
/// `100 Continue`.
pub(crate) struct Head {
    pub(crate) parts: Parts,
    pub(crate) len: usize,
    pub(crate) keep_alive: bool,
    pub(crate) body: Body,
    pub(crate) expects_continue: bool,
}

/// What the server itself reads from the headers, found in one pass: the first `Host`,
/// `Connection`, `Transfer-Encoding` and `Expect`, and every `Content-Length`.
#[derive(Default)]
struct Known<'a> {
    host: bool,
    /// Whether any `Connection` header says `close`, or `keep-alive`.
    close: bool,
    keep_alive: bool,
    /// How many `Transfer-Encoding` headers, and the first one's value.
    encodings: usize,
    transfer_encoding: Option<&'a str>,
    expect: Option<&'a str>,
    /// How many `Content-Length` headers, and the first one's value.
    lengths: usize,
    length: &'a str,
}

impl<'a> Known<'a> {
    fn of(headers: &'a [(String, String)]) -> Self {
        let mut known = Known::default();
        for (name, value) in headers {
            // Every name the server reads has a distinct length: one comparison each.
            let slot = match name.len() {
                4 if name.eq_ignore_ascii_case("host") => {
                    known.host = true;
                    continue;
                }
                6 if name.eq_ignore_ascii_case("expect") => &mut known.expect,
                10 if name.eq_ignore_ascii_case("connection") => {
                    known.close |= contains_ignore_case(value, "close");
                    known.keep_alive |= contains_ignore_case(value, "keep-alive");
                    continue;
                }
                14 if name.eq_ignore_ascii_case("content-length") => {
                    if known.lengths == 0 {
                        known.length = value.trim();
                    }
                    known.lengths += 1;
                    continue;
                }
                17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                    known.encodings += 1;
                    &mut known.transfer_encoding
                }
                _ => continue,
            };
            slot.get_or_insert(value.as_str());
        }
        known
    }
}

/// Parses a complete head, `Ok(None)` while it is incomplete, or the status to refuse it.
pub(crate) fn parse_head(
    buf: &[u8],
    limits: &HttpLimits,
) -> std::result::Result<Option<Head>, u16> {
    // Uninitialised slots: httparse writes only those it fills (no 3 KiB of zeroes to
    // write per request).
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => return Err(431),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => return Err(431),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let method = parsed.method.and_then(Method::parse).ok_or(501u16)?;
    let target = parsed.path.ok_or(400u16)?;
    let version = parsed.version.ok_or(400u16)?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            let value = match std::str::from_utf8(h.value) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(h.value).into_owned(),
            };
            (h.name.to_owned(), value)
        })
        .collect();
    // RFC 9112 §3.2.2: accept the absolute form (`http://host/path`) by dropping the
    // scheme and authority. (A target that starts with `/` is the usual origin form.)
    let target = if target.starts_with('/') {
        target
    } else {
        match target.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                rest.find('/').map_or("/", |i| &rest[i..])
            }
            _ => target,
        }
    };
    let (path, query) = match target.bytes().position(|b| b == b'?') {
        Some(at) => (
            target.get(..at).unwrap_or_default(),
            parse_query(target.get(at + 1..).unwrap_or_default()),
        ),
        None => (target, Vec::new()),
    };
    if !path.starts_with('/') {
        return Err(400);
    }
    let known = Known::of(&headers);
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused.
    if version == 1 && !known.host {
        return Err(400);
    }
    let body = body_kind(&known, limits)?;
    // Any `close` wins; HTTP/1.0 stays open only when asked to.
    let keep_alive = !known.close && (version == 1 || known.keep_alive);
    let expects_continue = known
        .expect
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    let parts = Parts {
        method,
        path: path.to_owned(),
        query,
        headers,
        version,
    };
    Ok(Some(Head {
        parts,
        len: head_len,
        keep_alive,
        body,
        expects_continue,
    }))
}

/// True when `haystack` contains `needle` (ASCII lowercase), ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// How the body is framed: RFC 9112 §6.3. Both headers, a bad or repeated length, or a
/// transfer coding other than chunked are refused.
fn body_kind(known: &Known<'_>, limits: &HttpLimits) -> std::result::Result<Body, u16> {
    // Two framings a proxy may read differently: refused, as two lengths are.
    if known.encodings > 1 {
        return Err(400);
    }
    let chunked = match known.transfer_encoding {
        Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
        Some(_) => return Err(501),
        None => false,
    };
    match (chunked, known.lengths) {
        (true, 0) => Ok(Body::Chunked),
        (true, _) => Err(400),
        (false, 0) => Ok(Body::None),
        (false, 1) => {
            let one = known.length;
            let n: usize = one.parse().map_err(|_| 400u16)?;
            if !one.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            if n > limits.max_body {
                return Err(413);
            }
            Ok(if n == 0 { Body::None } else { Body::Length(n) })
        }
        (false, _) => Err(400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::find;

    /// The head's keep-alive, framing and `Expect` decisions, from one pass over the headers.
    #[test]
    fn heads_are_read_in_one_pass() {
        let limits = HttpLimits::default();
        let parse = |text: &str| match parse_head(text.as_bytes(), &limits) {
            Ok(Some(head)) => Ok((head.keep_alive, head.expects_continue, head.body)),
            Ok(None) => Err(0),
            Err(status) => Err(status),
        };
        let ok = |r: std::result::Result<(bool, bool, Body), u16>| r.ok().map(|(k, e, _)| (k, e));
        assert_eq!(
            ok(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
            Some((true, false))
        );
        let close = "GET / HTTP/1.1\r\nhost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n";
        assert_eq!(ok(parse(close)), Some((false, false)));
        assert_eq!(ok(parse("GET / HTTP/1.0\r\n\r\n")), Some((false, false)));
        let ten = "GET / HTTP/1.0\r\nCONNECTION: keep-alive\r\n\r\n";
        assert_eq!(ok(parse(ten)), Some((true, false)));
        let expect =
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(parse(expect), Ok((true, true, Body::Length(3)))));
        let twice = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
        assert_eq!(parse(twice).err(), Some(400));
        let both =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parse(both).err(), Some(400));
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n";
        assert!(matches!(parse(chunked), Ok((true, false, Body::Chunked))));
        let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse(gzip).err(), Some(501));
        assert_eq!(parse("GET / HTTP/1.1\r\n\r\n").err(), Some(400));
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n").err(), Some(0));
        let absolute = "GET http://example.com/x?a=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let head = parse_head(absolute.as_bytes(), &limits).ok().flatten();
        let parts = head.map(|h| h.parts);
        assert_eq!(parts.as_ref().map(|p| p.path.as_str()), Some("/x"));
        let query = parts.as_ref().map(|p| p.query.as_slice());
        assert_eq!(query.and_then(|q| find(q, "a", false)), Some("1"));
        assert_eq!(parts.map(|p| p.headers.len()), Some(1));
    }
}
