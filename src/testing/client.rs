//! [`TestClient`]: the test's side of the conversation with an app: publish and request
//! with JSON in and out, and [`TestSubscription`] to wait, with a bound, for the messages
//! an app sends. Every failure is a panic that names the subject, as a test wants.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use smol::future::FutureExt;
use smol::stream::StreamExt;

use super::NatsServer;
use crate::client::{Client, Subscription};
use crate::error::Error;
use crate::message::Message;

/// How long a [`TestClient`] request waits for its reply, unless
/// [`with_timeout`](TestClient::with_timeout) says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A NATS client for tests: JSON in and out, a bound on every wait, and a panic with a
/// clear message for every failure (a refused connection, no reply, a reply that is not
/// JSON, an error reply).
///
/// ```
/// use panini::testing::{run, NatsServer, TestClient};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let server = NatsServer::start();
/// run(async {
///     let client = TestClient::connect(&server).await;
///     let mut orders = client.subscribe("orders.*").await;
///     client.publish("orders.new", json!({"id": 1})).await;
///     let got = orders.expect_json(1, Duration::from_secs(1)).await;
///     assert_eq!(got, [json!({"id": 1})]);
/// });
/// ```
#[derive(Clone, Debug)]
pub struct TestClient {
    client: Client,
    timeout: Duration,
}

impl TestClient {
    /// Connects to `server`.
    ///
    /// # Panics
    ///
    /// If the connection fails.
    pub async fn connect(server: &NatsServer) -> TestClient {
        Self::connect_url(&server.url()).await
    }

