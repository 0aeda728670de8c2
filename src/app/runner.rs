//! How a plain async fn or closure becomes an endpoint: [`Handler`] (and [`SyncHandler`])
//! glue extraction ([`extract`](super::extract)) and reply conversion
//! ([`reply`](super::reply)) with one blanket impl per arity (0, 1 or 2 arguments), as
//! axum does; a [`Runner`] runs one endpoint's messages through it, reusing the
//! allocation of the handler's future from run to run.

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};

use smol::future::Boxed;
use smol::future::FutureExt;

use super::context::AppHandle;
use super::extract::FromMessage;
use super::middleware::{poll_reusing, End, ListenResult, Rest};
use super::reply::{settle, IntoReply, Outcome, Rejection};
use super::state::{MissingState, States};
use super::trace;
use crate::message::Message;

/// The erased form every handler is stored as. An endpoint loop keeps one
/// [`Runner`] (which reuses one allocation across runs) for messages that no listen
/// middleware applies to, and the end of its middleware chains ([`end`](BoxedHandler::end))
/// another; [`settled`](BoxedHandler::settled) (one allocation per run) serves the runs
/// that cannot use those.
#[derive(Clone)]
pub(crate) struct BoxedHandler(Arc<dyn Erased>);

/// What an endpoint needs of a handler, whatever its type.
trait Erased: Send + Sync {
    fn runner(&self) -> Box<dyn Runner>;
    fn required_states(&self) -> Vec<(TypeId, &'static str)>;
    fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult>;
}

/// An async handler, erased.
struct AsyncFn<H, T>(H, PhantomData<fn() -> T>);

/// A sync handler, erased.
struct SyncFn<H, T>(H, PhantomData<fn() -> T>);

impl<T: 'static, H: Handler<T>> Erased for AsyncFn<H, T> {
    fn runner(&self) -> Box<dyn Runner> {
        self.0.runner()
    }

    fn required_states(&self) -> Vec<(TypeId, &'static str)> {
        self.0.required_states()
    }

    fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult> {
        self.0.settled(msg, app, subject)
    }
}

impl<T: 'static, H: SyncHandler<T>> Erased for SyncFn<H, T> {
    fn runner(&self) -> Box<dyn Runner> {
        self.0.runner()
    }

    fn required_states(&self) -> Vec<(TypeId, &'static str)> {
        self.0.required_states()
    }

    fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult> {
        self.0.settled(msg, app, subject)
    }
}

impl BoxedHandler {
    /// Erases an async handler.
    pub(crate) fn of_async<T: 'static, H: Handler<T>>(handler: H) -> Self {
        BoxedHandler(Arc::new(AsyncFn(handler, PhantomData)))
    }

    /// Erases a sync handler.
    pub(crate) fn of_sync<T: 'static, H: SyncHandler<T>>(handler: H) -> Self {
        BoxedHandler(Arc::new(SyncFn(handler, PhantomData)))
    }

    /// A runner for one endpoint loop.
    pub(crate) fn runner(&self) -> Box<dyn Runner> {
        self.0.runner()
    }

    /// The first app state the handler takes that `states` lacks.
    pub(crate) fn missing_state(&self, states: &States) -> Option<MissingState> {
        states.missing(&self.0.required_states())
    }

    /// The end of one endpoint loop's listen chains: runs the handler through a runner of
    /// its own, settled into the reply to send (see [`HandlerEnd`]).
    pub(crate) fn end(
        &self,
        app: &AppHandle,
        subject: &Arc<str>,
    ) -> Arc<dyn End<Message, ListenResult>> {
        self.runner().into_end(EndParts {
            app: app.clone(),
            subject: subject.clone(),
            handler: self.clone(),
        })
    }

    /// One run as a single boxed future that ends in the reply to send, its failure
    /// logged under the endpoint's `subject` (see [`settle`]).
    pub(crate) fn settled(
        &self,
        msg: Message,
        app: &AppHandle,
        subject: &Arc<str>,
    ) -> Boxed<ListenResult> {
        self.0.settled(msg, app, subject)
    }
}

/// What the end of an endpoint's listen chains needs besides its runner.
pub(crate) struct EndParts {
    app: AppHandle,
    subject: Arc<str>,
    /// For a run that finds the runner taken.
    handler: BoxedHandler,
}

/// The end of an endpoint's listen chains, over the handler's own runner type `R` (no
/// dynamic call between the two). A run takes the runner (which reuses its future's
/// allocation) for the time of its first poll and gives it back; so a run that finishes at
/// once allocates nothing. With more than one thread, or for a middleware that would start
/// a second run from inside the first's poll, the runner may be taken: that run gets a
/// fresh boxed future ([`BoxedHandler::settled`]) instead.
struct HandlerEnd<F, M> {
    runner: Mutex<Reusing<F, M>>,
    parts: EndParts,
}

