//! Middlewares: Panini's four hooks (`send_publish`, `send_request`, `listen_publish`,
//! `listen_request`) and the catch-alls (`send_any`, `listen_any`), as async closures that
//! receive the value and a [`Next`] to call (or not: a middleware may short-circuit).
//!
//! # Order
//! Like Panini, the middleware added **last runs first** (it is the outermost): with `m1`
//! then `m2` added, a message goes `m2 before → m1 before → handler → m1 after → m2 after`.
//!
//! Send hooks wrap [`AppHandle::publish`](crate::AppHandle::publish) and
//! [`AppHandle::request`](crate::AppHandle::request) (and their `_sync` twins); they do not
//! wrap handler replies or the start event, as in Panini. Listen hooks see the raw
//! [`Message`] before its payload is decoded for the handler, and the [`Reply`] (if any)
//! after; `listen_publish` runs for messages without a reply subject, `listen_request` for
//! those with one. Sync handlers work under listen middlewares.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use smol::future::Boxed;

use super::reply::Reply;
use crate::error::Result;
use crate::message::{Headers, Message};

/// A Panini-style middleware class: one type with up to four hooks, registered with
/// [`App::add_middleware`](crate::App::add_middleware). Each hook it does not define
/// passes straight through. Its hooks are registered together, so the middleware added last
/// is the outermost for every hook.
///
/// ```
/// use panini::middleware::{ListenResult, Middleware, Next, Outgoing, SendResult};
/// use panini::Message;
///
/// struct Printer;
///
/// impl Middleware for Printer {
///     async fn send_publish(&self, out: Outgoing, next: Next<Outgoing, SendResult>) -> SendResult {
///         println!("do something before publish");
///         let result = next.run(out).await;
///         println!("do something after publish");
///         result
///     }
///
///     async fn listen_request(&self, msg: Message, next: Next<Message, ListenResult>) -> ListenResult {
///         println!("do something before listen request");
///         next.run(msg).await
///     }
/// }
///
/// let mut app = panini::App::new("svc");
/// app.add_middleware(Printer);
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Around every `publish`.
    fn send_publish(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        next.run(out)
    }

    /// Around every `request`.
    fn send_request(
        &self,
        out: Outgoing,
        next: Next<Outgoing, SendResult>,
    ) -> impl Future<Output = SendResult> + Send {
        next.run(out)
    }

    /// Around handlers of messages without a reply subject.
    fn listen_publish(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        next.run(msg)
    }

    /// Around handlers of requests.
    fn listen_request(
        &self,
        msg: Message,
        next: Next<Message, ListenResult>,
    ) -> impl Future<Output = ListenResult> + Send {
        next.run(msg)
    }
}

/// A message on its way out through the send middlewares: a middleware may read or
/// change any of it before [`Next::run`] sends it.
///
/// ```
/// # use panini::App;
/// let mut app = App::new("orders");
/// // in staging, everything this service sends goes under `staging.`
/// if std::env::var("STAGING").is_ok() {
///     app.send_any(|mut out, next| async move {
///         out.subject = format!("staging.{}", out.subject);
///         next.run(out).await
///     });
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Publish or request.
    pub kind: SendKind,
    /// The subject.
    pub subject: String,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Headers, if any.
    pub headers: Option<Headers>,
    /// The reply subject of a publish, if any.
    pub reply_to: Option<String>,
    /// The timeout of a request.
    pub timeout: Duration,
}

/// Which send hook an [`Outgoing`] goes through.
///
/// ```
/// # use panini::App;
/// use panini::middleware::SendKind;
///
/// let mut app = App::new("orders");
/// app.send_any(|out, next| async move {
///     match out.kind {
///         SendKind::Publish => println!("publish to {}", out.subject),
///         SendKind::Request => println!("request to {} ({:?} at most)", out.subject, out.timeout),
///         SendKind::JsPublish => println!("publish to stream subject {}", out.subject),
///         _ => {}
///     }
///     next.run(out).await
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendKind {
    /// `publish`: the result is `None`.
    Publish,
    /// `request`: the result is the response.
    Request,
    /// `publish_js`: a publish to a JetStream stream; the result is the stream's ack (the
    /// `send_publish` and `send_any` hooks see it, `send_request` does not).
    JsPublish,
}

