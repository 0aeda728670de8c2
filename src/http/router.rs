//! Routes by method and path (`/items/{id}` binds `id`), the handlers' arguments
//! ([`FromRequest`]), class-style [`View`]s, and the dispatch that answers 404, 405 with
//! `Allow`, `OPTIONS`, and a generic 500 for a panic or an error (logged with the method
//! and path).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use smol::future::Boxed;
use smol::future::FutureExt;

use super::failure;
use super::query::decode_path;
use super::request::{Method, Request};
use super::response::{IntoResponse, Response};
use crate::app::AppHandle;
use crate::log::log_at;

pub(crate) type BoxedHttp = Arc<dyn Fn(Request) -> Boxed<Response> + Send + Sync>;

/// An async fn or closure that answers HTTP requests: it takes 0 to 2 arguments that
/// implement [`FromRequest`] (the [`Request`], [`State<S>`](crate::State),
/// [`AppHandle`]) and returns something that implements [`IntoResponse`]. `T` is a marker.
///
/// With two arguments, put the `Request` last (`|State(s): State<S>, req: Request|`): the
/// last argument is made from the request itself, the first from a borrow of it, so a
/// `Request` first is a copy of the request.
///
/// ```
/// use panini::http::Request;
/// use panini::{AppHandle, State};
///
/// #[derive(Clone)]
/// struct Greeting(&'static str);
///
/// let mut app = panini::App::new("web");
/// app.state(Greeting("hello"));
/// app.http()
///     .get("/a", || async { "no argument" })
///     .get("/b", |req: Request| async move { format!("path {}", req.path) })
///     .get("/c", |State(g): State<Greeting>, req: Request| async move {
///         format!("{} {}", g.0, req.query_param("name").unwrap_or("you"))
///     })
///     .post("/d", |app: AppHandle, req: Request| async move {
///         // Over NATS from an HTTP route; a failure is a generic 500, logged.
///         app.publish("uploads", req.body).await.map(|()| (202, "queued"))
///     });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an HTTP handler",
    note = "an HTTP handler is an async fn or closure taking 0 to 2 FromRequest arguments (Request, State<S>, AppHandle) and returning an IntoResponse value (&str, String, Vec<u8>, Value, Json<T>, (u16, T), Response, Result<..>)"
)]
pub trait HttpHandler<T>: Clone + Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, req: Request) -> Boxed<Response>;
}

/// A value an HTTP handler can take as an argument, made from the request: the
/// [`Request`] itself, a [`State<S>`](crate::State) of the app, the [`AppHandle`], or a
/// type of your own.
///
/// ```
/// use panini::http::{FromRequest, Request, Response};
///
/// /// The token of an `Authorization: Bearer ...` header; without one, 401.
/// struct Bearer(String);
///
/// impl FromRequest for Bearer {
///     type Rejection = Response;
///
///     fn from_request(req: &Request) -> Result<Self, Response> {
///         req.header("authorization")
///             .and_then(|value| value.strip_prefix("Bearer "))
///             .map(|token| Bearer(token.to_owned()))
///             .ok_or_else(|| Response::text(401, "a bearer token, please"))
///     }
/// }
///
/// let mut app = panini::App::new("web");
/// app.http().get("/me", |Bearer(token): Bearer| async move {
///     format!("a token of {} characters", token.len())
/// });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an HTTP handler argument",
    note = "HTTP handler arguments are Request, State<S> and AppHandle"
)]
pub trait FromRequest: Sized {
    /// What the client gets when the argument cannot be made (an error that is also
    /// logged, with the method and path, when it turns into a 500).
    type Rejection: IntoResponse + Send + 'static;

    /// Builds the argument from a borrowed request.
    fn from_request(req: &Request) -> Result<Self, Self::Rejection>;

    /// Builds the argument from the request itself: the **last** argument of a handler is
    /// made this way (the other before it, by reference), so a `Request` there is not
    /// copied.
    fn from_request_owned(req: Request) -> Result<Self, Self::Rejection> {
        Self::from_request(&req)
    }
}

impl FromRequest for Request {
    type Rejection = Infallible;

    fn from_request(req: &Request) -> Result<Self, Infallible> {
        Ok(req.clone())
    }

    fn from_request_owned(req: Request) -> Result<Self, Infallible> {
        Ok(req)
    }
}

impl FromRequest for AppHandle {
    type Rejection = Infallible;

    fn from_request(req: &Request) -> Result<Self, Infallible> {
        Ok(req.app().clone())
    }
}

impl IntoResponse for Infallible {
    fn into_response(self) -> Response {
        match self {}
    }
}

