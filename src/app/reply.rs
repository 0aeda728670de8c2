//! A handler's return value as the reply to send: [`IntoReply`] turns it into an
//! [`Outcome`] (a [`Reply`], nothing, or a failure), and a failure becomes an error reply
//! that can always be encoded (the `Nats-Service-Error` headers, Panini's JSON body).

use serde::Serialize;
use serde_json::Value;

use super::state::MissingState;
use crate::error::BoxError;
use crate::log::log_at;
use crate::message::Headers;
use crate::payload::{IntoPayload, Json};

/// Why a handler's arguments could not be made from a message: the payload did not
/// decode as the handler asked (the sender's fault, code 400), or the service lacks what
/// the handler needs, such as a [`State`](crate::State) never registered (code 500).
///
/// A [`FromMessage`](crate::FromMessage) extractor of your own returns it to refuse a
/// message: the handler does not run, and a request gets an error reply with `code`.
///
/// ```
/// use panini::{AppHandle, FromMessage, Message, Rejection};
///
/// /// The tenant in `tenants.<id>.…` subjects.
/// struct Tenant(String);
///
/// impl FromMessage for Tenant {
///     fn from_message(msg: &Message, _app: &AppHandle) -> Result<Self, Rejection> {
///         let mut tokens = msg.subject.split('.');
///         match (tokens.next(), tokens.next()) {
///             (Some("tenants"), Some(id)) => Ok(Tenant(id.to_string())),
///             _ => Err(Rejection {
///                 detail: format!("no tenant in {}", msg.subject),
///                 code: 400, // the sender's fault; 500 for a failure of the service
///             }),
///         }
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// What went wrong, for the log.
    pub detail: String,
    /// The `Nats-Service-Error-Code` of the error reply: 400 (and below 500) for a message
    /// that does not fit, logged as a warning; 500 and up for a failure of the service,
    /// logged as an error.
    pub code: u16,
}

impl From<MissingState> for Rejection {
    fn from(missing: MissingState) -> Self {
        Rejection {
            detail: missing.to_string(),
            code: 500,
        }
    }
}

/// A reply to send: payload and optional headers. Return it from a handler to set
/// headers on the reply.
///
/// ```no_run
/// use panini::{App, Headers, Reply};
///
/// let mut app = App::new("reports");
/// app.listen("reports.csv", |month: String| async move {
///     let csv = format!("month,total\n{month},42\n");
///     Reply {
///         payload: csv.into_bytes(),
///         headers: Some(Headers::from_iter([("Content-Type", "text/csv")])),
///     }
/// });
/// app.start();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The payload.
    pub payload: Vec<u8>,
    /// Headers, if any.
    pub headers: Option<Headers>,
}

/// What a handler run came to: what every [`IntoReply`] value becomes. A handler can
/// return it directly, e.g. to answer with an error code of its own.
///
/// ```no_run
/// use panini::{App, IntoReply, Outcome};
/// use serde_json::json;
///
/// let mut app = App::new("orders");
/// app.listen("orders.get", |id: String| async move {
///     if id == "7" {
///         return json!({"id": 7, "item": "pen"}).into_reply();
///     }
///     Outcome::Failed {
///         code: 404, // Nats-Service-Error-Code
///         description: "no such order".into(), // Nats-Service-Error
///         detail: format!("order {id} not found"), // the log line
///     }
/// });
/// app.start();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this reply (or nothing).
    Reply(Option<Reply>),
    /// The handler failed: answer a request with an error reply, and log.
    Failed {
        /// `Nats-Service-Error-Code`: 400 for a payload that did not decode, 500 otherwise.
        code: u16,
        /// `Nats-Service-Error`.
        description: String,
        /// The detail for the log.
        detail: String,
    },
}

impl Outcome {
    /// The reply this outcome sends: a failure becomes the error headers plus
    /// `{"success":false,"error":"<description>"}`.
    pub(crate) fn into_wire(self) -> Option<Reply> {
        match self {
            Outcome::Reply(reply) => reply,
            Outcome::Failed {
                code, description, ..
            } => Some(error_reply(code, &description)),
        }
    }

    /// The handler's arguments could not be made: a payload that does not decode gets
    /// Panini's `MessageSchemaError`; a failure of the service (5xx) a generic description,
    /// its detail going to the log only.
    pub(crate) fn rejected(r: Rejection) -> Outcome {
        if r.code >= 500 {
            return Outcome::Failed {
                code: r.code,
                description: "internal error".into(),
                detail: r.detail,
            };
        }
        Outcome::Failed {
            code: r.code,
            description: "MessageSchemaError".into(),
            detail: format!("the payload does not decode: {}", r.detail),
        }
    }

    pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>) -> Outcome {
        Outcome::panicked_in("handler", payload)
    }

    /// A listen middleware panicked: the requester gets the reply a panicking handler gets
    /// (it cannot tell the two apart), the log says which it was.
    pub(crate) fn middleware_panicked(payload: Box<dyn std::any::Any + Send>) -> Outcome {
        Outcome::panicked_in("listen middleware", payload)
    }

    fn panicked_in(what: &str, payload: Box<dyn std::any::Any + Send>) -> Outcome {
        let text = crate::error::panic_message(payload.as_ref());
        Outcome::Failed {
            code: 500,
            description: "handler panicked".into(),
            detail: format!("{what} panicked: {text}"),
        }
    }
}

/// The longest error text an error reply carries, in bytes (longer ones are cut, with
/// `…` at the end): a header line, not a document.
pub(crate) const MAX_ERROR_TEXT: usize = 1024;

