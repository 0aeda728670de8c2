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
use std::sync::Arc;
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

type Hook<I, O> = Arc<dyn Fn(I, Next<I, O>) -> Boxed<O> + Send + Sync>;
pub(crate) type Terminal<I, O> = Arc<dyn Fn(I) -> Boxed<O> + Send + Sync>;

/// The rest of the chain: call [`run`](Next::run) to go on.
pub struct Next<I, O> {
    hooks: Arc<[Hook<I, O>]>,
    index: usize,
    terminal: Terminal<I, O>,
}

impl<I, O> std::fmt::Debug for Next<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("index", &self.index)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl<I, O> Clone for Next<I, O> {
    fn clone(&self) -> Self {
        Next {
            hooks: self.hooks.clone(),
            index: self.index,
            terminal: self.terminal.clone(),
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
    pub async fn run(self, input: I) -> O {
        self.start(input).await
    }

    /// Calls the next hook (or the end of the chain) and returns its future, unpolled:
    /// one allocation per hook that applies, none for the chain itself.
    pub(crate) fn start(self, input: I) -> Boxed<O> {
        match self.hooks.get(self.index) {
            Some(hook) => {
                let hook = hook.clone();
                let next = Next {
                    hooks: self.hooks,
                    index: self.index + 1,
                    terminal: self.terminal,
                };
                hook(input, next)
            }
            None => (self.terminal)(input),
        }
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
    /// Adds `f` as the new outermost hook, for the values `applies` says.
    pub(crate) fn push<F, Fut>(&mut self, applies: Applies, f: F)
    where
        F: Fn(I, Next<I, O>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        let hook: Hook<I, O> = Arc::new(move |input, next| Box::pin(f(input, next)));
        self.hooks.insert(0, (applies, hook));
    }

    /// The runnable chain for values of `kind`, ending in `terminal`: only the hooks that
    /// apply to that kind, outermost first. `None` when no hook applies (the caller then
    /// goes straight to its end, with no chain at all).
    pub(crate) fn compile(&self, kind: SendKind, terminal: Terminal<I, O>) -> Option<Next<I, O>> {
        let hooks: Arc<[Hook<I, O>]> = self
            .hooks
            .iter()
            .filter(|(applies, _)| applies.to(kind))
            .map(|(_, hook)| hook.clone())
            .collect();
        (!hooks.is_empty()).then_some(Next {
            hooks,
            index: 0,
            terminal,
        })
    }
}
