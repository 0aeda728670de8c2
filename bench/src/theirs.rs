//! The same workloads against async-nats, on tokio's multi-thread runtime with its default
//! worker count (one per core), as `#[tokio::main]` gives: `Runtime::block_on` drives the
//! benchmark on the calling thread; the client's connection task and the responder run on
//! the workers.

use std::time::Instant;

use async_nats::{Client, RequestErrorKind, Subject, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Runtime;

use crate::contender::{rate, Contender, Latency, RECEIVE_TIMEOUT, REQUEST_PAYLOAD};
use crate::publisher::Armed;
use crate::Result;

#[derive(Debug)]
pub struct AsyncNats {
    rt: Runtime,
}

impl AsyncNats {
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok(AsyncNats { rt })
    }
}

impl Contender for AsyncNats {
    fn name(&self) -> &'static str {
        "async-nats"
    }

    fn publish(&self, url: &str, subject: &str, payload: &[u8], count: usize) -> Result<f64> {
        self.rt.block_on(async {
            let client = async_nats::connect(url).await?;
            let probe = Subject::from(format!("{subject}.nobody"));
            server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
                                                    // The cheapest way to call it: subject and payload are cloned reference counts.
            let subject = Subject::from(subject);
            let payload = Bytes::copy_from_slice(payload);
            let start = Instant::now();
            for _ in 0..count {
                client.publish(subject.clone(), payload.clone()).await?;
            }
            server_has_all(&client, &probe).await?;
            let elapsed = start.elapsed();
            drop(client);
            Ok(count as f64 / elapsed.as_secs_f64())
        })
    }

    fn subscribe(&self, url: &str, subject: &str, publisher: Armed, count: usize) -> Result<f64> {
        self.rt.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .subscription_capacity(count)
                .connect(url)
                .await?;
            let mut sub = client.subscribe(subject.to_string()).await?;
            client.flush().await?; // SUB written ...
            server_has_all(&client, &Subject::from(format!("{subject}.nobody"))).await?; // ... and processed
            let sending = publisher.go();
            let received = tokio::time::timeout(RECEIVE_TIMEOUT, receive(&mut sub, count)).await;
            let elapsed = received.map_err(|_| "timed out: messages were lost")??;
            sending.join().map_err(|_| "publisher panicked")??;
            drop(client);
            Ok(rate(count, elapsed))
        })
    }

    fn request_sequential(&self, url: &str, subject: &str, count: usize) -> Result<Latency> {
        self.rt.block_on(async {
            let responder = respond(url, subject).await?;
            let client = async_nats::connect(url).await?;
            let subject = Subject::from(subject);
            let payload = Bytes::from_static(REQUEST_PAYLOAD);
            client.request(subject.clone(), payload.clone()).await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let start = Instant::now();
            for _ in 0..count {
                let sent = Instant::now();
                client.request(subject.clone(), payload.clone()).await?;
                samples.push(sent.elapsed());
            }
            let total = start.elapsed();
            drop(client);
            responder.abort();
            Ok(Latency::from_samples(samples, total))
        })
    }

    fn request_concurrent(
        &self,
        url: &str,
        subject: &str,
        total: usize,
        in_flight: usize,
    ) -> Result<f64> {
        self.rt.block_on(async {
            let responder = respond(url, subject).await?;
            let client = async_nats::connect(url).await?;
            let subject = Subject::from(subject);
            let payload = Bytes::from_static(REQUEST_PAYLOAD);
            client.request(subject.clone(), payload.clone()).await?; // warm-up
            let each = total / in_flight;
            let start = Instant::now();
            let workers = (0..in_flight).map(|_| async {
                for _ in 0..each {
                    client.request(subject.clone(), payload.clone()).await?;
                }
                Ok::<_, async_nats::RequestError>(())
            });
            futures::future::try_join_all(workers).await?;
            let elapsed = start.elapsed();
            drop(client);
            responder.abort();
            Ok((each * in_flight) as f64 / elapsed.as_secs_f64())
        })
    }
}

/// Flush (which only writes out the socket buffer), then a request nobody serves: the
/// server's 503 comes after it processed every earlier publish of this connection.
async fn server_has_all(client: &Client, nobody: &Subject) -> Result<()> {
    client.flush().await?;
    match client.request(nobody.clone(), Bytes::new()).await {
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err(format!("{nobody}: unexpected reply").into()),
    }
}

/// Time from the first to the `count`th message.
async fn receive(sub: &mut Subscriber, count: usize) -> Result<std::time::Duration> {
    let mut first = None;
    for _ in 0..count {
        sub.next().await.ok_or("subscription ended early")?;
        first.get_or_insert_with(Instant::now);
    }
    Ok(first.map_or_else(Default::default, |t| t.elapsed()))
}

/// An echo responder on its own connection, spawned on the runtime.
async fn respond(url: &str, subject: &str) -> Result<tokio::task::JoinHandle<()>> {
    let server = async_nats::connect(url).await?;
    let mut sub = server.subscribe(subject.to_string()).await?;
    server.flush().await?;
    // async-nats's flush only writes the socket: a round trip makes sure the SUB is live.
    server_has_all(&server, &Subject::from(format!("{subject}.nobody"))).await?;
    Ok(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = server.publish(reply, msg.payload).await;
            }
        }
    }))
}
