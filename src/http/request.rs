//! [`Request`] and [`Method`]: what an HTTP handler gets, once the connection has read the
//! head and the body.

use serde::de::DeserializeOwned;

use crate::app::AppHandle;
use crate::error::{Error, Result};

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (answered by the GET handler, without the body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    /// The method named `s` (case-sensitive, as RFC 9110 §9.1 says).
    pub(crate) fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// An HTTP request, fully read.
///
/// ```
/// use panini::http::Request;
/// use serde_json::Value;
///
/// let mut app = panini::App::new("web");
/// app.http().post("/items/{id}", |req: Request| async move {
///     let id = req.param("id").unwrap_or_default().to_owned();
///     let dry_run = req.query_param("dry_run") == Some("1");
///     let agent = req.header("user-agent").unwrap_or("someone").to_owned();
///     let body: Value = req.json()?; // not JSON: a generic 500, the error in the log
///     Ok::<_, panini::Error>(format!("{agent} sent item {id}: {body} (dry run: {dry_run})"))
/// });
/// ```
#[derive(Clone, Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query string (percent-encoding kept).
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The path parameters of the route (`/items/{id}` gives `id`).
    pub params: Vec<(String, String)>,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    pub(crate) app: AppHandle,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version: u8,
}

/// What the head of a request says, before the connection knows its body: the server
/// makes the [`Request`] from it.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) version: u8,
}

impl Parts {
    pub(crate) fn into_request(self, body: Vec<u8>, app: &AppHandle) -> Request {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            params: Vec::new(),
            headers: self.headers,
            body,
            app: app.clone(),
            version: self.version,
        }
    }
}

impl Request {
    /// A path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.params, name, false)
    }

    /// The first query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        find(&self.query, name, false)
    }

    /// The first header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name, true)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body).map_err(|_| Error::Decode("body is not UTF-8".into()))
    }

    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The running app, to publish or request over NATS.
    pub fn app(&self) -> &AppHandle {
        &self.app
    }
}

/// The value of the first pair named `name` (ASCII case-insensitive if `ignore_case`).
pub(crate) fn find<'a>(
    pairs: &'a [(String, String)],
    name: &str,
    ignore_case: bool,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| {
            if ignore_case {
                n.eq_ignore_ascii_case(name)
            } else {
                n == name
            }
        })
        .map(|(_, v)| v.as_str())
}
