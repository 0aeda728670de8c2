//! [`Recording`]: the lines of a recording file, read and parsed, and grouped by message
//! (each `in` with its `reply` and the `out` lines linked to it) for a replay.

use std::collections::HashMap;
use std::path::Path;

use super::error::RecordError;
use super::line::{Line, Received, Replied, Sent};

/// The lines of a recording, read from its JSONL file.
///
/// ```
/// use panini::record::{Line, Recording};
///
/// let recording = Recording::parse(concat!(
///     r#"{"dir":"meta","version":1,"unix_ms":1700000000000}"#, "\n",
///     r#"{"dir":"in","seq":1,"t_ms":0.1,"subject":"greet","reply":true,"payload":"joe"}"#, "\n",
///     r#"{"dir":"reply","seq":1,"t_ms":0.3,"elapsed_ms":0.2,"payload":"hello, joe"}"#, "\n",
/// ))?;
/// assert_eq!(recording.lines().len(), 3);
/// assert!(matches!(&recording.lines()[2], Line::Reply(r) if r.seq == 1));
/// # Ok::<(), panini::record::RecordError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording {
    lines: Vec<Line>,
}

impl Recording {
    /// Reads the recording at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Recording, RecordError> {
        Recording::parse(&std::fs::read_to_string(path)?)
    }

    /// Parses a recording: one JSON object a line; blank lines are skipped.
    pub fn parse(text: &str) -> Result<Recording, RecordError> {
        let mut lines = Vec::new();
        for (n, text) in text.lines().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let line = serde_json::from_str(text).map_err(|source| RecordError::Line {
                line: n + 1,
                source,
            })?;
            lines.push(line);
        }
        Ok(Recording { lines })
    }

    /// Its lines, in the file's order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Each recorded message with its reply and the sends its handler made.
    pub(super) fn cases(&self) -> Vec<Case<'_>> {
        let mut cases: Vec<Case<'_>> = Vec::new();
        let mut by_seq = HashMap::new();
        for line in &self.lines {
            match line {
                Line::In(received) => {
                    by_seq.insert(received.seq, cases.len());
                    cases.push(Case {
                        received,
                        reply: None,
                        outs: Vec::new(),
                    });
                }
                Line::Reply(replied) => {
                    if let Some(&i) = by_seq.get(&replied.seq) {
                        cases[i].reply = Some(replied);
                    }
                }
                Line::Out(sent) => {
                    if let Some(&i) = sent.seq.as_ref().and_then(|seq| by_seq.get(seq)) {
                        cases[i].outs.push(sent);
                    }
                }
                Line::Meta(_) | Line::Gap(_) => {}
            }
        }
        cases
    }
}

/// One recorded message, what its handler answered and what it sent.
pub(super) struct Case<'a> {
    pub(super) received: &'a Received,
    pub(super) reply: Option<&'a Replied>,
    pub(super) outs: Vec<&'a Sent>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) const RECORDING: &str = concat!(
        r#"{"dir":"meta","version":1,"unix_ms":0}"#,
        "\n",
        r#"{"dir":"in","seq":1,"t_ms":0,"subject":"a","reply":true,"payload":"x"}"#,
        "\n",
        r#"{"dir":"in","seq":2,"t_ms":0,"subject":"b","reply":false,"payload":"y"}"#,
        "\n",
        r#"{"dir":"out","seq":2,"t_ms":0,"kind":"publish","subject":"c","payload":"z"}"#,
        "\n",
        r#"{"dir":"out","seq":1,"t_ms":0,"kind":"request","subject":"d","payload":"q","response":{"payload":"r"}}"#,
        "\n",
        r#"{"dir":"out","seq":null,"t_ms":0,"kind":"publish","subject":"tick","payload":""}"#,
        "\n\n",
        r#"{"dir":"reply","seq":1,"t_ms":0,"elapsed_ms":0,"payload":"ok"}"#,
        "\n",
    );

    #[test]
    fn cases_link_replies_and_sends_to_their_message() {
        let recording = Recording::parse(RECORDING).unwrap();
        let cases = recording.cases();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].received.subject, "a");
        assert_eq!(cases[0].reply.map(|r| r.seq), Some(1));
        let outs: Vec<&str> = cases[0].outs.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(outs, ["d"]);
        assert!(cases[1].reply.is_none());
        assert_eq!(cases[1].outs[0].subject, "c");
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let text = format!("{RECORDING}{{\"dir\":\"sideways\"}}\n");
        match Recording::parse(&text) {
            Err(RecordError::Line { line: 9, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
