//! The JetStream API over core request/reply: one request per call, its JSON reply
//! checked for `{"error": …}` and decoded; paging for the name and list calls; and the
//! wire encodings the API uses (durations in nanoseconds, base64 message bodies).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Context;
use super::{ApiError, JetStreamError};
use crate::error::{Error, Result};

/// Only the `error` of a reply: read first, before the reply's own type.
#[derive(Deserialize)]
struct ErrorOnly {
    #[serde(default)]
    error: Option<ApiError>,
}

/// A reply holding one page of a names or list call.
#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    total: usize,
}

impl Context {
    /// Sends `body` (as JSON; nothing for `None`) to `<prefix>.<verb>` and decodes the reply
    /// as `T`, or returns the server's error.
    pub(crate) async fn api<T, B>(&self, verb: &str, body: Option<&B>) -> Result<T>
    where
        T: DeserializeOwned,
        B: Serialize + ?Sized,
    {
        let reply = self.api_raw(verb, body).await?;
        decode_reply(&reply)
    }

    /// [`api`](Self::api) without decoding: the reply's bytes.
    pub(crate) async fn api_raw<B>(&self, verb: &str, body: Option<&B>) -> Result<Vec<u8>>
    where
        B: Serialize + ?Sized,
    {
        let payload = match body {
            Some(body) => serde_json::to_vec(body)?,
            None => Vec::new(),
        };
        let subject = format!("{}.{verb}", self.prefix);
        let reply = self
            .client
            .request_with(&subject, None, payload, self.timeout)
            .await;
        match reply {
            Ok(msg) => Ok(msg.payload),
            Err(Error::NoResponders) => Err(JetStreamError::NotEnabled {
                prefix: self.prefix.to_string(),
            }
            .into()),
            Err(e) => Err(e),
        }
    }

    /// Every page of a names or list call: `pick` takes the items out of one page.
    pub(crate) async fn paged<P, I>(
        &self,
        verb: &str,
        mut body: serde_json::Map<String, serde_json::Value>,
        pick: impl Fn(P) -> Vec<I>,
    ) -> Result<Vec<I>>
    where
        P: DeserializeOwned,
    {
        let mut items = Vec::new();
        loop {
            body.insert("offset".into(), items.len().into());
            let reply = self.api_raw(verb, Some(&body)).await?;
            let page: Paging = decode_reply(&reply)?;
            let got = pick(serde_json::from_slice(&reply)?);
            let empty = got.is_empty();
            items.extend(got);
            // `total` can change between pages; an empty page ends it either way.
            if empty || items.len() >= page.total {
                return Ok(items);
            }
        }
    }
}

/// Decodes an API reply: the server's error if it has one, else a `T`.
pub(crate) fn decode_reply<T: DeserializeOwned>(reply: &[u8]) -> Result<T> {
    let head: ErrorOnly = serde_json::from_slice(reply)?;
    if let Some(e) = head.error {
        return Err(e.into());
    }
    Ok(serde_json::from_slice(reply)?)
}

/// The API's `{"success": true}` replies.
#[derive(Deserialize)]
pub(crate) struct Success {
    #[serde(default)]
    pub(crate) success: bool,
}

/// Durations as the API writes them: integer nanoseconds.
pub(crate) mod nanos {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Negative values (the API's "unset" in some places) read as zero.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = i64::deserialize(d)?;
        Ok(Duration::from_nanos(n.max(0) as u64))
    }

    /// Lists of durations (a consumer's `backoff`).
    pub(crate) mod list {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
            let ns: Vec<u64> = v
                .iter()
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .collect();
            ns.serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<Duration>, D::Error> {
            let ns = Vec::<i64>::deserialize(d)?;
            Ok(ns
                .into_iter()
                .map(|n| Duration::from_nanos(n.max(0) as u64))
                .collect())
        }
    }
}

/// For `skip_serializing_if`: the fields left unset are not sent (a 2.9 server ignores
/// unknown ones silently, and from 2.12 refuses them).
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Decodes standard base64 (RFC 4648, `+` and `/`, padding optional): the bodies and
/// headers of messages read back with `STREAM.MSG.GET`. `None` on a bad character.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

/// Refuses names that would change the API subject they are put in.
pub(crate) fn check_name(name: &str) -> Result<(), JetStreamError> {
    let bad = |c: char| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace();
    if name.is_empty() || name.contains(bad) {
        return Err(JetStreamError::InvalidName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::ErrorCode;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYmE", "fooba"),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                base64_decode(text).as_deref(),
                Some(bytes.as_bytes()),
                "{text}"
            );
        }
        assert_eq!(base64_decode("+/8="), Some(vec![0xfb, 0xff]));
        for bad in ["Z", "Zm9vY", "Zm-v", "Zm9v!A=="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_reply_with_an_error_is_the_error() {
        let reply = br#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#;
        let err = decode_reply::<serde_json::Value>(reply).unwrap_err();
        assert_eq!(err.err_code(), Some(ErrorCode::STREAM_NOT_FOUND));
        let ok: Success = decode_reply(br#"{"success":true}"#).unwrap();
        assert!(ok.success);
    }

    #[test]
    fn durations_are_nanoseconds() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "nanos")]
            d: Duration,
            #[serde(with = "nanos::list")]
            l: Vec<Duration>,
        }
        let t = T {
            d: Duration::from_secs(2),
            l: vec![Duration::from_millis(1), Duration::from_nanos(7)],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"d":2000000000,"l":[1000000,7]}"#);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
        let negative: T = serde_json::from_str(r#"{"d":-1,"l":[]}"#).unwrap();
        assert_eq!(negative.d, Duration::ZERO);
    }

    #[test]
    fn names_with_subject_characters_are_refused() {
        for bad in ["", "a.b", "a*", ">", "a b", "a/b", "a\\b", "a\tb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["ORDERS", "kv_x-1", "Ünï"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
