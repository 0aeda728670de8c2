//! A request in flight when its node dies: against a real 3-node cluster on loopback, a
//! responder and a requester both connected to node A (they learn B and C from INFO), and A
//! killed while the responder holds the request. The caller must hear back, with the reply
//! or a prompt error, within [`OUTCOME_WITHIN`] of the kill, not after its whole request
//! timeout, and its next request must be answered within [`NEXT_WITHIN`] more. Checked for
//! the bare client and for an in-process `App`.
//!
//! The kill lands in flight by construction: the responder signals (through a channel) when
//! the request reaches it and replies only [`REPLY_DELAY`] later; the test kills A on that
//! signal. Two fates of the reply:
//! - [`Fate::Late`]: sent through the responder's own connection, which has moved to B or C
//!   by then, so it can still arrive shortly after the reconnect;
//! - [`Fate::Lost`]: sent through a second connection of the responder's that is to A only
//!   and does not reconnect, so it dies with A, as a reply written to A just before it died
//!   would. No reply ever comes: the caller must fail fast.

mod common;

use std::time::{Duration, Instant};

use common::{run, wait_for, with_events, NatsServer};
use panini::client::{Client, ConnectOptions, Event};
use panini::{App, AppHandle, Msg, SendOptions};
use smol::channel::{Receiver, Sender};
use smol::stream::StreamExt;
use smol::Timer;

/// The timeout of the request in flight at the kill: longer than [`OUTCOME_WITHIN`], so
/// waiting it out fails the test, and short enough that today's code fails in seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long after the kill the caller of the request in flight must have its outcome.
const OUTCOME_WITHIN: Duration = Duration::from_millis(2500);

/// How long after that outcome the next request must be answered.
const NEXT_WITHIN: Duration = Duration::from_secs(1);

/// How long the responder holds a `svc.late` or `svc.lost` request before replying.
const REPLY_DELAY: Duration = Duration::from_millis(300);

/// Answered at once, through the responder's (reconnecting) connection.
const PING: &str = "svc.ping";

/// What happens to the reply of the request in flight when A dies.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Sent [`REPLY_DELAY`] after the request arrived, through the responder's connection,
    /// which has failed over by then.
    Late,
    /// Sent [`REPLY_DELAY`] after the request arrived, through a connection to A only that
    /// does not reconnect: it never leaves.
    Lost,
}

impl Fate {
    fn subject(self) -> &'static str {
        match self {
            Fate::Late => "svc.late",
            Fate::Lost => "svc.lost",
        }
    }
}

/// Whether `e` is the prompt failure of a request whose connection was lost, as opposed to
/// waiting out its timeout.
fn is_prompt_failure(e: &panini::Error) -> bool {
    matches!(e, panini::Error::ConnectionLost)
}

/// Client options for node A only, with a quick first reconnect (as tests/cluster.rs).
fn on_a(a: &NatsServer) -> ConnectOptions {
    ConnectOptions::new([a.url()])
        .reconnect_wait(Duration::from_millis(100))
        .reconnect_jitter(Duration::from_millis(20))
}

/// Waits until the events report all `n` nodes in the pool (the first URL counts as one).
async fn discover(events: &Receiver<Event>, n: usize) {
    let mut known = 1;
    while known < n {
        known += wait_for(events, |e| match e {
            Event::DiscoveredServers(urls) => Some(urls.len()),
            _ => None,
        })
        .await;
    }
}

/// Connects to A only and waits until it knows the whole cluster.
async fn connect_and_discover(a: &NatsServer, n: usize) -> Client {
    let (opts, events) = with_events(on_a(a));
    let client = opts.connect().await.unwrap();
    discover(&events, n).await;
    client
}

/// A connection to A that does not reconnect and ignores the cluster: what is published
/// through it after A died is lost.
async fn dies_with(a: &NatsServer) -> Client {
    ConnectOptions::new([a.url()])
        .reconnect(false)
        .ignore_discovered_servers(true)
        .connect()
        .await
        .unwrap()
}

/// Who asks: the bare client or an app's handle.
enum Asker {
    Client(Client),
    App(AppHandle),
}

