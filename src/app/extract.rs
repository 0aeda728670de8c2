//! A handler's arguments: [`FromMessage`] makes each one from the incoming message
//! ([`Msg<T>`] with its payload decoded, the raw [`Message`], [`AppHandle`],
//! [`State<S>`](crate::State)), or rejects the message with a [`Rejection`].

use serde_json::Value;

use super::context::AppHandle;
use crate::message::{Headers, Message};
use crate::payload::FromPayload;

/// A received message with its data decoded as `T`: `serde_json::Value` (the default,
/// Panini's `dict`), `String`, `Vec<u8>` or `Json<YourType>`.
///
/// If the payload cannot be decoded as `T`, the handler is not called; a request gets
/// the reply `{"success":false,"error":"MessageSchemaError"}` (Panini's wire contract).
#[derive(Clone, Debug, PartialEq)]
pub struct Msg<T = Value> {
    /// The subject it arrived on.
    pub subject: String,
    /// The reply subject, for a request.
    pub reply: Option<String>,
    /// Its headers, if any.
    pub headers: Option<Headers>,
    /// The decoded payload.
    pub data: T,
}

/// Why a handler's arguments could not be made from a message: the payload did not
/// decode as the handler asked (the sender's fault, code 400), or the service lacks what
/// the handler needs, such as a [`State`](crate::State) never registered (code 500).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// What went wrong, for the log.
    pub detail: String,
    /// The `Nats-Service-Error-Code` of the error reply: 400 (and below 500) for a message
    /// that does not fit, logged as a warning; 500 and up for a failure of the service,
    /// logged as an error.
    pub code: u16,
}

impl From<super::state::MissingState> for Rejection {
    fn from(missing: super::state::MissingState) -> Self {
        Rejection {
            detail: missing.to_string(),
            code: 500,
        }
    }
}

/// A value a handler can take as an argument, made from the incoming message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler argument",
    note = "handler arguments are Msg<T>, Message, AppHandle, State<S>, or a payload type (serde_json::Value, String, Vec<u8>, Json<T>)"
)]
pub trait FromMessage: Sized {
    /// Builds the argument from a borrowed message, or rejects the message.
    fn from_message(msg: &Message, app: &AppHandle) -> Result<Self, Rejection>;

    /// Builds the argument from the message itself. The **first** argument of a handler is
    /// made this way (the others by reference, before it), so `Msg<T>` takes the subject
    /// and payload without copying them.
    fn from_message_owned(msg: Message, app: &AppHandle) -> Result<Self, Rejection> {
        Self::from_message(&msg, app)
    }
}

fn rejection(e: crate::Error) -> Rejection {
    Rejection {
        detail: e.to_string(),
        code: 400,
    }
}

impl<T: FromPayload> FromMessage for Msg<T> {
    fn from_message(msg: &Message, _: &AppHandle) -> Result<Self, Rejection> {
        Ok(Msg {
            data: T::from_payload(&msg.payload).map_err(rejection)?,
            subject: msg.subject.clone(),
            reply: msg.reply.clone(),
            headers: msg.headers.clone(),
        })
    }

    fn from_message_owned(msg: Message, _: &AppHandle) -> Result<Self, Rejection> {
        Ok(Msg {
            data: T::from_payload_owned(msg.payload).map_err(rejection)?,
            subject: msg.subject,
            reply: msg.reply,
            headers: msg.headers,
        })
    }
}

impl<T: FromPayload> FromMessage for T {
    fn from_message(msg: &Message, _: &AppHandle) -> Result<Self, Rejection> {
        T::from_payload(&msg.payload).map_err(rejection)
    }

    fn from_message_owned(msg: Message, _: &AppHandle) -> Result<Self, Rejection> {
        T::from_payload_owned(msg.payload).map_err(rejection)
    }
}

impl FromMessage for Message {
    fn from_message(msg: &Message, _: &AppHandle) -> Result<Self, Rejection> {
        Ok(msg.clone())
    }

    fn from_message_owned(msg: Message, _: &AppHandle) -> Result<Self, Rejection> {
        Ok(msg)
    }
}

impl FromMessage for AppHandle {
    fn from_message(_: &Message, app: &AppHandle) -> Result<Self, Rejection> {
        Ok(app.clone())
    }
}
