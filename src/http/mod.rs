//! A tiny HTTP/1.1 server inside the app, on smol and `httparse`: routes and views beside
//! the NATS endpoints, keep-alive and pipelining, `Content-Length` and chunked bodies, and a
//! limit wherever input comes in.
//!
//! | limit | default | answer |
//! |---|---|---|
//! | request head (line + headers) | 8 KiB, 100 headers | 431 |
//! | body | 1 MiB | 413 |
//! | malformed request | | 400 |
//! | head not complete in time (slowloris) | 10 s | 408, close |
//! | body not complete in time | 30 s | 408, close |
//! | response not taken by the client in time | 30 s | close |
//! | idle keep-alive connection | 15 s | close |
//! | connections at once | 1024 | the one idle the longest is closed; 503 if all are busy |
//! | handler panics or fails | | generic 500 (the error goes to the log), server goes on |
//!
//! Every refusal is counted and logged, at most one line a second per kind: see
//! [`HttpStats`].
//!
//! The default address is **127.0.0.1:8080**: Panini (aiohttp) listens on 0.0.0.0, which
//! exposes a service's endpoints to every network the host is on. Loopback is the safe
//! default; set [`host`](Http::host) to `0.0.0.0` to serve other hosts (in a container, say).
//!
//! ```no_run
//! use panini::App;
//! use panini::http::Request;
//!
//! let mut app = App::new("web");
//! app.http().get("/get", || async { "Hello, world" });
//! app.http().get("/items/{id}", |req: Request| async move {
//!     format!("item {}", req.param("id").unwrap_or_default())
//! });
//! app.start();
//! ```

mod conn;
mod failure;
mod head;
mod query;
mod request;
mod response;
mod router;
mod slots;
mod state;
mod stats;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::{TcpListener, TcpStream};

pub use request::{Method, Request};
pub use response::{IntoResponse, Response};
pub use router::{FromRequest, HttpHandler, View};
pub use stats::HttpStats;

use crate::app::executor::{self, AppExecutor, Idle, Threads};
use crate::app::AppHandle;
use crate::error::{Error, Result};
use crate::log::log_at;
use crate::sync::{Latch, WaitGroup, WaitGuard};
use conn::{Conn, Read};
use response::Persist;
use router::{BoxedHttp, Router};
use slots::{Admit, Slot, Slots};

/// Input limits and timeouts of the HTTP server (not the NATS protocol's
/// `panini_proto::Limits`).
#[derive(Clone, Debug)]
pub(crate) struct HttpLimits {
    pub(crate) max_head: usize,
    pub(crate) max_body: usize,
    pub(crate) head_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_head: 8 * 1024,
            max_body: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(15),
            max_connections: 1024,
        }
    }
}

/// The HTTP side of an app: address, limits and routes. Get it with
/// [`App::http`](crate::App::http).
///
/// ```
/// use std::time::Duration;
///
/// let mut app = panini::App::new("web");
/// app.http()
///     .host("0.0.0.0")
///     .port(8081)
///     .max_body(64 * 1024)
///     .head_timeout(Duration::from_secs(5))
///     .get("/health", || async { "ok" });
/// ```
pub struct Http {
    host: String,
    port: u16,
    limits: HttpLimits,
    router: Router,
    stats: HttpStats,
    /// 1: where the app runs (unless `low_latency`); more: threads of the server's own.
    threads: usize,
    /// Threads of the server's own that, while they wait for a core, park after a busy run
    /// instead of waiting in epoll.
    low_latency: bool,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("limits", &self.limits)
            .field("threads", &self.threads)
            .field("low_latency", &self.low_latency)
            .finish_non_exhaustive()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            host: "127.0.0.1".into(),
            port: 8080,
            limits: HttpLimits::default(),
            router: Router::default(),
            stats: HttpStats::default(),
            threads: 1,
            low_latency: false,
        }
    }
}

