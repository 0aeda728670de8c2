//! [`Response`] and [`IntoResponse`]: what an HTTP handler returns, and its bytes on the wire.

use serde::Serialize;
use serde_json::Value;

use crate::error::BoxError;
use crate::payload::Json;

/// An HTTP response: status, headers and body. `Content-Length` and `Connection` are
/// written by the server.
///
/// ```
/// use panini::http::Response;
/// use serde_json::json;
///
/// let created = Response::json(201, &json!({"id": 7})).header("Location", "/items/7");
/// assert_eq!(created.status, 201);
/// assert_eq!(created.get_header("content-type"), Some("application/json"));
/// assert_eq!(created.body, br#"{"id":7}"#);
///
/// // A handler returns one, or anything else that is `IntoResponse`.
/// let mut app = panini::App::new("web");
/// app.http()
///     .get("/teapot", || async { Response::text(418, "short and stout") });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// `application/json` from any serde value; if it cannot be encoded, a generic 500 and
    /// the encoder's error in the log.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
            },
            Err(e) => {
                super::failure::failed(Box::new(e));
                Response::error(500)
            }
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        super::request::find(&self.headers, name, true)
    }

    /// A plain-text error response with the reason phrase as its body.
    pub(crate) fn error(status: u16) -> Self {
        Response::text(status, format!("{status} {}\n", reason(status)))
    }

    /// Appends the status line, headers, `Content-Length` (not on 1xx, 204 and 304, which
    /// have no body), `Connection` and (unless `head`) the body. Nothing is allocated but
    /// the output's own growth.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, conn: Persist, head: bool) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, self.status);
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("connection")
            {
                continue;
            }
            push_header_text(out, name);
            out.extend_from_slice(b": ");
            push_header_text(out, value);
            out.extend_from_slice(b"\r\n");
        }
        let bodiless = matches!(self.status, 100..=199 | 204 | 304);
        if !bodiless {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(match conn {
            Persist::KeepAlive => b"\r\n".as_slice(),
            Persist::KeepAlive10 => b"Connection: keep-alive\r\n\r\n".as_slice(),
            Persist::Close => b"Connection: close\r\n\r\n".as_slice(),
        });
        if !head && !bodiless {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Appends `text` with CR and LF dropped, so a header cannot be injected.
fn push_header_text(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    // One comparison per byte and no early exit, so the check vectorises; the exact filter
    // runs only when some byte is CR, LF or another control byte up to CR.
    if bytes.iter().fold(false, |seen, b| seen | (*b <= b'\r')) {
        out.extend(bytes.iter().filter(|b| !matches!(b, b'\r' | b'\n')));
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persist {
    /// HTTP/1.1, staying open: nothing to say.
    KeepAlive,
    /// HTTP/1.0 that asked for keep-alive: say yes.
    KeepAlive10,
    /// Closing after this response.
    Close,
}

/// The reason phrase of a status code.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// What an HTTP handler may return.
///
/// `&'static str` and `String` are `text/plain`; `Vec<u8>` is
/// `application/octet-stream`; `serde_json::Value` and `Json<T>` are `application/json`;
/// `(u16, T)` sets the status; `()` is 204; `Result<T, E>` answers a generic 500 for
/// `Err` and logs the error with the request's method and path.
///
/// ```
/// use panini::http::{IntoResponse, Request};
/// use panini::Json;
///
/// #[derive(serde::Serialize)]
/// struct Item {
///     id: u32,
/// }
///
/// let mut app = panini::App::new("web");
/// app.http()
///     .get("/hello", || async { "hello" }) // 200, text/plain
///     .get("/item", || async { Json(Item { id: 7 }) }) // 200, application/json
///     .post("/items", || async { (201, Json(Item { id: 8 })) }) // 201
///     .get("/double", |req: Request| async move {
///         // A bad `n` is a generic 500 for the client, and the parse error in the log.
///         let n: u32 = req.query_param("n").unwrap_or_default().parse()?;
///         Ok::<_, std::num::ParseIntError>((n * 2).to_string())
///     });
/// assert_eq!((404, "no such item").into_response().status, 404);
/// assert_eq!(().into_response().status, 204);
/// ```
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(200)
            .header("Content-Type", "application/octet-stream")
            .body(self)
    }
}

impl IntoResponse for Value {
    fn into_response(self) -> Response {
        Response::json(200, &self)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(200, &self.0)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(204)
    }
}

impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        let mut r = self.1.into_response();
        r.status = self.0;
        r
    }
}

impl<T: IntoResponse, E: Into<BoxError>> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(t) => t.into_response(),
            Err(e) => {
                // The error's text may say what the client must not see (paths, hosts,
                // queries): it goes to the log, with the request's method and path.
                super::failure::failed(e.into());
                Response::error(500)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_header_text() {
        for n in [0, 7, 10, 200, 65535, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        let mut out = Vec::new();
        push_header_text(&mut out, "a\r\nb: c\td");
        assert_eq!(out, b"ab: c\td");
        for status in [99, 200, 404, 1000] {
            let mut out = Vec::new();
            Response::new(status).write_to(&mut out, Persist::KeepAlive, false);
            let line = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            assert!(out.starts_with(line.as_bytes()), "{status}");
        }
    }
}
