//! A handler's arguments: [`FromMessage`] makes each one from the incoming message
//! ([`Msg<T>`] with its payload decoded, the raw [`Message`], [`AppHandle`],
//! [`State<S>`](crate::State)), or rejects the message with a [`Rejection`].

use std::any::TypeId;
use std::ops::{Deref, DerefMut};

use serde_json::Value;

use super::context::AppHandle;
use super::reply::Rejection;
use super::trace::Trace;
use crate::message::{Headers, Message};
use crate::payload::FromPayload;

/// A received message with its data decoded as `T`: `serde_json::Value` (the default,
/// Panini's `dict`), `String`, `Vec<u8>` or `Json<YourType>`.
///
/// If the payload cannot be decoded as `T`, the handler is not called; a request gets
/// the reply `{"success":false,"error":"MessageSchemaError"}` (Panini's wire contract).
///
/// ```no_run
/// use panini::{App, Json, Msg};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// let mut app = App::new("thermo");
/// app.listen("readings.*", |msg: Msg<Json<Reading>>| async move {
///     let site = msg.subject.trim_start_matches("readings."); // what `*` matched
///     let trace = msg.headers.as_ref().and_then(|h| h.get("X-Trace-Id"));
///     let Json(reading) = msg.data;
///     println!("{site}/{}: {} °C (trace {trace:?})", reading.sensor, reading.celsius);
/// });
/// app.start();
/// ```
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

/// A value a handler can take as an argument, made from the incoming message.
///
/// Implement it for an extractor of your own: here the `X-Trace-Id` header, or
/// `untraced` when the sender set none (see [`Rejection`] for one that refuses messages).
///
/// ```
/// use panini::{App, AppHandle, FromMessage, Message, Msg, Rejection};
/// use serde_json::Value;
///
/// struct TraceId(String);
///
/// impl FromMessage for TraceId {
///     fn from_message(msg: &Message, _app: &AppHandle) -> Result<Self, Rejection> {
///         let id = msg.headers.as_ref().and_then(|h| h.get("X-Trace-Id"));
///         Ok(TraceId(id.unwrap_or("untraced").to_string()))
///     }
/// }
///
/// let mut app = App::new("orders");
/// app.listen("orders.place", |msg: Msg<Value>, TraceId(id): TraceId| async move {
///     println!("[{id}] order {}", msg.data);
/// });
/// ```
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

    /// The app state this argument needs, if any (the type of `S` for a `State<S>`): the
    /// app checks at start that every endpoint's states were registered.
    #[doc(hidden)]
    fn required_state() -> Option<(TypeId, &'static str)> {
        None
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

impl FromMessage for Trace {
    fn from_message(msg: &Message, _: &AppHandle) -> Result<Self, Rejection> {
        Ok(Trace::of(msg))
    }
}

/// A handler argument: a clone of the app state of type `S`, registered with
/// [`App::state`](crate::App::state). NATS handlers ([`App::listen`](crate::App::listen))
/// and HTTP routes (`app.http().get(..)` and the other verbs) take it alike, so they
/// share one value: put what they share behind an `Arc` (an `Arc<Mutex<..>>`, atomics, a
/// pool) and each clone sees the others' changes.
///
/// Take it by pattern, `State(counter): State<Counter>`, or keep the wrapper: it derefs
/// to `S`. A `listen` handler asking for a type that was never registered fails the
/// app's start, before it connects: the error names the subject and says "no state of
/// type … was registered with App::state". A handler added at run time
/// (`subscribe_new_subject`) or an HTTP route asking for one does not run: a request gets
/// an error reply with code 500 and the description `internal error` (an HTTP client a
/// generic 500), the log says the same, and the endpoint goes on serving.
///
/// ```no_run
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// use panini::{App, State};
/// use serde_json::json;
///
/// #[derive(Clone, Default)]
/// struct Hits(Arc<AtomicU64>);
///
/// impl Hits {
///     fn add(&self) -> u64 {
///         self.0.fetch_add(1, Ordering::SeqCst) + 1
///     }
///     fn get(&self) -> u64 {
///         self.0.load(Ordering::SeqCst)
///     }
/// }
///
/// let mut app = App::new("counter");
/// app.state(Hits::default());
/// // a NATS handler...
/// app.listen("hits.add", |State(hits): State<Hits>| async move { json!(hits.add()) });
/// // ...and an HTTP route count on the same number (`State` derefs to `Hits`)
/// # #[cfg(feature = "http")]
/// app.http().get("/hits", |hits: State<Hits>| async move { hits.get().to_string() });
/// app.start();
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State<S>(pub S);

impl<S> Deref for State<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

impl<S> DerefMut for State<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.0
    }
}

impl<S: Clone + Send + Sync + 'static> FromMessage for State<S> {
    fn from_message(_: &Message, app: &AppHandle) -> Result<Self, Rejection> {
        Ok(State(app.inner.states.require()?))
    }

    fn required_state() -> Option<(TypeId, &'static str)> {
        Some((TypeId::of::<S>(), std::any::type_name::<S>()))
    }
}