macro_rules! verbs {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<T, H: HttpHandler<T>>(&mut self, path: &str, handler: H) -> &mut Self {
                self.route(Method::$method, path, handler)
            }
        )*
    };
}

impl Http {
    /// The address to listen on (default 127.0.0.1; see the module docs).
    pub fn host(&mut self, host: impl Into<String>) -> &mut Self {
        self.host = host.into();
        self
    }

    /// The port (default 8080, as Panini; 0 lets the OS pick, see [`AppHandle::http_addr`]).
    pub fn port(&mut self, port: u16) -> &mut Self {
        self.port = port;
        self
    }

    /// Largest request body (default 1 MiB); larger ones get 413.
    pub fn max_body(&mut self, bytes: usize) -> &mut Self {
        self.limits.max_body = bytes;
        self
    }

    /// Most connections at once (default 1024). When they are all taken, a new client gets
    /// the slot of the connection idle the longest (waiting between requests on
    /// keep-alive, or for its first request), which is closed; it gets 503 only when every
    /// connection is in the middle of a request.
    pub fn max_connections(&mut self, n: usize) -> &mut Self {
        self.limits.max_connections = n.max(1);
        self
    }

    /// How long a client has to send a request head once it started (default 10 s); then 408.
    pub fn head_timeout(&mut self, d: Duration) -> &mut Self {
        self.limits.head_timeout = d;
        self
    }

    /// How long an idle keep-alive connection is kept (default 15 s).
    pub fn keep_alive_timeout(&mut self, d: Duration) -> &mut Self {
        self.limits.keep_alive_timeout = d;
        self
    }

    /// How long a client has to send the body once the head is in (default 30 s).
    pub fn body_timeout(&mut self, d: Duration) -> &mut Self {
        self.limits.body_timeout = d;
        self
    }

    /// How long a client has to take a response once it is being written (default 30 s);
    /// a client that stops reading is then disconnected, freeing its connection slot.
    pub fn write_timeout(&mut self, d: Duration) -> &mut Self {
        self.limits.write_timeout = d;
        self
    }

    /// How many threads serve the connections: by default (and with `1`) they run where
    /// the app's tasks run (see [`App::threads`](crate::App::threads)), or on one thread of
    /// the server's own with [`low_latency`](Http::low_latency); with `n > 1`, on
    /// `n` threads of the server's own (`panini-http-1`, ...), for an app whose NATS side
    /// is best on one thread but whose HTTP load wants more than one core.
    ///
    /// On a 2-core host shared with the load generator (`wrk -t2 -c32`), 2 threads
    /// served 1.22x the requests/s of 1, with a p50 of 64 against 169 µs and a p99 of 4.9
    /// against 3.8 ms; with the load generator on one core (`wrk -t1 -c64`), 0.80x (the
    /// two threads then share the one core left). BENCHMARKS.md, "HTTP server threads,
    /// and what wrk's p99 counts".
    ///
    /// ```
    /// let mut app = panini::App::new("web");
    /// app.http().threads(4).get("/health", || async { "ok" });
    /// ```
    pub fn threads(&mut self, n: usize) -> &mut Self {
        self.threads = n.max(1);
        self
    }

