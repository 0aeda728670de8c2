//! App state: the values registered with [`App::state`](crate::App::state), one per type,
//! that NATS handlers and HTTP routes take as a [`State<S>`] argument and that tasks and
//! hooks read with [`AppHandle::state`](crate::AppHandle::state), so all of them share one
//! value.

use std::any::{type_name, Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::context::AppHandle;
use super::extract::{FromMessage, Rejection};
use crate::message::Message;

/// The registered values, by type.
#[derive(Clone, Default)]
pub(crate) struct States {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl States {
    /// Registers `value` as the state of type `S`, replacing any earlier one.
    pub(crate) fn insert<S: Clone + Send + Sync + 'static>(&mut self, value: S) {
        self.values.insert(TypeId::of::<S>(), Arc::new(value));
    }

    /// A clone of the state of type `S`, if one was registered.
    pub(crate) fn get<S: Clone + 'static>(&self) -> Option<S> {
        self.values.get(&TypeId::of::<S>())?.downcast_ref().cloned()
    }

    /// The state of type `S`, or why there is none.
    pub(crate) fn require<S: Clone + 'static>(&self) -> Result<S, MissingState> {
        self.get().ok_or(MissingState {
            type_name: type_name::<S>(),
        })
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("States")
            .field("count", &self.values.len())
            .finish()
    }
}

/// A handler argument: a clone of the app state of type `S`, registered with
/// [`App::state`](crate::App::state). NATS handlers ([`App::listen`](crate::App::listen))
/// and HTTP routes (`app.http().get(..)` and the other verbs) take it alike, so they
/// share one value: put what they share behind an `Arc` (an `Arc<Mutex<..>>`, atomics, a
/// pool) and each clone sees the others' changes.
///
/// Take it by pattern, `State(counter): State<Counter>`, or keep the wrapper: it derefs
/// to `S`. A handler asking for a type that was never registered does not run: a request
/// gets an error reply with code 500 and the description `internal error` (an HTTP
/// client a generic 500), and the log says "no state of type … was registered with
/// App::state". The endpoint goes on serving.
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
}

#[cfg(feature = "http")]
impl<S: Clone + Send + Sync + 'static> crate::http::FromRequest for State<S> {
    type Rejection = MissingState;

    fn from_request(req: &crate::http::Request) -> Result<Self, MissingState> {
        Ok(State(req.app().inner.states.require()?))
    }
}

/// A generic 500; the error goes to the log with the request's method and path.
#[cfg(feature = "http")]
impl crate::http::IntoResponse for MissingState {
    fn into_response(self) -> crate::http::Response {
        crate::http::IntoResponse::into_response(Err::<crate::http::Response, _>(self))
    }
}

/// Why a [`State<S>`] argument could not be made: no value of type `S` was registered
/// with [`App::state`](crate::App::state). A NATS request gets a 500 error reply, an HTTP
/// client a generic 500; the log gets this error's text, which names the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingState {
    type_name: &'static str,
}

impl MissingState {
    /// The full name of the type asked for (`std::any::type_name`).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl fmt::Display for MissingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no state of type {} was registered with App::state",
            self.type_name
        )
    }
}

impl std::error::Error for MissingState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_its_own_value_and_registering_again_replaces_it() {
        let mut states = States::default();
        states.insert(1u32);
        states.insert(String::from("a"));
        states.insert(2u32);
        assert_eq!(states.get::<u32>(), Some(2));
        assert_eq!(states.get::<String>().as_deref(), Some("a"));
        assert_eq!(states.get::<u64>(), None);
    }

    #[test]
    fn a_missing_type_is_named_in_the_error() {
        let e = States::default().require::<Vec<u8>>().unwrap_err();
        assert_eq!(e.type_name(), "alloc::vec::Vec<u8>");
        assert_eq!(
            e.to_string(),
            "no state of type alloc::vec::Vec<u8> was registered with App::state"
        );
    }
}
