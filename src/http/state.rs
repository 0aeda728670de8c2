//! The app state as a route argument: [`State<S>`](crate::State) taken by an HTTP route
//! as by a NATS handler, and a missing one answered with a generic 500.

use super::{FromRequest, IntoResponse, Request, Response};
use crate::app::{MissingState, State};

impl<S: Clone + Send + Sync + 'static> FromRequest for State<S> {
    type Rejection = MissingState;

    fn from_request(req: &Request) -> Result<Self, MissingState> {
        Ok(State(req.app().inner.states.require()?))
    }
}

/// A generic 500; the error goes to the log with the request's method and path.
impl IntoResponse for MissingState {
    fn into_response(self) -> Response {
        IntoResponse::into_response(Err::<Response, _>(self))
    }
}
