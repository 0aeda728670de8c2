//! W3C trace context through handler runs: a message that arrives with a valid
//! `traceparent` header makes its trace current for the whole run of its handler (every
//! poll, in the endpoint's loop or in a task of its own, listen middlewares included);
//! while it is current, the app's publishes and requests carry it on ([`inject`]) and
//! panini's log lines carry its trace id. A message without one (or with a malformed one,
//! dropped silently as the W3C spec asks) starts nothing: no trace, no cost beyond one
//! scan of its headers. Handlers read the context with the [`Trace`] argument. With the
//! feature `tracing`, each run is also a `panini.handle` span of the `tracing` crate.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use crate::log;
use crate::message::{Headers, Message};

/// The header that carries the trace and the sender's span.
const TRACEPARENT: &str = "traceparent";
/// The vendors' header that goes with it, carried unchanged.
const TRACESTATE: &str = "tracestate";

/// The trace context of one handler run: the trace it belongs to, the span the sender
/// made (`parent_id`), the run's own span (`span_id`, the parent of what it sends), the
/// trace flags and the vendors' `tracestate`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    trace_id: u128,
    parent_id: u64,
    span_id: u64,
    flags: u8,
    tracestate: Option<String>,
}

impl TraceContext {
    /// The context of a run of a message with these headers: their `traceparent` if it is
    /// valid (exactly one, any case of the name), a new span id, and their `tracestate`
    /// fields joined by commas; `None` otherwise. One pass over the fields.
    fn from_headers(headers: &Headers) -> Option<TraceContext> {
        let mut parent = None;
        let mut parents = 0;
        let mut state: Option<String> = None;
        for (name, value) in headers.iter() {
            if name.eq_ignore_ascii_case(TRACEPARENT) {
                parent = Some(value);
                parents += 1;
            } else if name.eq_ignore_ascii_case(TRACESTATE) && !value.trim().is_empty() {
                match &mut state {
                    Some(s) => {
                        s.push(',');
                        s.push_str(value);
                    }
                    None => state = Some(value.to_string()),
                }
            }
        }
        if parents != 1 {
            return None;
        }
        let (trace_id, parent_id, flags) = parse_traceparent(parent?)?;
        Some(TraceContext {
            trace_id,
            parent_id,
            span_id: new_span_id(),
            flags,
            tracestate: state,
        })
    }

    /// The `traceparent` this run's publishes and requests carry: the same trace, the
    /// run's span as their parent, the same flags.
    fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceContext")
            .field("trace_id", &format_args!("{:032x}", self.trace_id))
            .field("parent_id", &format_args!("{:016x}", self.parent_id))
            .field("span_id", &format_args!("{:016x}", self.span_id))
            .field("flags", &format_args!("{:02x}", self.flags))
            .field("tracestate", &self.tracestate)
            .finish()
    }
}

/// A random span id, never zero (an all-zero id is invalid).
fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// `traceparent = version "-" trace-id "-" parent-id "-" trace-flags` (W3C Trace Context):
/// lowercase hex only; version `ff` is invalid; version `00` is exactly 55 characters, a
/// later version at least that with a `-` after them (its extra fields are ignored, and
/// only the flags this version knows are kept); the trace id (32 digits) and the parent id
/// (16) are not all zeros. Gives (trace id, parent id, flags).
fn parse_traceparent(value: &str) -> Option<(u128, u64, u8)> {
    let v = value.trim().as_bytes();
    if v.len() < 55 || [2, 35, 52].iter().any(|&i| v[i] != b'-') {
        return None;
    }
    let version = hex(&v[..2])?;
    let exact = version == 0 && v.len() == 55;
    let later = version > 0 && version != 0xff && (v.len() == 55 || v[55] == b'-');
    if !(exact || later) {
        return None;
    }
    let trace_id = hex(&v[3..35])?;
    let parent_id = u64::try_from(hex(&v[36..52])?).ok()?;
    let flags = u8::try_from(hex(&v[53..55])?).ok()?;
    if trace_id == 0 || parent_id == 0 {
        return None;
    }
    // Sampled (bit 0) and random trace id (bit 1); the others are reserved: sent as 0.
    Some((trace_id, parent_id, flags & 0b11))
}

