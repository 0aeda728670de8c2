//! The headers block of `HMSG` and `HPUB`: [`HeaderBlock`] to read one, [`encode_headers`] to write one.
//!
//! ```text
//! block       = "NATS/1.0" [1*WS status [1*WS description]] CRLF *field CRLF
//! status      = 3DIGIT
//! description = *(any byte but CR, LF)
//! field       = name ":" *WS value CRLF
//! name        = 1*(printable ASCII but ":")
//! value       = *(any byte but CR, LF)        ; surrounding white space is not part of it
//! ```
//!
//! Names keep their case and may repeat; fields keep their order. A folded (continuation)
//! line is rejected, as nats.go does. Decoding never allocates: a [`HeaderBlock`] is the
//! validated raw bytes, and iterating re-splits them.

use crate::Error;

/// A validated headers block, borrowing the raw bytes.
///
/// ```
/// use panini_proto::HeaderBlock;
/// let block = HeaderBlock::parse(b"NATS/1.0 404 No Messages\r\nA: 1\r\na: 2\r\nA:3\r\n\r\n")?;
/// assert_eq!(block.status(), Some(404));
/// assert_eq!(block.description(), Some(&b"No Messages"[..]));
/// assert_eq!(block.get(b"A"), Some(&b"1"[..]));
/// let all: Vec<_> = block.get_all(b"A").collect();
/// assert_eq!(all, [&b"1"[..], &b"3"[..]]);
/// assert_eq!(block.iter().count(), 3);
/// # Ok::<(), panini_proto::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderBlock<'a> {
    raw: &'a [u8],
    status: Option<u16>,
    description: &'a [u8],
    fields: &'a [u8],
}

impl<'a> HeaderBlock<'a> {
    /// Validates a complete headers block (as framed by `HMSG`/`HPUB`, blank line included).
    pub fn parse(raw: &'a [u8]) -> Result<Self, Error> {
        let (after_version, _) = crate::parse::version(raw).map_err(|_| Error::InvalidHeader)?;
        let (status_line, mut rest) = split_crlf(after_version)?;
        let (status, description) = status_line_args(status_line)?;
        let fields_start = raw.len() - rest.len();
        loop {
            let (line, next) = split_crlf(rest)?;
            if line.is_empty() {
                if !next.is_empty() {
                    return Err(Error::InvalidHeader);
                }
                break;
            }
            field(line)?;
            rest = next;
        }
        let fields_end = raw.len() - rest.len();
        Ok(HeaderBlock {
            raw,
            status,
            description,
            fields: raw.get(fields_start..fields_end).unwrap_or_default(),
        })
    }

    /// The inline status code, e.g. `503` for "no responders".
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The description after the status code, e.g. `No Messages`, if any.
    pub fn description(&self) -> Option<&'a [u8]> {
        (!self.description.is_empty()).then_some(self.description)
    }

    /// The fields, in order, as `(name, value)`.
    pub fn iter(&self) -> Fields<'a> {
        Fields { rest: self.fields }
    }

    /// The first value of the field `name` (exact case: NATS names are case-preserving).
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// Every value of the field `name`, in order.
    pub fn get_all<'n>(&self, name: &'n [u8]) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The raw bytes of the block, as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// Iterator over the fields of a [`HeaderBlock`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (line, next) = split_crlf(self.rest).ok()?;
        self.rest = next;
        field(line).ok()
    }
}

/// Splits at the first CRLF; a lone CR or LF before it is an error.
fn split_crlf(input: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let end = memchr::memchr2(b'\r', b'\n', input).ok_or(Error::InvalidHeader)?;
    match input.get(end..end + 2) {
        Some(b"\r\n") => Ok((&input[..end], &input[end + 2..])),
        _ => Err(Error::InvalidHeader),
    }
}

/// `[1*WS status [1*WS description]] *WS`, after the version.
fn status_line_args(line: &[u8]) -> Result<(Option<u16>, &[u8]), Error> {
    let trimmed = trim(line);
    if trimmed.is_empty() {
        return Ok((None, &[]));
    }
    if !line.first().is_some_and(|&b| is_ws(b)) {
        return Err(Error::InvalidHeader);
    }
    let code_end = trimmed
        .iter()
        .position(|&b| is_ws(b))
        .unwrap_or(trimmed.len());
    let (code, description) = trimmed.split_at(code_end);
    let status = match code {
        [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(Error::InvalidHeader),
    };
    Ok((Some(status), trim(description)))
}

/// `field = name ":" *WS value`, returning the name and the trimmed value.
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Error::InvalidHeader)?;
    let (name, value) = line.split_at(colon);
    if !valid_name(name) {
        return Err(Error::InvalidHeader);
    }
    Ok((name, trim(value.get(1..).unwrap_or_default())))
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b':')
}

fn valid_value(value: &[u8]) -> bool {
    !value.iter().any(|&b| b == b'\r' || b == b'\n')
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Appends a headers block to `out`: the status line, each field in order, the blank line.
///
/// Refuses (and appends nothing) on a status outside 100..=999, a description or value with
/// CR or LF, or a name that is empty or holds `:`, white space or control bytes: header
/// injection is not possible through this function. Values are written as given; a reader
/// drops their surrounding white space.
///
/// ```
/// use panini_proto::{encode_headers, HeaderBlock};
/// let mut out = Vec::new();
/// encode_headers(Some((503, b"")), [(&b"Nats-Subject"[..], &b"svc.add"[..])], &mut out)?;
/// assert_eq!(out, b"NATS/1.0 503\r\nNats-Subject: svc.add\r\n\r\n");
/// assert_eq!(HeaderBlock::parse(&out)?.get(b"Nats-Subject"), Some(&b"svc.add"[..]));
/// # Ok::<(), panini_proto::Error>(())
/// ```
pub fn encode_headers<'f, I>(
    status: Option<(u16, &[u8])>,
    fields: I,
    out: &mut Vec<u8>,
) -> Result<(), Error>
where
    I: IntoIterator<Item = (&'f [u8], &'f [u8])>,
{
    let start = out.len();
    let res = write_block(status, fields, out);
    if res.is_err() {
        out.truncate(start);
    }
    res
}

fn write_block<'f>(
    status: Option<(u16, &[u8])>,
    fields: impl IntoIterator<Item = (&'f [u8], &'f [u8])>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    out.extend_from_slice(b"NATS/1.0");
    if let Some((code, description)) = status {
        if !(100..=999).contains(&code) || !valid_value(description) {
            return Err(Error::InvalidHeader);
        }
        out.push(b' ');
        crate::encode::put_num(out, u64::from(code));
        if !description.is_empty() {
            out.push(b' ');
            out.extend_from_slice(description);
        }
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        if !valid_name(name) || !valid_value(value) {
            return Err(Error::InvalidHeader);
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}