/// The result of a send: `None` for a publish, the response for a request (and the
/// stream's ack message for a JetStream publish).
pub type SendResult = Result<Option<Message>>;

/// What a listen middleware returns: the reply to send, if any.
pub type ListenResult = Option<Reply>;

/// The end of the send chain as the app makes it: the publish or request, one boxed future
/// per call.
pub(crate) type Terminal<I, O> = Arc<dyn Fn(I) -> Boxed<O> + Send + Sync>;

/// Where starting a hook or the end of a chain puts the rest of a run that did not finish
/// at its first poll (which then returns `Poll::Pending`; its waker is registered): the
/// caller polls it again. A start that finishes returns `Poll::Ready` and leaves it alone,
/// so its output goes back through each step as it is.
pub(crate) type Rest<O> = Option<Boxed<O>>;

/// Builds `run` in the box kept in `slot` (or a new one) and polls it once in `cx`: a run
/// that finished leaves its box in `slot` for the next one (`set` drops the old value in
/// place); one still pending is returned with the box. The slot is empty while the future
/// runs, so after a panic it stays empty and a future that panicked is never reused. The
/// reuse of the handlers' runner and of the outermost hook's runner alike.
#[inline(always)]
pub(crate) fn poll_reusing<F: Future>(
    slot: &mut Option<Pin<Box<F>>>,
    run: F,
    cx: &mut Context<'_>,
) -> Result<F::Output, Pin<Box<F>>> {
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
            Ok(output)
        }
        Poll::Pending => Err(boxed),
    }
}

/// The end of a chain: what the innermost [`Next::run`] starts. The endpoint loops' end
/// runs the handler through a reusing runner; the send chain's boxes its publish.
pub(crate) trait End<I, O>: Send + Sync {
    /// Starts the end on the input taken from `input` and polls it once in `cx`; a run
    /// still pending goes to `rest`. The input stays where the future of [`Next::run`]
    /// holds it until the end takes it: a 128-byte message is not copied from step to step
    /// on its way. The caller always passes `Some`.
    fn start(&self, input: &mut Option<I>, rest: &mut Rest<O>, cx: &mut Context<'_>) -> Poll<O>;
}

/// A [`Terminal`] as an [`End`]: its boxed future, polled once.
struct Boxing<I, O>(Terminal<I, O>);

impl<I, O> End<I, O> for Boxing<I, O> {
    fn start(&self, input: &mut Option<I>, rest: &mut Rest<O>, cx: &mut Context<'_>) -> Poll<O> {
        match input.take() {
            Some(input) => poll_boxed((self.0)(input), rest, cx),
            None => unreachable!("the end of a chain is started with its input"),
        }
    }
}

/// Polls `fut` once; if it is still pending, it goes to `rest`.
fn poll_boxed<O>(mut fut: Boxed<O>, rest: &mut Rest<O>, cx: &mut Context<'_>) -> Poll<O> {
    let polled = fut.as_mut().poll(cx);
    if polled.is_pending() {
        *rest = Some(fut);
    }
    polled
}

/// A hook, erased: called with its [`Next`] (one box per call), or run by a
/// [`ChainRunner`], which reuses the box from run to run.
trait ErasedHook<I, O>: Send + Sync {
    fn call(&self, input: I, next: Next<I, O>) -> Boxed<O>;
    fn reusing(self: Arc<Self>) -> Box<dyn HookRunner<I, O>>;
}

type Hook<I, O> = Arc<dyn ErasedHook<I, O>>;

/// A hook as the user wrote it: a closure returning its own future type `Fut`.
struct HookFn<F, Fut>(F, PhantomData<fn() -> Fut>);

impl<I, O, F, Fut> ErasedHook<I, O> for HookFn<F, Fut>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I, Next<I, O>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    fn call(&self, input: I, next: Next<I, O>) -> Boxed<O> {
        Box::pin((self.0)(input, next))
    }