/// The answer of a handler whose arguments could not be made. The rejection becomes a
/// response when the router polls it, so an error it reports is logged with the request.
fn rejected<R: IntoResponse + Send + 'static>(rejection: R) -> Boxed<Response> {
    Box::pin(async move { rejection.into_response() })
}

/// One `HttpHandler` impl per arity: the first arguments made from a borrow of the
/// request, the last from the request itself.
macro_rules! http_handler_impls {
    ($($rest:ident),*; $($last:ident)?) => {
        impl<F, Fut, $($rest,)* $($last)?> HttpHandler<(Fut, $($rest,)* $($last)?)> for F
        where
            F: Fn($($rest,)* $($last)?) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoResponse,
            $($rest: FromRequest,)*
            $($last: FromRequest,)?
        {
            #[allow(non_snake_case, unused_variables)]
            fn call(&self, req: Request) -> Boxed<Response> {
                $(
                    let $rest = match $rest::from_request(&req) {
                        Ok(arg) => arg,
                        Err(rejection) => return rejected(rejection),
                    };
                )*
                $(
                    let $last = match $last::from_request_owned(req) {
                        Ok(arg) => arg,
                        Err(rejection) => return rejected(rejection),
                    };
                )?
                let fut = self($($rest,)* $($last)?);
                Box::pin(async move { fut.await.into_response() })
            }
        }
    };
}

http_handler_impls!(;);
http_handler_impls!(; A);
http_handler_impls!(A; B);

/// A class-style view: one type per path, one method per HTTP verb (Panini's
/// `app.http.view`). List the verbs it answers in `METHODS`; any other verb gets
/// `405 Method Not Allowed` with an `Allow` header. `HEAD` is answered by `get`.
///
/// ```
/// use panini::http::{Method, Request, Response, View};
///
/// struct Item;
///
/// impl View for Item {
///     const METHODS: &'static [Method] = &[Method::Get, Method::Delete];
///
///     async fn get(&self, req: Request) -> Response {
///         Response::text(200, format!("item {}", req.param("id").unwrap_or("?")))
///     }
///
///     async fn delete(&self, _req: Request) -> Response {
///         Response::new(204)
///     }
/// }
///
/// let mut app = panini::App::new("web");
/// // GET, HEAD and DELETE answered; POST, PUT and PATCH get 405 with `Allow`.
/// app.http().view("/items/{id}", Item);
/// ```
pub trait View: Send + Sync + 'static {
    /// The verbs this view answers.
    const METHODS: &'static [Method];

    /// `GET` (and `HEAD`).
    fn get(&self, _req: Request) -> impl Future<Output = Response> + Send {
        async { Response::error(405) }
    }

    /// `POST`.
    fn post(&self, _req: Request) -> impl Future<Output = Response> + Send {
        async { Response::error(405) }
    }

    /// `PUT`.
    fn put(&self, _req: Request) -> impl Future<Output = Response> + Send {
        async { Response::error(405) }
    }

    /// `PATCH`.
    fn patch(&self, _req: Request) -> impl Future<Output = Response> + Send {
        async { Response::error(405) }
    }

    /// `DELETE`.
    fn delete(&self, _req: Request) -> impl Future<Output = Response> + Send {
        async { Response::error(405) }
    }
}

trait DynView: Send + Sync {
    fn methods(&self) -> &'static [Method];
    fn call(self: Arc<Self>, method: Method, req: Request) -> Boxed<Response>;
}

impl<V: View> DynView for V {
    fn methods(&self) -> &'static [Method] {
        V::METHODS
    }

    fn call(self: Arc<Self>, method: Method, req: Request) -> Boxed<Response> {
        Box::pin(async move {
            match method {
                Method::Get | Method::Head => self.get(req).await,
                Method::Post => self.post(req).await,
                Method::Put => self.put(req).await,
                Method::Patch => self.patch(req).await,
                Method::Delete => self.delete(req).await,
                Method::Options => Response::error(405),
            }
        })
    }
}

enum Seg {
    Lit(String),
    Param(String),
}

/// What answers a route: a handler per method, or a view.
enum RouteTarget {
    Fns(Vec<(Method, BoxedHttp)>),
    View(Arc<dyn DynView>),
}

struct Route {
    pattern: String,
    segs: Vec<Seg>,
    target: RouteTarget,
}

/// The route table.
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<Route>,
}

fn segments(pattern: &str) -> Vec<Seg> {
    pattern
        .trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Seg::Param(name.to_string()),
                None => Seg::Lit(s.to_string()),
            },
        )
        .collect()
}