/// `HEXDIGLC = DIGIT / "a" / "b" / "c" / "d" / "e" / "f"`, up to 32 of them.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(v))
    })
}

thread_local! {
    /// The trace context of the run this thread is polling, if that run is traced.
    static CURRENT: RefCell<Option<Arc<TraceContext>>> = const { RefCell::new(None) };
}

/// The trace context current on this thread.
pub(crate) fn current() -> Option<Arc<TraceContext>> {
    CURRENT.with_borrow(Clone::clone)
}

/// Runs `f` with `ctx` current (and its trace id on the log lines), then puts back what
/// was current before, even if `f` panics. `None` runs `f` as it is.
pub(crate) fn with_current<R>(ctx: Option<Arc<TraceContext>>, f: impl FnOnce() -> R) -> R {
    match ctx {
        None => f(),
        Some(ctx) => {
            let _restore = Restore::set(Some(ctx));
            f()
        }
    }
}

/// What was current before a scope: put back on drop.
struct Restore {
    ctx: Option<Arc<TraceContext>>,
    log_id: Option<u128>,
}

impl Restore {
    fn set(ctx: Option<Arc<TraceContext>>) -> Restore {
        let log_id = log::swap_trace_id(ctx.as_ref().map(|c| c.trace_id));
        let ctx = CURRENT.replace(ctx);
        Restore { ctx, log_id }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.ctx.take());
        log::swap_trace_id(self.log_id);
    }
}

/// Adds the current trace context to the headers of a message the app sends: a
/// `traceparent` naming this run's span as the parent, and the `tracestate`, unless the
/// headers have a `traceparent` already (the caller's own wins; a `tracestate` of its own
/// is kept too). Nothing when no trace is current.
pub(crate) fn inject(headers: &mut Option<Headers>) {
    CURRENT.with_borrow(|ctx| {
        let Some(ctx) = ctx else { return };
        let h = headers.get_or_insert_with(Headers::new);
        if has(h, TRACEPARENT) {
            return;
        }
        h.insert(TRACEPARENT, ctx.traceparent());
        if let Some(state) = &ctx.tracestate {
            if !has(h, TRACESTATE) {
                h.insert(TRACESTATE, state.as_str());
            }
        }
    });
}

/// True when `h` has a field `name`, in any case.
fn has(h: &Headers, name: &str) -> bool {
    h.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// What a run carries into each of its polls: its trace context, and with the feature
/// `tracing` its span.
pub(crate) struct RunScope {
    ctx: Option<Arc<TraceContext>>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl RunScope {
    /// The scope of a run of `msg` on the endpoint `name`; `None` when there is nothing to
    /// carry: no valid `traceparent` (and no `tracing` subscriber wants the span). A
    /// message without headers costs one check.
    pub(crate) fn of(msg: &Message, name: &str) -> Option<RunScope> {
        let ctx = msg
            .headers
            .as_ref()
            .and_then(TraceContext::from_headers)
            .map(Arc::new);
        #[cfg(feature = "tracing")]
        {
            let span = tracing::info_span!(
                "panini.handle",
                subject = %msg.subject,
                endpoint = name,
                trace_id = tracing::field::Empty,
            );
            if ctx.is_none() && span.is_disabled() {
                return None;
            }
            if let Some(ctx) = &ctx {
                span.record("trace_id", tracing::field::display(Hex32(ctx.trace_id)));
            }
            Some(RunScope { ctx, span })
        }
        #[cfg(not(feature = "tracing"))]
        {
            let _ = name;
            ctx.map(|ctx| RunScope { ctx: Some(ctx) })
        }
    }

    /// Runs `f` inside the scope (the context current, the span entered).
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let _span = self.span.enter();
        with_current(self.ctx.clone(), f)
    }
}

/// Polls `fut` inside `scope`, every poll (as it is when `scope` is `None`).
pub(crate) async fn traced<F: Future>(scope: Option<RunScope>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match &scope {
        Some(scope) => scope.enter(|| fut.as_mut().poll(cx)),
        None => fut.as_mut().poll(cx),
    })
    .await
}