/// An error reply: the headers `Nats-Service-Error` (the description made
/// [header-safe](header_safe)) and `Nats-Service-Error-Code`, plus
/// `{"success":false,"error":"<description>"}` with the same text. It can always be
/// encoded, whatever the description holds.
pub(crate) fn error_reply(code: u16, description: &str) -> Reply {
    let description = header_safe(description);
    let body = serde_json::json!({"success": false, "error": description});
    let mut headers = Headers::new();
    headers.insert("Nats-Service-Error", description);
    headers.insert("Nats-Service-Error-Code", code.to_string());
    Reply {
        payload: body.to_string().into_bytes(),
        headers: Some(headers),
    }
}

/// `text` as a header value that can always be sent: each control character (CR and LF
/// above all, which would end the header line) becomes a space, and the text is cut to
/// [`MAX_ERROR_TEXT`] bytes on a character boundary.
pub(crate) fn header_safe(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut safe: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < text.len() {
        safe.push('…');
    }
    safe
}

/// A handler's return value, as a reply.
///
/// `()` sends nothing; `serde_json::Value` and `Json<T>` send compact JSON; `String`,
/// `&str` and `Vec<u8>` are sent raw; `Option<T>` sends nothing for `None`; `Result<T, E>`
/// sends an error reply for `Err` (and logs it); [`Reply`] sets headers too.
///
/// ```no_run
/// use panini::{App, BoxError, Json, Msg};
/// use serde::Serialize;
/// use serde_json::Value;
///
/// #[derive(Serialize)]
/// struct Stock { sku: String, left: u32 }
///
/// let mut app = App::new("stock");
/// app.listen("stock.get", |msg: Msg<Value>| async move {
///     // `Err` replies with the headers `Nats-Service-Error: no sku` and code 500
///     let sku = msg.data["sku"].as_str().ok_or("no sku")?;
///     Ok::<_, BoxError>(Json(Stock { sku: sku.to_string(), left: 3 }))
/// });
/// app.start();
/// ```
pub trait IntoReply {
    /// The outcome to act on.
    fn into_reply(self) -> Outcome;
}

/// A reply with the payload's wire form (as [`IntoPayload`] encodes it for publishing).
fn payload_reply(payload: impl IntoPayload) -> Outcome {
    match payload.into_payload() {
        Ok(payload) => Outcome::Reply(Some(Reply {
            payload,
            headers: None,
        })),
        Err(e) => Outcome::Failed {
            code: 500,
            description: "cannot encode reply".into(),
            detail: format!("cannot encode reply: {e}"),
        },
    }
}

impl IntoReply for () {
    fn into_reply(self) -> Outcome {
        Outcome::Reply(None)
    }
}

impl IntoReply for Outcome {
    fn into_reply(self) -> Outcome {
        self
    }
}

impl IntoReply for Reply {
    fn into_reply(self) -> Outcome {
        Outcome::Reply(Some(self))
    }
}

/// The payload types reply as they publish: JSON compact, text and bytes raw.
macro_rules! payload_replies {
    ($($t:ty),*) => {$(
        impl IntoReply for $t {
            fn into_reply(self) -> Outcome {
                payload_reply(self)
            }
        }
    )*};
}

payload_replies!(Value, String, &'static str, Vec<u8>);

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Outcome {
        payload_reply(self)
    }
}

impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self) -> Outcome {
        self.map_or(Outcome::Reply(None), IntoReply::into_reply)
    }
}

impl<T: IntoReply, E: Into<BoxError>> IntoReply for Result<T, E> {
    fn into_reply(self) -> Outcome {
        match self {
            Ok(t) => t.into_reply(),
            Err(e) => {
                let e: BoxError = e.into();
                Outcome::Failed {
                    code: 500,
                    description: e.to_string(),
                    detail: e.to_string(),
                }
            }
        }
    }
}

/// Logs a failed run (naming the endpoint's subject) and turns the outcome into the reply
/// to send. A refusal below 500 (a payload that does not decode) is the sender's fault: a
/// warning, not an error of this service.
pub(crate) fn settle(outcome: Outcome, subject: &str, is_request: bool) -> Option<Reply> {
    if let Outcome::Failed { code, detail, .. } = &outcome {
        let kind = if is_request { "request" } else { "message" };
        if *code < 500 {
            log_at!(
                Warn,
                "panini",
                "{kind} on {subject} refused ({code}): {detail}"
            );
        } else {
            log_at!(
                Error,
                "panini",
                "{kind} on {subject} failed ({code}): {detail}"
            );
        }
    }
    outcome.into_wire()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_turns_control_characters_into_spaces() {
        assert_eq!(header_safe("a\nb\r\nc\td\u{7}"), "a b  c d ");
        assert_eq!(header_safe("plain text"), "plain text");
    }

    #[test]
    fn header_safe_cuts_long_text_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_TEXT); // two bytes each
        let safe = header_safe(&long);
        assert!(safe.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(safe.ends_with('…'));
        assert!(safe.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_error_reply_always_encodes() {
        for text in ["line one\nline two", "\r\n", "", &"x".repeat(100_000)] {
            let reply = error_reply(500, text);
            let mut out = Vec::new();
            reply.headers.unwrap().encode(&mut out).unwrap();
            let body: Value = serde_json::from_slice(&reply.payload).unwrap();
            assert_eq!(body["success"], false);
        }
    }
}