impl Router {
    pub(crate) fn add(&mut self, method: Method, pattern: &str, handler: BoxedHttp) {
        let existing = self.routes.iter_mut().find(|r| r.pattern == pattern);
        match existing {
            Some(Route {
                target: RouteTarget::Fns(fns),
                ..
            }) => {
                fns.retain(|(m, _)| *m != method);
                fns.push((method, handler));
            }
            Some(route) => route.target = RouteTarget::Fns(vec![(method, handler)]),
            None => self.routes.push(Route {
                pattern: pattern.to_string(),
                segs: segments(pattern),
                target: RouteTarget::Fns(vec![(method, handler)]),
            }),
        }
    }

    pub(crate) fn add_view<V: View>(&mut self, pattern: &str, view: V) {
        self.routes.retain(|r| r.pattern != pattern);
        self.routes.push(Route {
            pattern: pattern.to_string(),
            segs: segments(pattern),
            target: RouteTarget::View(Arc::new(view)),
        });
    }

    fn find(&self, path: &str) -> Option<(&Route, Vec<(String, String)>)> {
        let path = path.trim_start_matches('/');
        let count = path.bytes().filter(|&b| b == b'/').count() + 1;
        'routes: for route in &self.routes {
            if route.segs.len() != count {
                continue;
            }
            // Allocates only for a route with parameters.
            let mut params = Vec::new();
            for (seg, part) in route.segs.iter().zip(path.split('/')) {
                match seg {
                    Seg::Lit(lit) if lit == part => {}
                    Seg::Param(name) if !part.is_empty() => {
                        params.push((name.clone(), decode_path(part)))
                    }
                    _ => continue 'routes,
                }
            }
            return Some((route, params));
        }
        None
    }

    /// Answers one request; a panicking handler gives 500 and is logged, whether it
    /// panics when called or while its future runs.
    pub(crate) async fn dispatch(&self, mut req: Request) -> Response {
        let Some((route, params)) = self.find(&req.path) else {
            return Response::error(404);
        };
        // For the log lines of a failure: a route without parameters matched the path
        // literally, so its pattern is the path (and costs no copy).
        let path = match params.is_empty() {
            true => Cow::Borrowed(route.pattern.as_str()),
            false => Cow::Owned(req.path.clone()),
        };
        req.params = params;
        let method = req.method;
        let start = || match &route.target {
            RouteTarget::Fns(fns) => {
                let exact = fns.iter().find(|(m, _)| *m == method);
                // HEAD falls back to GET (answered without the body).
                let get = || fns.iter().find(|(m, _)| *m == Method::Get);
                let found = exact.or_else(|| (method == Method::Head).then(get).flatten());
                found.map(|(_, h)| h(req))
            }
            RouteTarget::View(view) => {
                let ok = method != Method::Options
                    && (view.methods().contains(&method)
                        || (method == Method::Head && view.methods().contains(&Method::Get)));
                ok.then(|| view.clone().call(method, req))
            }
        };
        let call = match std::panic::catch_unwind(AssertUnwindSafe(start)) {
            Ok(call) => call,
            Err(panic) => return panicked(method, &path, panic),
        };
        let Some(call) = call else {
            if method == Method::Options {
                return Response::new(204).header("Allow", route.allowed());
            }
            return Response::error(405).header("Allow", route.allowed());
        };
        // A route is async code of the app: its `*_sync` calls refuse instead of freezing
        // the executor thread (all of an async fn's body; a closure's code before it
        // returns its future runs in `start`, unmarked).
        let call = crate::app::app_async(failure::logged(call, method, &path));
        match AssertUnwindSafe(call).catch_unwind().await {
            // Every 405 names what is allowed (RFC 9110 §15.5.6), also a view's own.
            Ok(resp) if resp.status == 405 && resp.get_header("allow").is_none() => {
                resp.header("Allow", route.allowed())
            }
            Ok(resp) => resp,
            Err(panic) => panicked(method, &path, panic),
        }
    }
}

/// Logs a handler's panic and answers 500.
fn panicked(method: Method, path: &str, panic: Box<dyn std::any::Any + Send>) -> Response {
    let text = crate::error::panic_message(panic.as_ref());
    log_at!(
        Error,
        "panini::http",
        "{} {path} panicked: {text}",
        method.as_str()
    );
    Response::error(500)
}

impl Route {
    /// The `Allow` header value.
    fn allowed(&self) -> String {
        let mut methods: Vec<Method> = match &self.target {
            RouteTarget::Fns(fns) => fns.iter().map(|(m, _)| *m).collect(),
            RouteTarget::View(v) => v.methods().to_vec(),
        };
        if methods.contains(&Method::Get) && !methods.contains(&Method::Head) {
            methods.push(Method::Head);
        }
        if !methods.contains(&Method::Options) {
            methods.push(Method::Options);
        }
        let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        names.join(", ")
    }
}
