//! How a plain async fn or closure becomes an endpoint: [`FromMessage`] extracts its
//! arguments, [`IntoReply`] turns its return value into the reply, and [`Handler`] glues
//! the two with one blanket impl per arity (0, 1 or 2 arguments), as axum does.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use serde_json::Value;
use smol::future::Boxed;
use smol::future::FutureExt;

use crate::error::BoxError;
use crate::handle::AppHandle;
use crate::message::{Headers, Message};
use crate::payload::{FromPayload, IntoPayload, Json};

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

impl From<crate::state::MissingState> for Rejection {
    fn from(missing: crate::state::MissingState) -> Self {
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

/// A reply to send: payload and optional headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The payload.
    pub payload: Vec<u8>,
    /// Headers, if any.
    pub headers: Option<Headers>,
}

/// What a handler run came to.
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

/// The erased form every handler is stored as: a maker of [`Runner`]s. An endpoint loop
/// without middleware keeps one runner (which reuses one allocation across runs); the
/// middleware chain runs each message through a runner of its own ([`run_once`]).
#[derive(Clone)]
pub(crate) struct BoxedHandler {
    runner: Arc<dyn Fn() -> Box<dyn Runner> + Send + Sync>,
}

impl BoxedHandler {
    /// Erases a handler, given how to make its runners (`Handler::runner` or
    /// `SyncHandler::runner`).
    pub(crate) fn new(runner: impl Fn() -> Box<dyn Runner> + Send + Sync + 'static) -> Self {
        BoxedHandler {
            runner: Arc::new(runner),
        }
    }

    /// One run of the handler, as a boxed future.
    pub(crate) fn call(&self, msg: Message, app: AppHandle) -> Boxed<Outcome> {
        run_once(self.runner(), msg, app)
    }

    /// A runner for one endpoint loop.
    pub(crate) fn runner(&self) -> Box<dyn Runner> {
        (self.runner)()
    }
}

/// One run through a fresh runner, as a boxed future: what [`Handler::call`] and the
/// middleware chain use.
fn run_once(mut runner: Box<dyn Runner>, msg: Message, app: AppHandle) -> Boxed<Outcome> {
    Box::pin(async move {
        let mut msg = Some(msg);
        let step = std::future::poll_fn(|cx| match msg.take() {
            Some(msg) => Poll::Ready(runner.start(msg, &app, cx)),
            None => Poll::Pending, // not polled again once ready
        })
        .await;
        match step {
            Step::Done(outcome) => outcome,
            Step::Pending(rest) => rest.await,
        }
    })
}

/// What a handler run came to at its first poll.
pub enum Step {
    /// It finished.
    Done(Outcome),
    /// It waits on something: the rest of the run, to be polled in a task of its own.
    Pending(Boxed<Outcome>),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Done(outcome) => f.debug_tuple("Done").field(outcome).finish(),
            Step::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Runs the messages of one endpoint loop through its handler. Most handlers finish at
/// their first poll; the runner then keeps the allocation of the handler's future and
/// builds the next run's future in it, so such a run allocates nothing. A run that is still
/// pending takes the allocation with it (the next run makes a new one).
///
/// Not part of the public API: [`Handler`] names it only for the crate's own use.
pub trait Runner: Send {
    /// Starts one run and polls it once, in the caller's task context.
    fn start(&mut self, msg: Message, app: &AppHandle, cx: &mut Context<'_>) -> Step;
}

/// A [`Runner`] over a maker of the handler's own (concrete) future type `F`: the maker
/// extracts the arguments and calls the handler, and the runner turns the output into an
/// [`Outcome`] itself, so no wrapper future (nor a copy of the handler) is made per run.
struct Reusing<F, M> {
    make: M,
    slot: Option<Pin<Box<F>>>,
}

fn reusing<F, M>(make: M) -> Box<dyn Runner>
where
    M: FnMut(Message, &AppHandle) -> Result<F, Rejection> + Send + 'static,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    Box::new(Reusing { make, slot: None })
}

impl<F, M> Runner for Reusing<F, M>
where
    M: FnMut(Message, &AppHandle) -> Result<F, Rejection> + Send,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    fn start(&mut self, msg: Message, app: &AppHandle, cx: &mut Context<'_>) -> Step {
        // Calling the handler runs user code (a closure may work before its async block),
        // so making the run is guarded as well as its first poll. A run that goes on is
        // guarded in its own task.
        let slot = &mut self.slot;
        let make = &mut self.make;
        let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let run = match make(msg, app) {
                Ok(run) => run,
                Err(r) => return Step::Done(Outcome::rejected(r)),
            };
            // A finished future's box is reused: `set` drops the old value in place.
            let mut boxed = match slot.take() {
                Some(mut reused) => {
                    reused.as_mut().set(run);
                    reused
                }
                None => Box::pin(run),
            };
            match boxed.as_mut().poll(cx) {
                Poll::Ready(output) => {
                    *slot = Some(boxed);
                    Step::Done(output.into_reply())
                }
                Poll::Pending => {
                    Step::Pending(Box::pin(guarded(async move { boxed.await.into_reply() })))
                }
            }
        }));
        // After a panic the slot is empty: a future that panicked is never reused.
        first.unwrap_or_else(|panic| Step::Done(Outcome::panicked(panic)))
    }
}