/// A 128-bit id as 32 lowercase hex digits.
#[cfg(feature = "tracing")]
struct Hex32(u128);

#[cfg(feature = "tracing")]
impl std::fmt::Display for Hex32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// A handler argument: the W3C trace context its message came with (a valid
/// `traceparent` header), or none.
///
/// While a traced run goes on, the app's publishes and requests
/// ([`AppHandle::publish`](crate::AppHandle::publish), `request`, `publish_js` and
/// their variants) carry `traceparent: 00-<trace id>-<this run's span id>-<flags>` and the
/// `tracestate` on, unless they set a `traceparent` header themselves; panini's log lines
/// end with ` trace_id=<32 hex digits>`. Your own log lines can say it through
/// [`trace_id`](Trace::trace_id). A message without a `traceparent` starts no trace.
///
/// ```no_run
/// use panini::{App, AppHandle, Msg, Trace};
/// use serde_json::Value;
///
/// let mut app = App::new("orders");
/// app.listen("orders.place", |msg: Msg<Value>, trace: Trace| async move {
///     if let Some(id) = trace.trace_id() {
///         eprintln!("placing order {} trace_id={id}", msg.data["id"]);
///     }
/// });
/// app.start();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace(Option<Arc<TraceContext>>);

impl Trace {
    /// The context of a run of `msg`: the current one when it is `msg`'s (the endpoint
    /// made it current for this run), else made from `msg`'s headers.
    pub(crate) fn of(msg: &Message) -> Trace {
        let Some(headers) = &msg.headers else {
            return Trace(None);
        };
        let Some(fresh) = TraceContext::from_headers(headers) else {
            return Trace(None);
        };
        match current() {
            Some(cur) if cur.trace_id == fresh.trace_id && cur.parent_id == fresh.parent_id => {
                Trace(Some(cur))
            }
            _ => Trace(Some(Arc::new(fresh))),
        }
    }

    /// The trace id, 32 lowercase hex digits, if the message was traced.
    ///
    /// ```
    /// let untraced = panini::Trace::default();
    /// assert_eq!(untraced.trace_id(), None);
    /// ```
    pub fn trace_id(&self) -> Option<String> {
        self.0.as_ref().map(|c| format!("{:032x}", c.trace_id))
    }

    /// This run's span id, 16 lowercase hex digits: the parent id of what it sends.
    pub fn span_id(&self) -> Option<String> {
        self.0.as_ref().map(|c| format!("{:016x}", c.span_id))
    }

    /// The sender's span id (the parent id of the incoming `traceparent`).
    pub fn parent_id(&self) -> Option<String> {
        self.0.as_ref().map(|c| format!("{:016x}", c.parent_id))
    }

    /// The `traceparent` this run's publishes and requests carry, e.g. to set it on a
    /// message sent by other means (`app.client()`, another task).
    pub fn traceparent(&self) -> Option<String> {
        self.0.as_deref().map(TraceContext::traceparent)
    }

    /// The incoming `tracestate` (its fields joined by commas), carried on unchanged.
    pub fn tracestate(&self) -> Option<&str> {
        self.0.as_ref().and_then(|c| c.tracestate.as_deref())
    }

