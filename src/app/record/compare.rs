//! What a replay compares, and what it reports: payloads are equal as JSON when both are
//! JSON (after the ignored fields are taken out of both), else byte for byte; a
//! [`ReplayReport`] lists each [`Mismatch`].

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::line::{Payload, Sent};

/// A closure applied to both JSON payloads before they are compared.
pub(super) type Normalize = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// How payloads are compared.
#[derive(Clone, Default)]
pub(super) struct Rules {
    /// JSON pointers (RFC 6901) taken out of both payloads.
    pub(super) ignore: Vec<String>,
    /// Applied to both payloads after the pointers.
    pub(super) normalize: Option<Normalize>,
}

impl Rules {
    /// `None` when the payloads are equal under the rules; else both, as shown in a report.
    pub(super) fn differ(&self, expected: &[u8], got: &[u8]) -> Option<(String, String)> {
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
        match (json(expected), json(got)) {
            (Some(mut expected), Some(mut got)) => {
                self.apply(&mut expected);
                self.apply(&mut got);
                (expected != got).then(|| (shorten(expected.to_string()), shorten(got.to_string())))
            }
            _ => (expected != got).then(|| (show(expected), show(got))),
        }
    }

    fn apply(&self, value: &mut Value) {
        for pointer in &self.ignore {
            remove(value, pointer);
        }
        if let Some(normalize) = &self.normalize {
            normalize(value);
        }
    }
}

/// Takes the value at `pointer` out of `value` (the whole value becomes `null` for `""`;
/// an array element becomes `null`, so the indexes after it still point where they did).
fn remove(value: &mut Value, pointer: &str) {
    if pointer.is_empty() {
        *value = Value::Null;
        return;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let Some(parent) = value.pointer_mut(parent) else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match parent {
        Value::Object(map) => {
            map.shift_remove(&key);
        }
        Value::Array(items) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// Payload bytes as shown in a report: the text, or how many bytes when not UTF-8.
pub(super) fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => shorten(text.to_string()),
        Err(_) => format!("<{} bytes, not UTF-8>", bytes.len()),
    }
}

/// A send as shown in a report: `publish orders.placed {"id":1}`.
pub(super) fn show_sent(sent: &Sent) -> String {
    format!(
        "{} {} {}",
        sent.kind.as_str(),
        sent.subject,
        show(sent.payload.as_bytes())
    )
}

/// A reply as shown in a report.
pub(super) fn show_reply(reply: Option<&Payload>) -> String {
    reply.map_or_else(|| "no reply".to_string(), |p| show(p.as_bytes()))
}

/// At most 300 characters.
fn shorten(mut text: String) -> String {
    const MAX: usize = 300;
    if let Some((cut, _)) = text.char_indices().nth(MAX) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// One difference between the recording and the replayed app.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mismatch {
    /// The `seq` of the recorded message it concerns.
    pub seq: u64,
    /// What differs: `reply`, `out 1 subject`, `out 2 payload`, `out 3 missing`, ...
    pub what: String,
    /// What the recording has.
    pub expected: String,
    /// What the app did.
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {}: expected {} got {}",
            self.seq, self.what, self.expected, self.got
        )
    }
}

/// The outcome of a [`Replay`](super::Replay): how many recorded messages got the same
/// reply and sends from the app, and every difference.
///
/// ```
/// use panini::record::ReplayReport;
///
/// let report = ReplayReport::default();
/// assert!(report.is_match());
/// report.assert_matches(); // panics with the report when something differs
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Recorded messages replayed.
    pub replayed: usize,
    /// Of those, the ones whose reply and sends all matched.
    pub matched: usize,
    /// Every difference, in the recording's order.
    pub mismatches: Vec<Mismatch>,
}

impl ReplayReport {
    /// Whether the app did as recorded.
    pub fn is_match(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// Panics with the report unless the app did as recorded.
    #[track_caller]
    pub fn assert_matches(&self) {
        assert!(self.is_match(), "{self}");
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} recorded messages: {} matched, {} mismatch{}",
            self.replayed,
            self.matched,
            self.mismatches.len(),
            if self.mismatches.len() == 1 { "" } else { "es" }
        )?;
        for mismatch in &self.mismatches {
            write!(f, "\n  {mismatch}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(ignore: &[&str]) -> Rules {
        Rules {
            ignore: ignore.iter().map(|p| p.to_string()).collect(),
            normalize: None,
        }
    }

    #[test]
    fn json_payloads_compare_as_json() {
        let r = rules(&[]);
        assert_eq!(
            r.differ(br#"{"a":1,"b":2}"#, br#"{ "b": 2, "a": 1 }"#),
            None
        );
        let (expected, got) = r.differ(br#"{"a":1}"#, br#"{"a":2}"#).unwrap();
        assert_eq!(
            (expected.as_str(), got.as_str()),
            (r#"{"a":1}"#, r#"{"a":2}"#)
        );
    }

    #[test]
    fn other_payloads_compare_as_bytes() {
        let r = rules(&[]);
        assert_eq!(r.differ(b"hi there", b"hi there"), None);
        assert!(r.differ(b"hi", b"ho").is_some());
        let (expected, _) = r.differ(&[0xff, 1], b"x").unwrap();
        assert_eq!(expected, "<2 bytes, not UTF-8>");
    }

    #[test]
    fn ignored_pointers_are_taken_out_of_both() {
        let r = rules(&["/at", "/meta/id", "/list/1", "/a~1b", "/missing/x"]);
        let expected = br#"{"at":1,"meta":{"id":"x","k":1},"list":[1,2,3],"a/b":0,"v":true}"#;
        let got = br#"{"at":2,"meta":{"id":"y","k":1},"list":[1,9,3],"a/b":5,"v":true}"#;
        assert_eq!(r.differ(expected, got), None);
        assert!(rules(&["/at"]).differ(expected, got).is_some());
        assert_eq!(rules(&[""]).differ(b"1", b"2"), None, "\"\" ignores it all");
    }

    #[test]
    fn normalize_runs_on_both() {
        let r = Rules {
            ignore: Vec::new(),
            normalize: Some(Arc::new(|v: &mut Value| {
                if let Some(id) = v.get_mut("id") {
                    *id = Value::from("ID");
                }
            })),
        };
        assert_eq!(r.differ(br#"{"id":"a1"}"#, br#"{"id":"b2"}"#), None);
    }

    #[test]
    fn long_payloads_are_shortened_in_reports() {
        let long = "x".repeat(1000);
        assert_eq!(show(long.as_bytes()).chars().count(), 301);
    }

    #[test]
    fn a_report_lists_each_mismatch() {
        let report = ReplayReport {
            replayed: 2,
            matched: 1,
            mismatches: vec![Mismatch {
                seq: 2,
                what: "reply".into(),
                expected: "1".into(),
                got: "2".into(),
            }],
        };
        assert_eq!(
            report.to_string(),
            "replayed 2 recorded messages: 1 matched, 1 mismatch\n  #2 reply: expected 1 got 2"
        );
    }
}