    fn reusing(self: Arc<Self>) -> Box<dyn HookRunner<I, O>> {
        Box::new(ReusingHook {
            hook: self,
            slot: None,
        })
    }
}

/// Runs one hook, again and again, in one loop.
trait HookRunner<I, O>: Send {
    /// Calls the hook on the input taken from `input` (always `Some`) and polls its future
    /// once, in the caller's context; a run still pending goes to `rest`.
    fn start(
        &mut self,
        input: &mut Option<I>,
        next: Next<I, O>,
        rest: &mut Rest<O>,
        cx: &mut Context<'_>,
    ) -> Poll<O>;
}

/// Keeps the allocation of the hook's future when a run finishes at its first poll and
/// builds the next run's future in it, as the handlers' runner does; a run still pending
/// takes the allocation with it (the next run makes a new one).
struct ReusingHook<F, Fut> {
    hook: Arc<HookFn<F, Fut>>,
    slot: Option<Pin<Box<Fut>>>,
}

impl<I, O, F, Fut> HookRunner<I, O> for ReusingHook<F, Fut>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I, Next<I, O>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    fn start(
        &mut self,
        input: &mut Option<I>,
        next: Next<I, O>,
        rest: &mut Rest<O>,
        cx: &mut Context<'_>,
    ) -> Poll<O> {
        let Some(input) = input.take() else {
            unreachable!("a hook is started with its input")
        };
        let run = (self.hook.0)(input, next);
        match poll_reusing(&mut self.slot, run, cx) {
            Ok(output) => Poll::Ready(output),
            Err(pending) => {
                *rest = Some(pending);
                Poll::Pending
            }
        }
    }
}

/// A compiled chain: the hooks that apply, outermost first, and its end.
struct Compiled<I, O> {
    hooks: Box<[Hook<I, O>]>,
    end: Arc<dyn End<I, O>>,
}

/// The rest of the chain: call [`run`](Next::run) to go on.
pub struct Next<I, O> {
    chain: Arc<Compiled<I, O>>,
    index: usize,
}

impl<I, O> std::fmt::Debug for Next<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("index", &self.index)
            .field("hooks", &self.chain.hooks.len())
            .finish_non_exhaustive()
    }
}