    /// Connects to `url` (a server the kit did not start, or one URL of a cluster).
    ///
    /// # Panics
    ///
    /// If the connection fails.
    pub async fn connect_url(url: &str) -> TestClient {
        let client = crate::client::connect(url)
            .await
            .unwrap_or_else(|e| panic!("TestClient: connecting to {url}: {e}"));
        TestClient {
            client,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same client with another bound on requests (default [`REQUEST_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> TestClient {
        self.timeout = timeout;
        self
    }

    /// The underlying client, for what the kit does not cover (headers, queue groups...).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Publishes `data` as JSON on `subject`, and returns once the server has it (so an app
    /// already subscribed gets it before anything the test sends next).
    ///
    /// # Panics
    ///
    /// If `data` does not serialize, or the publish or its flush fails.
    pub async fn publish(&self, subject: &str, data: impl Serialize) {
        self.publish_raw(subject, to_json(subject, &data)).await;
    }

    /// Publishes `payload` as it is (bytes or text, not JSON-encoded), as
    /// [`publish`](TestClient::publish) does.
    ///
    /// # Panics
    ///
    /// If the publish or its flush fails.
    pub async fn publish_raw(&self, subject: &str, payload: impl AsRef<[u8]>) {
        let sent = async {
            self.client.publish(subject, payload).await?;
            self.client.flush().await
        };
        sent.await
            .unwrap_or_else(|e| panic!("TestClient: publishing on {subject}: {e}"));
    }

    /// Sends `data` as JSON on `subject` and returns the JSON reply.
    ///
    /// # Panics
    ///
    /// If no reply comes within the timeout, nobody listens on `subject`, the reply is an
    /// error reply (`Nats-Service-Error` headers: a handler's error, a rejected payload),
    /// or the reply is not JSON. Each message names the subject.
    pub async fn request(&self, subject: &str, data: impl Serialize) -> Value {
        self.request_as(subject, data).await
    }

    /// As [`request`](TestClient::request), the reply decoded as a `T`.
    ///
    /// # Panics
    ///
    /// As [`request`](TestClient::request), and if the reply is not a `T`.
    pub async fn request_as<T: DeserializeOwned>(&self, subject: &str, data: impl Serialize) -> T {
        let reply = self.request_raw(subject, to_json(subject, &data)).await;
        if let Some((code, description)) = service_error(&reply) {
            panic!("TestClient: request on {subject}: error reply {code}: {description}");
        }
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
            panic!(
                "TestClient: request on {subject}: the reply is not the JSON expected ({e}): {:?}",
                String::from_utf8_lossy(&reply.payload)
            )
        })
    }

    /// Sends `payload` as it is and returns the reply as it came, error replies included
    /// (their headers say what failed).
    ///
    /// # Panics
    ///
    /// If no reply comes within the timeout, or nobody listens on `subject`.
    pub async fn request_raw(&self, subject: &str, payload: impl AsRef<[u8]>) -> Message {
        let asked = self
            .client
            .request_with(subject, None, payload, self.timeout)
            .await;
        asked.unwrap_or_else(|e| match e {
            Error::NoResponders => {
                panic!("TestClient: request on {subject}: no responders (nobody listens on it)")
            }
            Error::Timeout => {
                panic!(
                    "TestClient: request on {subject}: no reply within {:?}",
                    self.timeout
                )
            }
            e => panic!("TestClient: request on {subject}: {e}"),
        })
    }

    /// Subscribes to `subject` (wildcards allowed), and returns once the server has the
    /// subscription (so nothing published after is missed).
    ///
    /// # Panics
    ///
    /// If the subscription fails.
    pub async fn subscribe(&self, subject: &str) -> TestSubscription {
        let subscribed = async {
            let sub = self.client.subscribe(subject).await?;
            self.client.flush().await?;
            Ok::<_, Error>(sub)
        };
        let sub = subscribed
            .await
            .unwrap_or_else(|e| panic!("TestClient: subscribing to {subject}: {e}"));
        TestSubscription {
            sub,
            subject: subject.to_string(),
        }
    }
}

/// The messages on one subject, as a test waits for them: [`expect`](Self::expect) `n`
/// of them within a bound, or the [`next`](Self::next_within) one.
#[derive(Debug)]
pub struct TestSubscription {
    sub: Subscription,
    subject: String,
}

impl TestSubscription {
    /// The next message, or `None` if none comes within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Message> {
        async { self.sub.next().await }
            .or(async {
                smol::Timer::after(timeout).await;
                None
            })
            .await
    }

    /// The next `n` messages, all within `timeout` (messages after them stay for the next
    /// call).
    ///
    /// # Panics
    ///
    /// If fewer than `n` came within `timeout`; the message says how many did.
    pub async fn expect(&mut self, n: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await {
                Some(msg) => got.push(msg),
                None => panic!(
                    "TestSubscription: {} of {n} messages on {} within {timeout:?}: {:?}",
                    got.len(),
                    self.subject,
                    got.iter().map(|m| &m.subject).collect::<Vec<_>>()
                ),
            }
        }
        got
    }

    /// As [`expect`](Self::expect), the payloads decoded as JSON.
    ///
    /// # Panics
    ///
    /// As [`expect`](Self::expect), and if a payload is not JSON.
    pub async fn expect_json(&mut self, n: usize, timeout: Duration) -> Vec<Value> {
        let got = self.expect(n, timeout).await;
        got.iter()
            .map(|msg| {
                serde_json::from_slice(&msg.payload).unwrap_or_else(|e| {
                    panic!(
                        "TestSubscription: a message on {} is not JSON ({e}): {:?}",
                        msg.subject,
                        String::from_utf8_lossy(&msg.payload)
                    )
                })
            })
            .collect()
    }

    /// The underlying subscription (a `Stream` of [`Message`]s).
    pub fn into_inner(self) -> Subscription {
        self.sub
    }
}

/// `data` as JSON bytes; a panic naming `subject` if it does not serialize.
fn to_json(subject: &str, data: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(data)
        .unwrap_or_else(|e| panic!("TestClient: the payload for {subject} is not JSON: {e}"))
}

/// The code and description of an error reply (`Nats-Service-Error` headers).
fn service_error(msg: &Message) -> Option<(String, &str)> {
    let headers = msg.headers.as_ref()?;
    let description = headers.get("Nats-Service-Error")?;
    let code = headers.get("Nats-Service-Error-Code").unwrap_or("500");
    Some((code.trim().to_string(), description))
}