    /// Serves on threads of the server's own ([`threads`](Http::threads) of them, one by
    /// default) that watch how long they wait for a core (Linux: the kernel's count in
    /// `/proc/thread-self/schedstat`, re-read at most every 20 ms, every 200 ms once they
    /// wait for a core). With a core to spare they serve as the default does, waiting for
    /// their sockets in `epoll_wait` themselves. Once they spend 15 % of their time or more
    /// waiting for a core, two readings in a row (the host's cores are all busy), then
    /// after a busy run (4 or more connection wake-ups handled since they last waited)
    /// they park instead: another, idle thread of the process (async-io's
    /// own, or with [`App::start`](crate::App::start) its main thread) waits for the
    /// sockets and wakes them. They go back under 10 %. On other systems they always
    /// count as waiting for a core. Off by default.
    ///
    /// What it is for: a latency-sensitive service on a host whose cores are all busy.
    /// Measured, not derived: a thread that serves and then sleeps in `epoll_wait` had a
    /// p99 several times its median under such load, and every connection waits with it;
    /// a parked thread woken by a thread that only waits for I/O did not. What it costs:
    /// under that load, one hand-over between threads per batch of events, so fewer
    /// requests per second for the CPU. On a 2-core host, side by side with axum and with
    /// the default (BENCHMARKS.md, "`low_latency` measures"):
    ///
    /// | load (`wrk`) | default: req/s, p99 vs axum | `low_latency(true)`: req/s, p99 vs axum |
    /// |---|---|---|
    /// | `-t2 -c32` (wrk sharing both cores) | 1.13x, 1.10x | 1.04x, **0.67x** |
    /// | `-t1 -c64` (a core left to the server) | 1.23x, 0.69x | 1.26x, 0.79x |
    /// | `-t1 -c8` (a few at a time, a core left) | **1.33x**, 0.56x | 1.29x, 0.73x |
    /// | `-t1 -c1` (one request at a time) | 1.08x, 1.33x | 1.10x, 1.17x (per round 1.0x to 2.3x) |
    ///
    /// Before it measured its wait for a core (it parked after every busy run), it did
    /// 0.39x the default's requests per second at `-t1 -c8`, but had a lower p99 under
    /// `-t2 -c32` (0.39x axum's, against 0.57x in the same run for this policy's first
    /// form, which entered on one reading). Other work on the host can still make it park
    /// for a while. A route that calls NATS pays a hop between threads each way: with a
    /// route that requests an endpoint of the same app it did 0.85x the default's requests
    /// per second under `-t2 -c32`, at a worse p99 (1.21x). Measure your own load.
    /// ```
    /// let mut app = panini::App::new("quotes");
    /// app.http().low_latency(true).get("/quote", || async { "42" });
    /// ```
    pub fn low_latency(&mut self, on: bool) -> &mut Self {
        self.low_latency = on;
        self
    }

    /// The counts of refused requests and of idle connections closed for room; they
    /// count from the start of the app. See [`HttpStats`].
    pub fn stats(&self) -> HttpStats {
        self.stats.clone()
    }

    /// Routes `method` on `path` (`/items/{id}` binds `id`) to `handler`; a second
    /// handler for the same method and path replaces the first. The verbs below
    /// ([`get`](Http::get), [`post`](Http::post), ...) are short for it.
    ///
    /// ```
    /// use panini::http::{Method, Request};
    ///
    /// let mut app = panini::App::new("web");
    /// app.http().route(Method::Put, "/items/{id}", |req: Request| async move {
    ///     format!("stored item {}", req.param("id").unwrap_or_default())
    /// });
    /// ```
    pub fn route<T, H: HttpHandler<T>>(
        &mut self,
        method: Method,
        path: &str,
        handler: H,
    ) -> &mut Self {
        let boxed: BoxedHttp = Arc::new(move |req| handler.call(req));
        self.router.add(method, path, boxed);
        self
    }

    verbs! {
        /// Routes `GET` (and `HEAD`, answered without the body).
        ///
        /// ```
        /// use panini::http::Request;
        ///
        /// let mut app = panini::App::new("web");
        /// app.http()
        ///     .get("/health", || async { "ok" })
        ///     .get("/items/{id}", |req: Request| async move {
        ///         format!("item {}", req.param("id").unwrap_or_default())
        ///     });
        /// ```
        get => Get;
        /// Routes `POST`.
        ///
        /// ```
        /// use panini::http::Request;
        /// use panini::Json;
        /// use serde_json::Value;
        ///
        /// let mut app = panini::App::new("web");
        /// app.http().post("/echo", |req: Request| async move {
        ///     // Not JSON: a generic 500, the error in the log.
        ///     req.json::<Value>().map(|body| (201, Json(body)))
        /// });
        /// ```
        post => Post;
        /// Routes `PUT`.
        put => Put;
        /// Routes `PATCH`.
        patch => Patch;
        /// Routes `DELETE`.
        delete => Delete;
        /// Routes `HEAD` explicitly (otherwise the `GET` handler answers it).
        head => Head;
    }