impl<I, O> Clone for Next<I, O> {
    fn clone(&self) -> Self {
        Next {
            chain: self.chain.clone(),
            index: self.index,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Next<I, O> {
    /// Runs the inner middlewares and, at the end, the publish, request or handler. A
    /// middleware that never calls it short-circuits the chain; one that calls it on a
    /// clone of `next` can call it again.
    ///
    /// ```
    /// # use panini::{App, Error};
    /// let mut app = App::new("orders");
    /// // a service that is still starting has no responders yet: try once more
    /// app.send_request(|out, next| async move {
    ///     match next.clone().run(out.clone()).await {
    ///         Err(Error::NoResponders) => next.run(out).await,
    ///         result => result,
    ///     }
    /// });
    /// ```
    pub fn run(self, input: I) -> impl Future<Output = O> + Send + 'static {
        NextRun {
            next: Some(self),
            input: Some(input),
            rest: None,
        }
    }

    /// Calls the next hook (or the end of the chain) on the input in `input` and polls it
    /// once in `cx`, a run still pending going to `rest`: one allocation per inner hook
    /// that applies, none for the chain itself, and none for an end that finishes at once
    /// (the handler's runner reuses its own).
    #[inline(always)]
    fn start_polled(
        self,
        input: &mut Option<I>,
        rest: &mut Rest<O>,
        cx: &mut Context<'_>,
    ) -> Poll<O> {
        match self.chain.hooks.get(self.index) {
            Some(hook) => {
                let next = Next {
                    chain: self.chain.clone(),
                    index: self.index + 1,
                };
                match input.take() {
                    Some(input) => poll_boxed(hook.call(input, next), rest, cx),
                    None => unreachable!("a hook is started with its input"),
                }
            }
            None => self.chain.end.start(input, rest, cx),
        }
    }

    /// The run of `input` through the rest of the chain as one boxed future, not polled
    /// yet: the next hook's own box (for a run that goes to a task of its own at once, as
    /// a durable endpoint's do).
    #[cfg(feature = "jetstream")]
    pub(crate) fn start(self, input: I) -> Boxed<O> {
        match self.chain.hooks.get(self.index) {
            Some(hook) => {
                let next = Next {
                    chain: self.chain.clone(),
                    index: self.index + 1,
                };
                hook.call(input, next)
            }
            None => Box::pin(self.run(input)),
        }
    }
}

/// The future of [`Next::run`]: the next hook (or the end) started at its first poll (on
/// the input where this future holds it), and what is left of it polled after that.
struct NextRun<I, O> {
    /// Until the first poll.
    next: Option<Next<I, O>>,
    /// Until the next hook or the end takes it, at the first poll.
    input: Option<I>,
    /// After a first poll that did not finish.
    rest: Rest<O>,
}

// The input is only ever moved, never pinned; the rest is boxed.
impl<I, O> Unpin for NextRun<I, O> {}

impl<I: Send + 'static, O: Send + 'static> Future for NextRun<I, O> {
    type Output = O;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.get_mut();
        if let Some(next) = this.next.take() {
            // The output of a run that finishes here goes back as it is.
            return next.start_polled(&mut this.input, &mut this.rest, cx);
        }
        let Some(rest) = &mut this.rest else {
            panic!("`Next::run` polled after it finished")
        };
        let polled = rest.as_mut().poll(cx);
        if polled.is_ready() {
            this.rest = None;
        }
        polled
    }
}

/// Runs a compiled chain in one loop (an endpoint's): the outermost hook's future reuses
/// its allocation from run to run while runs finish at their first poll.
pub(crate) struct ChainRunner<I, O> {
    /// Where the outermost hook goes on: the chain from its second hook.
    inner: Next<I, O>,
    outer: Box<dyn HookRunner<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> ChainRunner<I, O> {
    /// Starts the run of the input taken from `input` (always `Some`) through the chain
    /// and polls it once in `cx`; a run still pending goes to `rest`.
    pub(crate) fn start(
        &mut self,
        input: &mut Option<I>,
        rest: &mut Rest<O>,
        cx: &mut Context<'_>,
    ) -> Poll<O> {
        self.outer.start(input, self.inner.clone(), rest, cx)
    }
}

/// Which values a hook applies to: the kind of a send (publish or request), or of a
/// received message (without or with a reply subject). Known when the hook is added, so a
/// chain is compiled once per kind with only the hooks that apply: a hook never costs
/// anything for a value it does not apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applies {
    /// Every value.
    Any,
    /// Publishes, or messages without a reply subject.
    Publish,
    /// Requests, or messages with a reply subject.
    Request,
}

impl Applies {
    fn to(self, kind: SendKind) -> bool {
        match self {
            Applies::Any => true,
            Applies::Publish => matches!(kind, SendKind::Publish | SendKind::JsPublish),
            Applies::Request => kind == SendKind::Request,
        }
    }
}

/// The hooks of one direction as the app registers them (hooks are added only while the
/// app is built); [`compile`](Chain::compile) makes the runnable chain of one kind.
pub(crate) struct Chain<I, O> {
    /// Outermost first.
    hooks: Vec<(Applies, Hook<I, O>)>,
}

impl<I, O> Default for Chain<I, O> {
    fn default() -> Self {
        Chain { hooks: Vec::new() }
    }
}

impl<I, O> Clone for Chain<I, O> {
    fn clone(&self) -> Self {
        Chain {
            hooks: self.hooks.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for Chain<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl<I: Send + 'static, O: Send + 'static> Chain<I, O> {
    /// No hook at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Adds `f` as the new outermost hook, for the values `applies` says.
    pub(crate) fn push<F, Fut>(&mut self, applies: Applies, f: F)
    where
        F: Fn(I, Next<I, O>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        let hook: Hook<I, O> = Arc::new(HookFn(f, PhantomData));
        self.hooks.insert(0, (applies, hook));
    }

    /// The runnable chain for values of `kind`, ending in `terminal`: only the hooks that
    /// apply to that kind, outermost first. `None` when no hook applies (the caller then
    /// goes straight to its end, with no chain at all).
    pub(crate) fn compile(&self, kind: SendKind, terminal: Terminal<I, O>) -> Option<Next<I, O>> {
        self.compile_to(kind, Arc::new(Boxing(terminal)))
    }

    /// [`compile`](Chain::compile) with any [`End`].
    fn compile_to(&self, kind: SendKind, end: Arc<dyn End<I, O>>) -> Option<Next<I, O>> {
        let hooks: Box<[Hook<I, O>]> = self
            .hooks
            .iter()
            .filter(|(applies, _)| applies.to(kind))
            .map(|(_, hook)| hook.clone())
            .collect();
        (!hooks.is_empty()).then(|| Next {
            chain: Arc::new(Compiled { hooks, end }),
            index: 0,
        })
    }

    /// The chain for values of `kind`, ending in `end`, as a runner for one loop; `None`
    /// when no hook applies.
    pub(crate) fn runner(
        &self,
        kind: SendKind,
        end: Arc<dyn End<I, O>>,
    ) -> Option<ChainRunner<I, O>> {
        let chain = self.compile_to(kind, end)?;
        let outer = chain.chain.hooks.first()?.clone().reusing();
        Some(ChainRunner {
            inner: Next {
                chain: chain.chain,
                index: 1,
            },
            outer,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// An end that doubles its input and counts its calls.
    #[derive(Default)]
    struct Double(AtomicUsize);

    impl End<u32, u32> for Double {
        fn start(
            &self,
            input: &mut Option<u32>,
            _: &mut Rest<u32>,
            _: &mut Context<'_>,
        ) -> Poll<u32> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(input.take().expect("an input") * 2)
        }
    }

    fn runner(chain: &Chain<u32, u32>, end: &Arc<Double>) -> ChainRunner<u32, u32> {
        let end: Arc<dyn End<u32, u32>> = end.clone();
        chain
            .runner(SendKind::Publish, end)
            .expect("a hook applies")
    }

    /// Runs `f` with a task context (its waker wakes nothing that matters here).
    fn with_cx<T>(f: impl FnOnce(&mut Context<'_>) -> T) -> T {
        let mut f = Some(f);
        smol::block_on(std::future::poll_fn(|cx| {
            Poll::Ready(f.take().expect("polled once")(cx))
        }))
    }

    /// Starts the run of `n` and wants it finished at once.
    fn done(runner: &mut ChainRunner<u32, u32>, n: u32, cx: &mut Context<'_>) -> u32 {
        let mut rest = None;
        match runner.start(&mut Some(n), &mut rest, cx) {
            Poll::Ready(out) => {
                assert!(rest.is_none(), "a finished run leaves no rest");
                out
            }
            Poll::Pending => panic!("want a finished run"),
        }
    }

    #[test]
    fn a_chain_runs_its_hooks_outermost_first_then_its_end() {
        let mut chain = Chain::default();
        chain.push(Applies::Any, |n: u32, next: Next<u32, u32>| next.run(n + 1));
        chain.push(Applies::Any, |n: u32, next: Next<u32, u32>| async move {
            next.run(n * 10).await + 5
        });
        let end = Arc::new(Double::default());
        let mut runner = runner(&chain, &end);
        // (1 * 10 + 1) * 2 + 5, run after run in the reused box
        for _ in 0..3 {
            assert_eq!(with_cx(|cx| done(&mut runner, 1, cx)), 27);
        }
        assert_eq!(end.0.load(Ordering::Relaxed), 3);
        // A hook that does not apply is left out; with none, no runner at all.
        let mut requests_only = Chain::<u32, u32>::default();
        requests_only.push(Applies::Request, |n: u32, next: Next<u32, u32>| next.run(n));
        assert!(runner_of(&requests_only, &end).is_none());
    }

    fn runner_of(chain: &Chain<u32, u32>, end: &Arc<Double>) -> Option<ChainRunner<u32, u32>> {
        let end: Arc<dyn End<u32, u32>> = end.clone();
        chain.runner(SendKind::Publish, end)
    }

    #[test]
    fn a_pending_run_takes_its_box_and_the_next_run_gets_a_new_one() {
        let open = Arc::new(AtomicBool::new(false));
        let mut chain = Chain::default();
        let gate = open.clone();
        chain.push(Applies::Any, move |n: u32, next: Next<u32, u32>| {
            let gate = gate.clone();
            async move {
                if n == 7 {
                    // waits until the test opens the gate
                    std::future::poll_fn(|_| match gate.load(Ordering::Relaxed) {
                        true => Poll::Ready(()),
                        false => Poll::Pending,
                    })
                    .await;
                }
                next.run(n).await
            }
        });
        let end = Arc::new(Double::default());
        let mut runner = runner(&chain, &end);
        let mut rest = None;
        let polled = with_cx(|cx| runner.start(&mut Some(7), &mut rest, cx));
        assert!(polled.is_pending(), "the run of 7 finished: {polled:?}");
        let mut waiting = rest.expect("the rest of the run of 7");
        // Other runs go on while it waits, in a box of their own, again and again.
        for n in 1..4 {
            assert_eq!(with_cx(|cx| done(&mut runner, n, cx)), n * 2);
        }
        assert!(with_cx(|cx| waiting.as_mut().poll(cx)).is_pending());
        open.store(true, Ordering::Relaxed);
        assert_eq!(smol::block_on(waiting), 14);
        assert_eq!(with_cx(|cx| done(&mut runner, 7, cx)), 14);
    }

    #[test]
    fn a_hook_may_call_next_twice_or_not_at_all() {
        let mut chain = Chain::default();
        chain.push(Applies::Any, |n: u32, next: Next<u32, u32>| async move {
            match n {
                0 => 100, // short-circuit: the end never runs
                _ => next.clone().run(n).await + next.run(n + 1).await,
            }
        });
        let end = Arc::new(Double::default());
        let mut runner = runner(&chain, &end);
        assert_eq!(with_cx(|cx| done(&mut runner, 3, cx)), 14);
        assert_eq!(with_cx(|cx| done(&mut runner, 0, cx)), 100);
        assert_eq!(end.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn after_a_hook_panics_the_next_run_works() {
        let mut chain = Chain::default();
        chain.push(Applies::Any, |n: u32, next: Next<u32, u32>| async move {
            assert_ne!(n, 13, "unlucky");
            next.run(n).await
        });
        let end = Arc::new(Double::default());
        let mut runner = runner(&chain, &end);
        assert_eq!(with_cx(|cx| done(&mut runner, 1, cx)), 2);
        let panicked =
            std::panic::catch_unwind(AssertUnwindSafe(|| with_cx(|cx| done(&mut runner, 13, cx))));
        assert!(panicked.is_err());
        assert_eq!(with_cx(|cx| done(&mut runner, 2, cx)), 4);
    }

    #[test]
    fn the_send_chain_ends_in_its_boxed_terminal() {
        let mut chain = Chain::default();
        chain.push(Applies::Any, |n: u32, next: Next<u32, u32>| next.run(n + 1));
        let terminal: Terminal<u32, u32> = Arc::new(|n| Box::pin(async move { n * 3 }));
        let next = chain.compile(SendKind::Request, terminal).expect("a hook");
        assert_eq!(smol::block_on(next.clone().run(1)), 6);
        #[cfg(feature = "jetstream")]
        assert_eq!(smol::block_on(next.start(2)), 9);
    }
}
