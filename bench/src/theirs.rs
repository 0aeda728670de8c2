//! The same workloads against async-nats, on tokio's multi-thread runtime with its default
//! worker count (one per core), as `#[tokio::main]` gives: `Runtime::block_on` drives the
//! benchmark on the calling thread; the client's connection task and the responder run on
//! the workers.

use std::time::Instant;

use async_nats::{Client, RequestErrorKind, Subject, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Runtime;

use crate::contender::{
    rate, Contender, Endpoint, Latency, Meter, Throughput, RECEIVE_TIMEOUT, REQUEST_PAYLOAD,
};
use crate::publisher::Armed;
use crate::Result;

/// How every async-nats client connects: the URL alone (what `async_nats::connect(url)`
/// does), plus under `--tls` the CA file as its only root (no system roots are loaded
/// then) and TLS required (the `tls://` scheme requires it too).
pub fn options(at: &Endpoint) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new();
    match &at.ca_file {
        Some(ca) => options.add_root_certificates(ca.clone()).require_tls(true),
        None => options,
    }
}

async fn connect(at: &Endpoint) -> Result<Client> {
    Ok(options(at).connect(at.url.as_str()).await?)
}

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

    fn publish(
        &self,
        at: &Endpoint,
        subject: &str,
        payload: &[u8],
        count: usize,
    ) -> Result<Throughput> {
        self.rt.block_on(async {
            let client = connect(at).await?;
            let probe = Subject::from(format!("{subject}.nobody"));
            server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
                                                    // The cheapest way to call it: subject and payload are cloned reference counts.
            let subject = Subject::from(subject);
            let payload = Bytes::copy_from_slice(payload);
            let meter = Meter::start();
            for _ in 0..count {
                client.publish(subject.clone(), payload.clone()).await?;
            }
            server_has_all(&client, &probe).await?;
            let figure = Throughput::of(count, &meter);
            drop(client);
            Ok(figure)
        })
    }

    fn subscribe(
        &self,
        at: &Endpoint,
        subject: &str,
        publisher: Armed,
        count: usize,
    ) -> Result<Throughput> {
        self.rt.block_on(async {
            let client = options(at)
                .subscription_capacity(count)
                .connect(at.url.as_str())
                .await?;
            let mut sub = client.subscribe(subject.to_string()).await?;
            client.flush().await?; // SUB written ...
            server_has_all(&client, &Subject::from(format!("{subject}.nobody"))).await?; // ... and processed
            let meter = Meter::start();
            let sending = publisher.go();
            let received = tokio::time::timeout(RECEIVE_TIMEOUT, receive(&mut sub, count)).await;
            let elapsed = received.map_err(|_| "timed out: messages were lost")??;
            let publisher = sending.join().map_err(|_| "publisher panicked")??;
            let cpu_ns = meter.cpu_per_without(count, publisher);
            drop(client);
            let per_sec = rate(count, elapsed);
            Ok(Throughput { per_sec, cpu_ns })
        })
    }

    fn request_sequential(&self, at: &Endpoint, subject: &str, count: usize) -> Result<Latency> {
        self.rt.block_on(async {
            let responder = respond(at, subject).await?;
            let client = connect(at).await?;
            let subject = Subject::from(subject);
            let payload = Bytes::from_static(REQUEST_PAYLOAD);
            client.request(subject.clone(), payload.clone()).await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let meter = Meter::start();
            for _ in 0..count {
                let sent = Instant::now();
                client.request(subject.clone(), payload.clone()).await?;
                samples.push(sent.elapsed());
            }
            let latency = Latency::from_samples(samples, &meter);
            drop(client);
            responder.abort();
            Ok(latency)
        })
    }

    fn request_concurrent(
        &self,
        at: &Endpoint,
        subject: &str,
        total: usize,
        in_flight: usize,
    ) -> Result<Throughput> {
        self.rt.block_on(async {
            let responder = respond(at, subject).await?;
            let client = connect(at).await?;
            let subject = Subject::from(subject);
            let payload = Bytes::from_static(REQUEST_PAYLOAD);
            client.request(subject.clone(), payload.clone()).await?; // warm-up
            let each = total / in_flight;
            let meter = Meter::start();
            let workers = (0..in_flight).map(|_| async {
                for _ in 0..each {
                    client.request(subject.clone(), payload.clone()).await?;
                }
                Ok::<_, async_nats::RequestError>(())
            });
            futures::future::try_join_all(workers).await?;
            let figure = Throughput::of(each * in_flight, &meter);
            drop(client);
            responder.abort();
            Ok(figure)
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
async fn respond(at: &Endpoint, subject: &str) -> Result<tokio::task::JoinHandle<()>> {
    let server = connect(at).await?;
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
