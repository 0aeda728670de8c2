//! One line of a recording ([`Line`]), as it is written and read, and the payload
//! encoding: UTF-8 text as a JSON string, any other bytes as `{"b64": "<base64>"}`
//! (RFC 4648, with padding). Headers are `[name, value]` pairs, in order, so a name that
//! appears twice keeps both values.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::{Headers, Message};

/// The version of the format, in the first (`meta`) line.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a recording, by its `"dir"`.
///
/// ```
/// use panini::record::Line;
///
/// let line: Line = serde_json::from_str(
///     r#"{"dir":"in","seq":1,"t_ms":0.4,"subject":"orders.place","reply":true,"payload":"{}"}"#,
/// )?;
/// let Line::In(received) = line else { panic!("an incoming message") };
/// assert_eq!(received.subject, "orders.place");
/// assert_eq!(received.payload.as_bytes(), b"{}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dir", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Line {
    /// The first line: the format's version and when the recording started.
    Meta(Meta),
    /// A message an endpoint handled.
    In(Received),
    /// What the handler of a request answered (or that it answered nothing).
    Reply(Replied),
    /// A publish or request a handler (or a task) made.
    Out(Sent),
    /// Lines lost here: the writer fell behind and its queue was full.
    Gap(Gap),
}

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Meta {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// When the recording started, in milliseconds since the Unix epoch; every `t_ms`
    /// counts from then.
    pub unix_ms: u64,
}

/// A message an endpoint handled (`"dir":"in"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Received {
    /// Its number in the recording, from 1: its reply and its sends carry the same.
    pub seq: u64,
    /// When it reached the recorder, in milliseconds since the recording started.
    pub t_ms: f64,
    /// The subject it came on.
    pub subject: String,
    /// Whether it had a reply subject (a request). The subject itself, a one-time inbox,
    /// is not kept.
    pub reply: bool,
    /// Its headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// Its payload.
    pub payload: Payload,
}

/// What the handler of request `seq` answered (`"dir":"reply"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Replied {
    /// The `seq` of the request.
    pub seq: u64,
    /// When the handler finished, in milliseconds since the recording started.
    pub t_ms: f64,
    /// How long the handling took, in milliseconds.
    pub elapsed_ms: f64,
    /// The reply's headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// The reply's payload; `null` when the handler answered nothing.
    pub payload: Option<Payload>,
}

/// A publish or request made through the app's handle (`"dir":"out"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sent {
    /// The `seq` of the message whose handler made it; `null` when made outside a
    /// handler's own future (a task, a hook, a sync handler, a task the handler spawned).
    pub seq: Option<u64>,
    /// When it was made, in milliseconds since the recording started.
    pub t_ms: f64,
    /// Publish, request, or JetStream publish.
    pub kind: SentKind,
    /// Its subject.
    pub subject: String,
    /// The reply subject of a publish, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Its headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// Its payload.
    pub payload: Payload,
    /// The response of a request (the stream's ack for a JetStream publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Body>,
    /// Why it failed, if it did (`no responders`, a timeout, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The kind of a [`Sent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SentKind {
    /// `publish`.
    Publish,
    /// `request`.
    Request,
    /// `publish_js`.
    JsPublish,
}

impl SentKind {
    /// Its name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SentKind::Publish => "publish",
            SentKind::Request => "request",
            SentKind::JsPublish => "js_publish",
        }
    }
}

/// Headers and payload of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Body {
    /// Its headers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// Its payload.
    pub payload: Payload,
}

impl Body {
    pub(super) fn of(msg: &Message) -> Body {
        Body {
            headers: pairs(msg.headers.as_ref()),
            payload: Payload(msg.payload.clone()),
        }
    }

    /// As a message on `subject` (a response the replay gives in place of a service).
    pub(super) fn to_message(&self, subject: &str) -> Message {
        Message {
            subject: subject.to_string(),
            reply: None,
            headers: headers(self.headers.as_deref()),
            status: None,
            description: None,
            payload: self.payload.0.clone(),
        }
    }
}

/// Lines lost at this point of the file (`"dir":"gap"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Gap {
    /// How many.
    pub lines: u64,
}

impl Gap {
    pub(super) fn new(lines: u64) -> Gap {
        Gap { lines }
    }
}

/// Payload bytes: a JSON string when they are UTF-8, else `{"b64": "..."}`.
///
/// ```
/// use panini::record::Payload;
///
/// let text = Payload::from(b"{\"id\":7}".to_vec());
/// assert_eq!(serde_json::to_string(&text)?, r#""{\"id\":7}""#);
/// let binary = Payload::from(vec![0xff, 0x00]);
/// assert_eq!(serde_json::to_string(&binary)?, r#"{"b64":"/wA="}"#);
/// assert_eq!(serde_json::from_str::<Payload>(r#"{"b64":"/wA="}"#)?, binary);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload(bytes)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("b64", &base64(&self.0))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a string, or {"b64": "<base64>"}"#)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Payload, E> {
        Ok(Payload(text.as_bytes().to_vec()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut bytes = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "b64" || bytes.is_some() {
                return Err(de::Error::custom(format!("unexpected key `{key}`")));
            }
            let text: String = map.next_value()?;
            let decoded = unbase64(&text).ok_or_else(|| de::Error::custom("invalid base64"))?;
            bytes = Some(decoded);
        }
        bytes
            .map(Payload)
            .ok_or_else(|| de::Error::missing_field("b64"))
    }
}

/// Headers as `[name, value]` pairs, in order.
pub(super) fn pairs(headers: Option<&Headers>) -> Option<Vec<(String, String)>> {
    let headers = headers?;
    Some(
        headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    )
}

/// Pairs back into headers.
pub(super) fn headers(pairs: Option<&[(String, String)]>) -> Option<Headers> {
    let pairs = pairs?;
    let mut headers = Headers::new();
    for (name, value) in pairs {
        headers.append(name.as_str(), value.as_str());
    }
    Some(headers)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 base64, with `=` padding.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of RFC 4648 base64 with padding; `None` when it is not.
fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c)?;
            n = (n << 6) | v as u32;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(unbase64(encoded).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            assert_eq!(
                unbase64(&base64(&bytes[..len])).as_deref(),
                Some(&bytes[..len])
            );
        }
    }

    #[test]
    fn invalid_base64_is_refused() {
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*", "===="] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_round_trip_through_json() {
        let lines = [
            Line::Meta(Meta {
                version: FORMAT_VERSION,
                unix_ms: 1_700_000_000_000,
            }),
            Line::In(Received {
                seq: 1,
                t_ms: 0.5,
                subject: "a.b".into(),
                reply: true,
                headers: Some(vec![("X".into(), "1".into()), ("X".into(), "2".into())]),
                payload: Payload(vec![0, 159, 146, 150]),
            }),
            Line::Reply(Replied {
                seq: 1,
                t_ms: 1.0,
                elapsed_ms: 0.5,
                headers: None,
                payload: None,
            }),
            Line::Out(Sent {
                seq: None,
                t_ms: 2.0,
                kind: SentKind::Request,
                subject: "c".into(),
                reply_to: None,
                headers: None,
                payload: Payload(b"hi".to_vec()),
                response: Some(Body {
                    headers: None,
                    payload: Payload(b"ok".to_vec()),
                }),
                error: None,
            }),
            Line::Gap(Gap::new(3)),
        ];
        for line in lines {
            let text = serde_json::to_string(&line).unwrap();
            assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line, "{text}");
        }
    }
}