impl<F, M> End<Message, ListenResult> for HandlerEnd<F, M>
where
    M: FnMut(Message, &AppHandle) -> Result<F, Rejection> + Send + 'static,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    fn start(
        &self,
        msg: &mut Option<Message>,
        rest: &mut Rest<ListenResult>,
        cx: &mut Context<'_>,
    ) -> Poll<ListenResult> {
        let EndParts {
            app,
            subject,
            handler,
        } = &self.parts;
        let is_request = msg.as_ref().is_some_and(|msg| msg.reply.is_some());
        let mut runner = match self.runner.try_lock() {
            Ok(runner) => runner,
            // Only a panic while the lock is held poisons it, and the runner catches its
            // own: it stays usable (a runner empties its slot after a panic).
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let Some(msg) = msg.take() else {
                    unreachable!("the end of a chain is started with its message")
                };
                let mut run = handler.settled(msg, app, subject);
                let polled = run.as_mut().poll(cx);
                if polled.is_pending() {
                    *rest = Some(run);
                }
                return polled;
            }
        };
        // The message is taken where the future of `Next::run` holds it, by the handler's
        // maker: no copy of it on the way.
        // (A closure of its own, not `start_taking`'s: a second caller of the same one would
        // have the compiler call the guarded part out of line in both.)
        let step = runner.first_poll(
            |make| match msg.take() {
                Some(msg) => make(msg, app),
                None => unreachable!("the end of a chain is started with its message"),
            },
            cx,
        );
        match step {
            Step::Done(Outcome::Reply(reply)) => Poll::Ready(reply),
            Step::Done(failed) => Poll::Ready(settle(failed, subject, is_request)),
            Step::Pending(pending) => {
                drop(runner);
                let subject = subject.clone();
                *rest = Some(Box::pin(async move {
                    settle(pending.await, &subject, is_request)
                }));
                Poll::Pending
            }
        }
    }
}

/// One run as one boxed future: the arguments made and the handler called (both guarded
/// against panics) here, then polled to its end and settled into the reply to send.
fn settled_run<F, M>(
    make: M,
    msg: Message,
    app: &AppHandle,
    subject: &Arc<str>,
) -> Boxed<ListenResult>
where
    M: FnOnce(Message, &AppHandle) -> Result<F, Rejection>,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    let is_request = msg.reply.is_some();
    let subject = subject.clone();
    match std::panic::catch_unwind(AssertUnwindSafe(|| make(msg, app))) {
        Ok(Ok(run)) => Box::pin(async move {
            let outcome = guarded(async move { run.await.into_reply() }).await;
            settle(outcome, &subject, is_request)
        }),
        Ok(Err(r)) => {
            let reply = settle(Outcome::rejected(r), &subject, is_request);
            Box::pin(std::future::ready(reply))
        }
        Err(panic) => {
            let reply = settle(Outcome::panicked(panic), &subject, is_request);
            Box::pin(std::future::ready(reply))
        }
    }
}

/// One run through a fresh runner, as a boxed future: what [`Handler::call`] does.
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

    /// [`start`](Runner::start) on the message taken from `msg` (always `Some`), where the
    /// caller holds it: an endpoint loop passes the message where its queue put it, so
    /// that it is not copied on the way (crate-internal).
    #[doc(hidden)]
    fn start_taking(
        &mut self,
        msg: &mut Option<Message>,
        app: &AppHandle,
        cx: &mut Context<'_>,
    ) -> Step {
        match msg.take() {
            Some(msg) => self.start(msg, app, cx),
            None => unreachable!("a run is started with its message"),
        }
    }

    /// This runner as the end of an endpoint's listen chains (crate-internal: the types
    /// it names are the crate's own).
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn into_end(self: Box<Self>, parts: EndParts) -> Arc<dyn End<Message, ListenResult>>;
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
    M: FnMut(Message, &AppHandle) -> Result<F, Rejection> + Send + 'static,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    #[allow(private_interfaces)]
    fn into_end(self: Box<Self>, parts: EndParts) -> Arc<dyn End<Message, ListenResult>> {
        Arc::new(HandlerEnd {
            runner: Mutex::new(*self),
            parts,
        })
    }

    fn start(&mut self, msg: Message, app: &AppHandle, cx: &mut Context<'_>) -> Step {
        self.start_taking(&mut Some(msg), app, cx)
    }

    fn start_taking(
        &mut self,
        msg: &mut Option<Message>,
        app: &AppHandle,
        cx: &mut Context<'_>,
    ) -> Step {
        self.first_poll(
            |make| match msg.take() {
                Some(msg) => make(msg, app),
                None => unreachable!("a run is started with its message"),
            },
            cx,
        )
    }
}

impl<F, M> Reusing<F, M>
where
    M: FnMut(Message, &AppHandle) -> Result<F, Rejection> + Send + 'static,
    F: Future + Send + 'static,
    F::Output: IntoReply,
{
    /// Makes the run with `make_run` (given the maker) and polls it once in `cx`.
    #[inline(always)]
    fn first_poll(
        &mut self,
        make_run: impl FnOnce(&mut M) -> Result<F, Rejection>,
        cx: &mut Context<'_>,
    ) -> Step {
        // Calling the handler runs user code (a closure may work before its async block),
        // so making the run is guarded as well as its first poll. A run that goes on is
        // guarded in its own task.
        let slot = &mut self.slot;
        let make = &mut self.make;
        let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let run = match make_run(make) {
                Ok(run) => run,
                Err(r) => return Step::Done(Outcome::rejected(r)),
            };
            match poll_reusing(slot, run, cx) {
                Ok(output) => Step::Done(output.into_reply()),
                Err(boxed) => {
                    Step::Pending(Box::pin(guarded(async move { boxed.await.into_reply() })))
                }
            }
        }));
        // After a panic the slot is empty (see `poll_reusing`).
        first.unwrap_or_else(|panic| Step::Done(Outcome::panicked(panic)))
    }
}

