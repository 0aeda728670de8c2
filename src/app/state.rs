//! App state: the values registered with [`App::state`](crate::App::state), one per type,
//! that NATS handlers and HTTP routes take as a [`State<S>`](crate::State) argument (made
//! in `extract`) and that tasks and hooks read with
//! [`AppHandle::state`](crate::AppHandle::state), so all of them share one value; and
//! [`MissingState`], the error when a type was never registered.

use std::any::{type_name, Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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

    /// The first of the `required` states (type id and name) that was never registered.
    pub(crate) fn missing(&self, required: &[(TypeId, &'static str)]) -> Option<MissingState> {
        required
            .iter()
            .find(|(id, _)| !self.values.contains_key(id))
            .map(|&(_, type_name)| MissingState { type_name })
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

/// Why a [`State<S>`](crate::State) argument could not be made: no value of type `S` was registered
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