    /// True when the sender marked the trace as sampled (flag `01`).
    pub fn is_sampled(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.flags & 1 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    macro_rules! parses {
        ($($name:ident: $value:expr => $ok:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_traceparent($value).is_some(), $ok, "{}", $value);
            }
        )*};
    }

    parses! {
        the_spec_example_is_valid: VALID => true;
        surrounding_spaces_are_ignored: &format!(" {VALID} ") => true;
        a_later_version_with_more_fields_is_read: &format!("01{}-what-next", &VALID[2..]) => true;
        a_later_version_of_the_same_length_is_read: &format!("cc{}", &VALID[2..]) => true;
        version_ff_is_invalid: &format!("ff{}", &VALID[2..]) => false;
        version_00_with_more_fields_is_invalid: &format!("{VALID}-00") => false;
        a_later_version_glued_to_more_is_invalid: &format!("01{}x", &VALID[2..]) => false;
        uppercase_hex_is_invalid: &VALID.to_uppercase() => false;
        an_all_zero_trace_id_is_invalid:
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01" => false;
        an_all_zero_parent_id_is_invalid:
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01" => false;
        a_short_trace_id_is_invalid: "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01" => false;
        a_missing_dash_is_invalid: "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01" => false;
        a_plus_sign_is_not_hex: "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" => false;
        non_ascii_is_invalid: "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01" => false;
        empty_is_invalid: "" => false;
    }

    #[test]
    fn the_fields_are_read_and_reserved_flags_dropped() {
        let (t, p, f) = parse_traceparent(VALID).unwrap();
        assert_eq!(t, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p, 0x00f067aa0ba902b7);
        assert_eq!(f, 1);
        let reserved = VALID.replace("-01", "-ff");
        assert_eq!(parse_traceparent(&reserved).unwrap().2, 3);
    }

    fn headers(fields: &[(&str, &str)]) -> Headers {
        fields.iter().copied().collect()
    }

    #[test]
    fn a_run_gets_a_new_span_and_the_joined_tracestate() {
        let h = headers(&[
            ("TraceParent", VALID),
            ("tracestate", "a=1"),
            ("TRACESTATE", "b=2"),
        ]);
        let ctx = TraceContext::from_headers(&h).unwrap();
        assert_eq!(ctx.tracestate.as_deref(), Some("a=1,b=2"));
        assert_ne!(ctx.span_id, ctx.parent_id);
        let sent = ctx.traceparent();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{sent}"
        );
        assert!(sent.ends_with("-01") && sent.len() == 55, "{sent}");
        assert!(parse_traceparent(&sent).is_some());
    }

    #[test]
    fn the_ids_show_in_hex() {
        let ctx = TraceContext::from_headers(&headers(&[(TRACEPARENT, VALID)])).unwrap();
        let shown = format!("{:?}", Trace(Some(Arc::new(ctx))));
        assert!(
            shown.contains("trace_id: 4bf92f3577b34da6a3ce929d0e0e4736"),
            "{shown}"
        );
        assert!(shown.contains("parent_id: 00f067aa0ba902b7"), "{shown}");
    }

    #[test]
    fn two_traceparents_or_none_give_no_context() {
        let two = headers(&[(TRACEPARENT, VALID), (TRACEPARENT, VALID)]);
        assert_eq!(TraceContext::from_headers(&two), None);
        let state_only = headers(&[(TRACESTATE, "a=1")]);
        assert_eq!(TraceContext::from_headers(&state_only), None);
    }

    #[test]
    fn inject_adds_the_context_only_while_it_is_current_and_not_over_the_callers() {
        let ctx = TraceContext::from_headers(&headers(&[(TRACEPARENT, VALID)])).map(Arc::new);
        let mut none = None;
        inject(&mut none);
        assert_eq!(none, None, "nothing current: nothing added");
        with_current(ctx.clone(), || {
            let mut added = None;
            inject(&mut added);
            let added = added.unwrap();
            assert_eq!(
                added.get(TRACEPARENT),
                Some(ctx.as_ref().unwrap().traceparent().as_str())
            );
            let own = "00-11111111111111111111111111111111-2222222222222222-00";
            let mut mine = Some(headers(&[("Traceparent", own)]));
            inject(&mut mine);
            assert_eq!(mine, Some(headers(&[("Traceparent", own)])));
        });
        assert!(current().is_none(), "put back after the scope");
        assert_eq!(log::swap_trace_id(None), None);
    }

    #[test]
    fn the_context_is_put_back_when_the_scope_panics() {
        let ctx = TraceContext::from_headers(&headers(&[(TRACEPARENT, VALID)])).map(Arc::new);
        let panicked = std::panic::catch_unwind(|| with_current(ctx, || panic!("in a handler")));
        assert!(panicked.is_err());
        assert!(current().is_none());
    }
}
