//! Owned messages and headers: what a subscription yields and a request returns.

use panini_proto::HeaderBlock;

use crate::error::{Error, Result};

/// NATS message headers: names keep their case, may repeat, and keep their order.
///
/// ```
/// use panini::Headers;
/// let mut h = Headers::new();
/// h.insert("Trace-Id", "abc");
/// h.append("Seen-By", "a");
/// h.append("Seen-By", "b");
/// assert_eq!(h.get("Trace-Id"), Some("abc"));
/// assert_eq!(h.get_all("Seen-By").collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing every earlier value of `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.fields.retain(|(n, _)| *n != name);
        self.fields.push((name, value.into()));
        self
    }

    /// Adds a value for `name`, keeping earlier ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The first value of `name` (exact case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends the wire form (`NATS/1.0` block) to `out`, refusing names or values that
    /// cannot be sent.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let fields = self.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        panini_proto::encode_headers(None, fields, out).map_err(|_| Error::InvalidHeader)
    }

    pub(crate) fn from_block(block: &HeaderBlock<'_>) -> Self {
        let fields = block.iter().map(|(n, v)| (lossy(n), lossy(v))).collect();
        Headers { fields }
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            fields: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A message received from NATS.
///
/// Subjects are UTF-8 here; the rare non-UTF-8 subject a server may forward is converted
/// lossily (U+FFFD), and replying to such a reply subject would not reach its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// Where to send the answer, for a request.
    pub reply: Option<String>,
    /// Its headers, if it had any.
    pub headers: Option<Headers>,
    /// The inline status code of the headers block (`503`, `404`, ...), if any.
    pub status: Option<u16>,
    /// The description after the status code, if any.
    pub description: Option<String>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds an owned message from a parsed `MSG`/`HMSG`; a malformed headers block is an
    /// error for this message only.
    pub(crate) fn from_wire(msg: &panini_proto::MsgFrame<'_>) -> Result<Self, panini_proto::Error> {
        let block = msg.header_block().transpose()?;
        Ok(Message {
            subject: lossy(msg.subject),
            reply: msg.reply.map(lossy),
            headers: block.as_ref().map(Headers::from_block),
            status: block.as_ref().and_then(HeaderBlock::status),
            description: block.as_ref().and_then(|b| b.description()).map(lossy),
            payload: msg.payload.to_vec(),
        })
    }

    /// The payload as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// True for the server's "no responders" status: 503 with an empty payload.
    pub fn is_no_responders(&self) -> bool {
        self.status == Some(503) && self.payload.is_empty()
    }
}