/// An async fn or closure usable with [`App::listen`](crate::App::listen): 0 to 2
/// arguments that implement [`FromMessage`], returning a future whose output implements
/// [`IntoReply`]. `T` is a marker that tells the impls apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a panini handler",
    note = "a handler is an async fn or closure taking 0 to 2 arguments that implement FromMessage (Msg<T>, AppHandle, State<S>, ...) and returning a value that implements IntoReply ((), serde_json::Value, String, Vec<u8>, Json<T>, Result<..>)",
    note = "for a struct of your own, take `Msg<Json<MyStruct>>` (not `Msg<MyStruct>`) and return `Json(value)`: Json<T> works for any T with serde's Deserialize / Serialize"
)]
pub trait Handler<T>: Clone + Send + Sync + 'static {
    /// Runs the handler on one message; panics become an [`Outcome::Failed`].
    fn call(&self, msg: Message, app: AppHandle) -> Boxed<Outcome> {
        run_once(self.runner(), msg, app)
    }

    /// The runner an endpoint loop uses (crate-internal; the blanket impls provide it).
    #[doc(hidden)]
    fn runner(&self) -> Box<dyn Runner>;
}

/// A plain (blocking) fn or closure usable with [`App::listen_sync`](crate::App::listen_sync).
/// It runs on a thread pool, so it may call `publish_sync` / `request_sync`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a panini sync handler",
    note = "a sync handler is a fn or closure taking 0 to 2 FromMessage arguments and returning an IntoReply value"
)]
pub trait SyncHandler<T>: Clone + Send + Sync + 'static {
    /// Runs the handler on one message, on the blocking thread pool.
    fn call(&self, msg: Message, app: AppHandle) -> Boxed<Outcome> {
        run_once(self.runner(), msg, app)
    }

    /// The runner an endpoint loop uses (crate-internal; the blanket impls provide it).
    #[doc(hidden)]
    fn runner(&self) -> Box<dyn Runner>;
}

async fn guarded<F: Future<Output = Outcome>>(fut: F) -> Outcome {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(Outcome::panicked)
}

/// Makes a handler's arguments: the later ones by reference, then the first one from the
/// message itself; a rejection returns `Err` from the enclosing closure.
macro_rules! extract {
    ($msg:ident, $app:ident; $($first:ident)?; $($rest:ident),*) => {
        $(let $rest = $rest::from_message(&$msg, $app)?;)*
        $(let $first = $first::from_message_owned($msg, $app)?;)?
    };
}

macro_rules! handler_impls {
    ($($first:ident)?; $($rest:ident),*) => {
        impl<F, Fut, $($first,)? $($rest,)*> Handler<(Fut, $($first,)? $($rest,)*)> for F
        where
            F: Fn($($first,)? $($rest),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoReply,
            $($first: FromMessage + Send + 'static,)?
            $($rest: FromMessage + Send + 'static,)*
        {
            fn runner(&self) -> Box<dyn Runner> {
                let f = self.clone();
                #[allow(non_snake_case, unused_variables)]
                reusing(move |msg: Message, app: &AppHandle| {
                    extract!(msg, app; $($first)?; $($rest),*);
                    Ok(f($($first,)? $($rest),*))
                })
            }
        }

        impl<F, R, $($first,)? $($rest,)*> SyncHandler<(R, $($first,)? $($rest,)*)> for F
        where
            F: Fn($($first,)? $($rest),*) -> R + Clone + Send + Sync + 'static,
            R: IntoReply + Send + 'static,
            $($first: FromMessage + Send + 'static,)?
            $($rest: FromMessage + Send + 'static,)*
        {
            fn runner(&self) -> Box<dyn Runner> {
                let f = self.clone();
                #[allow(non_snake_case, unused_variables)]
                reusing(move |msg: Message, app: &AppHandle| {
                    extract!(msg, app; $($first)?; $($rest),*);
                    let f = f.clone();
                    Ok(blocking(move || f($($first,)? $($rest),*)))
                })
            }
        }
    };
}

/// Runs a sync handler on the blocking thread pool; a panic becomes a failed outcome.
fn blocking<R: IntoReply + Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = Outcome> + Send + 'static {
    smol::unblock(move || {
        std::panic::catch_unwind(AssertUnwindSafe(|| f().into_reply()))
            .unwrap_or_else(Outcome::panicked)
    })
}

handler_impls!(;);
handler_impls!(A;);
handler_impls!(A; B);

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