    /// Serves a class-style [`View`] on `path` (see [`View`] for an example); it replaces
    /// any route on the same path.
    pub fn view<V: View>(&mut self, path: &str, view: V) -> &mut Self {
        self.router.add_view(path, view);
        self
    }

    /// Binds the listener (so a bad address fails the start, and port 0 is resolved).
    pub(crate) async fn bind(self) -> Result<Server> {
        let addr = format!("{}:{}", self.host, self.port);
        let listener = TcpListener::bind(addr.as_str())
            .await
            .map_err(|e| Error::start(crate::StartStage::Listen(addr.clone()), Error::Io(e)))?;
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            addr,
            threads: self.threads,
            low_latency: self.low_latency,
            shared: Arc::new(ServerState {
                router: self.router,
                slots: Slots::new(self.limits.max_connections),
                stats: self.stats,
                limits: self.limits,
                closing: Latch::default(),
                active: WaitGroup::default(),
            }),
        })
    }
}

/// What the accept loop and every connection task of one server share.
struct ServerState {
    router: Router,
    limits: HttpLimits,
    slots: Slots,
    stats: HttpStats,
    /// Set when the server stops: idle connections close, busy ones after their response.
    closing: Latch,
    /// The connection tasks (those answering 503 too), which a stop waits for.
    active: WaitGroup,
}

/// A bound HTTP server, not yet serving.
pub(crate) struct Server {
    listener: TcpListener,
    pub(crate) addr: SocketAddr,
    threads: usize,
    low_latency: bool,
    shared: Arc<ServerState>,
}

/// A server accepting connections; [`stop`](RunningServer::stop) stops it.
pub(crate) struct RunningServer {
    accept: smol::Task<()>,
    shared: Arc<ServerState>,
    /// The server's own threads, if it has them (see [`Http::threads`] and
    /// [`Http::low_latency`]); they end after
    /// the stop.
    _threads: Option<Threads>,
}

impl Server {
    /// Spawns the accept loop; each connection gets its own task, on the threads that
    /// [`Http::threads`] and [`Http::low_latency`] pick (the app's if they cannot be
    /// started).
    pub(crate) fn start_accepting(self, app: AppHandle) -> RunningServer {
        let shared = self.shared.clone();
        let idle = if self.low_latency {
            Idle::Parked
        } else {
            Idle::Reactor
        };
        let (ex, threads) = match self.threads {
            n if n > 1 || self.low_latency => match executor::start_own(n, "panini-http", idle) {
                Ok(started) => started,
                Err(e) => {
                    log_at!(
                        Warn,
                        "panini::http",
                        "cannot start {n} HTTP threads ({e}): serving where the app runs"
                    );
                    (app.executor().clone(), None)
                }
            },
            _ => (app.executor().clone(), None),
        };
        let accept = ex.spawn(accept_loop(self.listener, self.shared, app, ex.clone()));
        RunningServer {
            accept,
            shared,
            _threads: threads,
        }
    }
}

