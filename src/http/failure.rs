//! What becomes of a handler's error: the client gets a generic 500, the log gets the
//! error's text with the request's method and path.
//!
//! A handler's `Err` turns into a response inside `IntoResponse`, which does not know the
//! request. So while the router polls a handler it opens a scope on the polling thread;
//! [`failed`] puts the error there, and the router, which knows the request, logs it when
//! the poll returns. An error turned into a response outside any scope (a user calling
//! `into_response` in a task of their own) is logged at once, without the request.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;

use super::request::Method;
use crate::error::BoxError;
use crate::log::log_at;

thread_local! {
    /// The errors of the handler being polled on this thread; `None` outside a poll.
    static SCOPE: RefCell<Option<Vec<BoxError>>> = const { RefCell::new(None) };
}

/// Reports a handler's error that is being answered with a 500.
pub(crate) fn failed(error: BoxError) {
    let unclaimed = SCOPE.with(|scope| match scope.borrow_mut().as_mut() {
        Some(errors) => {
            errors.push(error);
            None
        }
        None => Some(error),
    });
    if let Some(error) = unclaimed {
        log_at!(Error, "panini::http", "handler failed: {error}");
    }
}

/// Polls `call` to its end, logging the errors it reports through [`failed`] with
/// `method` and `path`.
pub(crate) async fn logged<F: Future + Unpin>(
    mut call: F,
    method: Method,
    path: &str,
) -> F::Output {
    poll_fn(|cx| {
        let scope = Scope::enter();
        let poll = Pin::new(&mut call).poll(cx);
        for error in scope.leave() {
            log_at!(
                Error,
                "panini::http",
                "{} {path} failed: {error}",
                method.as_str()
            );
        }
        poll
    })
    .await
}

/// An open scope; dropping it (also when the handler panics) restores the one before.
struct Scope {
    outer: Option<Option<Vec<BoxError>>>,
}

impl Scope {
    fn enter() -> Scope {
        let outer = SCOPE.with(|scope| scope.replace(Some(Vec::new())));
        Scope { outer: Some(outer) }
    }

    /// Closes the scope; the errors reported in it.
    fn leave(mut self) -> Vec<BoxError> {
        let outer = self.outer.take().unwrap_or_default();
        SCOPE.with(|scope| scope.replace(outer)).unwrap_or_default()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(outer) = self.outer.take() {
            SCOPE.with(|scope| scope.replace(outer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors reported while the router polls are claimed by its scope; the scope is
    /// closed again afterwards, also after a panic.
    #[test]
    fn errors_go_to_the_open_scope_only() {
        let scope = Scope::enter();
        failed("one".into());
        failed("two".into());
        let errors: Vec<String> = scope.leave().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors, ["one", "two"]);
        assert!(SCOPE.with(|s| s.borrow().is_none()), "closed");

        let panicked = std::panic::catch_unwind(|| {
            let _scope = Scope::enter();
            panic!("in a handler");
        });
        assert!(panicked.is_err());
        assert!(SCOPE.with(|s| s.borrow().is_none()), "closed by the unwind");
    }
}