/// An async fn or closure usable with [`App::listen`](crate::App::listen): 0 to 2
/// arguments that implement [`FromMessage`], returning a future whose output implements
/// [`IntoReply`]. `T` is a marker that tells the impls apart.
///
/// ```
/// use panini::{App, AppHandle, Msg};
/// use serde_json::{json, Value};
///
/// // an async fn of 0, 1 or 2 arguments is a handler...
/// async fn ping() -> &'static str {
///     "pong"
/// }
/// async fn echo(msg: Msg<Value>, app: AppHandle) -> Value {
///     json!({"echo": msg.data, "from": app.service_name()})
/// }
///
/// let mut app = App::new("tools");
/// app.listen("tools.ping", ping);
/// app.listen("tools.echo", echo);
/// // ...and so is an async closure
/// app.listen("tools.len", |text: String| async move { text.len().to_string() });
/// ```
///
/// A struct of your own comes and goes as [`Json`](crate::Json): `Msg<Json<Order>>`, and
/// `Json(value)` back. `Msg<Order>` is not a handler argument, and the compiler's error
/// says to take `Msg<Json<Order>>`:
///
/// ```compile_fail,E0277
/// use panini::{App, Msg};
///
/// #[derive(serde::Deserialize)]
/// struct Order { qty: u32 }
///
/// let mut app = App::new("shop");
/// app.listen("orders.count", |order: Msg<Order>| async move { order.data.qty.to_string() });
/// ```
///
/// ```
/// use panini::{App, Json, Msg};
///
/// #[derive(serde::Deserialize)]
/// struct Order { qty: u32 }
///
/// let mut app = App::new("shop");
/// app.listen("orders.count", |order: Msg<Json<Order>>| async move {
///     let Json(order) = order.data;
///     order.qty.to_string()
/// });
/// ```
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

    /// One run settled into its reply, as one boxed future (crate-internal).
    #[doc(hidden)]
    fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult>;

    /// The app states its arguments need (crate-internal).
    #[doc(hidden)]
    fn required_states(&self) -> Vec<(TypeId, &'static str)>;
}

/// A plain (blocking) fn or closure usable with [`App::listen_sync`](crate::App::listen_sync).
/// It runs on a thread pool, so it may call `publish_sync` / `request_sync`.
///
/// ```
/// use panini::App;
///
/// // a plain fn: CPU-bound work that would hold up an async endpoint's loop
/// fn word_count(text: String) -> String {
///     text.split_whitespace().count().to_string()
/// }
///
/// let mut app = App::new("text");
/// app.listen_sync("text.words", word_count);
/// ```
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

    /// One run settled into its reply, as one boxed future (crate-internal).
    #[doc(hidden)]
    fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult>;

    /// The app states its arguments need (crate-internal).
    #[doc(hidden)]
    fn required_states(&self) -> Vec<(TypeId, &'static str)>;
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

            fn required_states(&self) -> Vec<(TypeId, &'static str)> {
                let all: Vec<Option<(TypeId, &'static str)>> =
                    vec![$($first::required_state(),)? $($rest::required_state(),)*];
                all.into_iter().flatten().collect()
            }

            fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult> {
                #[allow(non_snake_case, unused_variables)]
                settled_run(|msg: Message, app: &AppHandle| {
                    extract!(msg, app; $($first)?; $($rest),*);
                    Ok(self($($first,)? $($rest),*))
                }, msg, app, subject)
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

            fn required_states(&self) -> Vec<(TypeId, &'static str)> {
                let all: Vec<Option<(TypeId, &'static str)>> =
                    vec![$($first::required_state(),)? $($rest::required_state(),)*];
                all.into_iter().flatten().collect()
            }

            fn settled(&self, msg: Message, app: &AppHandle, subject: &Arc<str>) -> Boxed<ListenResult> {
                #[allow(non_snake_case, unused_variables)]
                settled_run(|msg: Message, app: &AppHandle| {
                    extract!(msg, app; $($first)?; $($rest),*);
                    let f = self.clone();
                    Ok(blocking(move || f($($first,)? $($rest),*)))
                }, msg, app, subject)
            }
        }
    };
}

/// Runs a sync handler on the blocking thread pool, with the trace context current where
/// it was made; a panic becomes a failed outcome.
fn blocking<R: IntoReply + Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> impl Future<Output = Outcome> + Send + 'static {
    let trace = trace::current();
    smol::unblock(move || {
        trace::with_current(trace, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| f().into_reply()))
                .unwrap_or_else(Outcome::panicked)
        })
    })
}

handler_impls!(;);
handler_impls!(A;);
handler_impls!(A; B);