impl RunningServer {
    /// Stops accepting, lets requests in flight finish (idle connections close), waits up
    /// to `limit`; returns how many connections were still open.
    pub(crate) async fn stop(self, limit: Duration) -> usize {
        self.accept.cancel().await;
        let shared = self.shared;
        shared.closing.set();
        shared
            .active
            .wait()
            .or(async {
                smol::Timer::after(limit).await;
            })
            .await;
        shared.stats.log_untold(shared.limits.max_connections);
        shared.active.count()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ServerState>,
    app: AppHandle,
    ex: AppExecutor,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                log_at!(Error, "panini::http", "accept failed: {e}");
                smol::Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let active = shared.active.enter();
        let slot = match shared.slots.admit() {
            Admit::In(slot) => slot,
            Admit::InAfterClosingIdle(slot) => {
                shared.stats.note_idle_closed(shared.limits.max_connections);
                slot
            }
            Admit::Full => {
                shared.stats.note_refused(503, || Some(peer));
                let guard = ConnGuard {
                    shared: shared.clone(),
                    slot: None,
                    _active: active,
                };
                ex.spawn(async move {
                    let mut stream = stream;
                    let mut out = Vec::new();
                    Response::error(503).write_to(&mut out, response::Persist::Close, false);
                    let _ = stream.write_all(&out).await;
                    drop(guard);
                })
                .detach();
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let guard = ConnGuard {
            shared: shared.clone(),
            slot: Some(slot.clone()),
            _active: active,
        };
        let (shared, conn_app) = (shared.clone(), app.clone());
        ex.spawn(async move {
            serve_conn(stream, &shared, &slot, conn_app).await;
            drop(guard);
        })
        .detach();
    }
}

/// A connection task's hold on the server: its slot (none for a 503 answer) and its
/// place in the count that a stop waits on (given back after the slot: the fields drop
/// after `drop`).
struct ConnGuard {
    shared: Arc<ServerState>,
    slot: Option<Arc<Slot>>,
    _active: WaitGuard,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            self.shared.slots.release(slot);
        }
    }
}

async fn serve_conn(stream: TcpStream, shared: &ServerState, slot: &Slot, app: AppHandle) {
    let mut conn = Conn::new(stream, shared.limits.write_timeout);
    // The server's closing, or this connection's closing for room, wakes this task through
    // one listener each for the connection's whole life. They are polled once, which
    // stores the task's waker in them; after that a wait only reads the flags when the
    // task wakes (no listener lock per request).
    let mut closing = pin!(shared.closing.wait());
    let mut evicted = slot.on_evicted();
    let mut registered = false;
    loop {
        // Between requests, a closing server stops waiting; a request that has started
        // arriving (head or body) is read to the end and answered.
        // Waiting so, the connection is idle: at the connection limit, it may be closed
        // to make room for a new client.
        if !conn.has_buffered() {
            shared.slots.idle(slot);
            let mut idle = pin!(conn.wait_for_request(shared.limits.keep_alive_timeout));
            let more = poll_fn(|cx| {
                if let Poll::Ready(more) = idle.as_mut().poll(cx) {
                    return Poll::Ready(more);
                }
                if shared.closing.is_set() || slot.is_evicted() {
                    return Poll::Ready(false);
                }
                if !registered {
                    if closing.as_mut().poll(cx).is_ready()
                        || Pin::new(&mut evicted).poll(cx).is_ready()
                    {
                        return Poll::Ready(false);
                    }
                    registered = true;
                }
                Poll::Pending
            })
            .await;
            // A request is coming, unless the slot was just given to a new client.
            if !more || !slot.busy() {
                break;
            }
        }
        let (req, keep_alive) = match conn.read(&shared.limits, &app).await {
            Read::Request(req, keep_alive) => (req, keep_alive),
            Read::Closed => break,
            Read::Reject(status) => {
                shared.stats.note_refused(status, || conn.peer());
                // Queued behind any earlier pipelined response, so answers stay in order.
                conn.queue(|out| Response::error(status).write_to(out, Persist::Close, false));
                break;
            }
        };
        let head = req.method == Method::Head;
        let version = req.version;
        let resp = shared.router.dispatch(req).await;
        let persist = match (keep_alive && !shared.closing.is_set(), version) {
            (false, _) => Persist::Close,
            (true, 0) => Persist::KeepAlive10,
            (true, _) => Persist::KeepAlive,
        };
        conn.queue(|out| resp.write_to(out, persist, head));
        let keep = persist != Persist::Close;
        if (!keep || !conn.has_buffered()) && conn.flush().await.is_err() {
            break;
        }
        if !keep {
            break;
        }
    }
    let _ = conn.flush().await;
    conn.shutdown();
}