impl Asker {
    /// One request with `timeout`; the reply's payload.
    async fn ask(&self, subject: &str, timeout: Duration) -> panini::Result<Vec<u8>> {
        match self {
            Asker::Client(client) => client
                .request_with(subject, None, "ask", timeout)
                .await
                .map(|msg| msg.payload.to_vec()),
            Asker::App(handle) => {
                let opts = SendOptions {
                    timeout: Some(timeout),
                    ..SendOptions::default()
                };
                handle.request_as::<Vec<u8>>(subject, "ask", opts).await
            }
        }
    }

    /// Asks [`PING`] until it is answered within `budget`, retrying only while nobody is
    /// subscribed yet (the responder's interest may still be crossing the routes).
    async fn answered_within(&self, budget: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let left = budget.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!("no answer on {PING} within {budget:?}"));
            }
            match self.ask(PING, left).await {
                Ok(payload) if payload == b"pong" => return Ok(start.elapsed()),
                Ok(payload) => return Err(format!("unexpected reply {payload:?}")),
                Err(panini::Error::NoResponders) => {
                    Timer::after(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(format!("{e} after {:?}", start.elapsed())),
            }
        }
    }
}

/// The responder side, kept alive for the test: its connections, or its app's task.
enum Responder {
    Client {
        _listening: Client,
        _dies_with_a: Client,
    },
    App {
        _task: smol::Task<panini::Result<()>>,
    },
}

/// The responder half of a bare-client setup: subscribes to [`PING`] and both fate subjects
/// on A; `received` gets one message per held request as it arrives.
async fn client_responder(a: &NatsServer, received: Sender<()>) -> Responder {
    let listening = connect_and_discover(a, 3).await;
    let dies_with_a = dies_with(a).await;
    let mut all = listening.subscribe("svc.*").await.unwrap();
    let (replier, lost_replier) = (listening.clone(), dies_with_a.clone());
    smol::spawn(async move {
        while let Some(msg) = all.next().await {
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            if msg.subject == PING {
                let _ = replier.publish(&reply, "pong").await;
                continue;
            }
            let through = if msg.subject == Fate::Late.subject() {
                replier.clone()
            } else {
                lost_replier.clone()
            };
            let received = received.clone();
            smol::spawn(async move {
                let _ = received.send(()).await;
                Timer::after(REPLY_DELAY).await;
                let _ = through.publish(&reply, "pong").await;
            })
            .detach();
        }
    })
    .detach();
    listening.flush().await.unwrap();
    Responder::Client {
        _listening: listening,
        _dies_with_a: dies_with_a,
    }
}

/// Runs `app` on A in the background, its client set up as [`on_a`]; returns its task and
/// its client's events.
fn run_app(app: App, a: &NatsServer) -> (smol::Task<panini::Result<()>>, Receiver<Event>) {
    let mut events = None;
    let app = app.servers([a.url()]).banner(false).nats_options(|_| {
        let (opts, rx) = with_events(on_a(a));
        events = Some(rx);
        opts
    });
    let task = smol::spawn(app.run_until(std::future::pending()));
    (task, events.expect("nats_options ran"))
}

/// The responder half of an App setup: a listener app with an endpoint per subject; the
/// held ones signal `received`, then reply after [`REPLY_DELAY`] (`svc.late` by returning,
/// `svc.lost` by publishing through a connection that dies with A, and returning nothing).
async fn app_responder(a: &NatsServer, received: Sender<()>) -> Responder {
    let dies_with_a = dies_with(a).await;
    let mut app = App::new("failover_listener");
    app.listen(PING, |_: Msg<Vec<u8>>| async { "pong" });
    let late = received.clone();
    app.listen(Fate::Late.subject(), move |_: Msg<Vec<u8>>| {
        let received = late.clone();
        async move {
            let _ = received.send(()).await;
            Timer::after(REPLY_DELAY).await;
            "pong"
        }
    });
    app.listen(Fate::Lost.subject(), move |msg: Msg<Vec<u8>>| {
        let (received, through) = (received.clone(), dies_with_a.clone());
        async move {
            let _ = received.send(()).await;
            Timer::after(REPLY_DELAY).await;
            if let Some(reply) = msg.reply {
                let _ = through.publish(&reply, "pong").await;
            }
        }
    });
    let (task, events) = run_app(app, a);
    discover(&events, 3).await;
    Responder::App { _task: task }
}

/// The requester half of an App setup: an app on A that hands its handle out at start.
async fn app_requester(a: &NatsServer) -> (Asker, smol::Task<panini::Result<()>>) {
    let (tx, rx) = smol::channel::bounded(1);
    let mut app = App::new("failover_sender");
    app.on_start(move |handle: AppHandle| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(handle).await;
        }
    });
    let (task, events) = run_app(app, a);
    let handle = rx.recv().await.expect("the sender app started");
    discover(&events, 3).await;
    (Asker::App(handle), task)
}

/// Which layer asks and answers.
#[derive(Clone, Copy, Debug)]
enum Level {
    Client,
    App,
}

/// The scenario: set up on A, ask with the reply's `fate`, kill A once the responder holds
/// the request, then check the outcome's kind and timing and the next request.
fn request_in_flight_when_its_node_dies(level: Level, fate: Fate) {
    let mut nodes = NatsServer::cluster(3, &[]);
    run(async {
        let (received_tx, received) = smol::channel::unbounded();
        let (_responder, _requester_app, asker) = match level {
            Level::Client => {
                let responder = client_responder(&nodes[0], received_tx).await;
                let asker = Asker::Client(connect_and_discover(&nodes[0], 3).await);
                (responder, None, asker)
            }
            Level::App => {
                let responder = app_responder(&nodes[0], received_tx).await;
                let (asker, task) = app_requester(&nodes[0]).await;
                (responder, Some(task), asker)
            }
        };
        // Everyone is on A, so this is answered at once.
        asker.answered_within(Duration::from_secs(5)).await.unwrap();

        let asker = std::sync::Arc::new(asker);
        let asking = {
            let asker = asker.clone();
            smol::spawn(async move {
                let outcome = asker.ask(fate.subject(), REQUEST_TIMEOUT).await;
                (outcome, Instant::now())
            })
        };
        received
            .recv()
            .await
            .expect("the responder got the request");
        let killed_at = Instant::now();
        nodes[0].stop();
        let (outcome, heard_at) = asking.await;
        let took = heard_at - killed_at;
        let outcome = outcome.map(|p| String::from_utf8_lossy(&p).into_owned());
        eprintln!("{level:?}/{fate:?}: {outcome:?} {took:?} after the kill");
        assert!(
            took < OUTCOME_WITHIN,
            "{level:?}/{fate:?}: the request in flight ended {took:?} after the kill \
             (bound {OUTCOME_WITHIN:?}) with {outcome:?}"
        );
        match &outcome {
            Ok(payload) => assert_eq!(payload, "pong", "{level:?}/{fate:?}"),
            Err(e) => assert!(
                is_prompt_failure(e),
                "{level:?}/{fate:?}: not a prompt failure: {e:?} after {took:?}"
            ),
        }
        let next = asker.answered_within(NEXT_WITHIN).await;
        eprintln!("{level:?}/{fate:?}: next request {next:?}");
        assert!(
            next.is_ok(),
            "{level:?}/{fate:?}: after {outcome:?} at {took:?}, the next request: {next:?}"
        );
    });
}

#[test]
fn client_late_reply_arrives_after_failover() {
    request_in_flight_when_its_node_dies(Level::Client, Fate::Late);
}

#[test]
fn client_lost_reply_fails_fast_after_failover() {
    request_in_flight_when_its_node_dies(Level::Client, Fate::Lost);
}

#[test]
fn app_late_reply_arrives_after_failover() {
    request_in_flight_when_its_node_dies(Level::App, Fate::Late);
}

#[test]
fn app_lost_reply_fails_fast_after_failover() {
    request_in_flight_when_its_node_dies(Level::App, Fate::Lost);
}
