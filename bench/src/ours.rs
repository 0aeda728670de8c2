//! The workloads against our client, on smol: `smol::block_on` drives the benchmark on
//! the calling thread; the client's connection task (and our responder) run
//! on smol's global executor, with its default of one thread.

use std::time::Instant;

use futures_lite::{FutureExt, StreamExt};
use panini::client::{Client, ConnectOptions, Subscription};
use smol::Timer;

use crate::contender::{
    rate, Contender, Endpoint, Latency, Meter, Throughput, RECEIVE_TIMEOUT, REQUEST_PAYLOAD,
};
use crate::publisher::Armed;
use crate::Result;

#[derive(Debug)]
pub struct Ours;

/// How every client of ours connects: the URL alone (what `connect(url)` does), plus the
/// CA file under `--tls`.
pub fn options(at: &Endpoint) -> ConnectOptions {
    let options = ConnectOptions::new([at.url.as_str()]);
    match &at.ca_file {
        Some(ca) => options.tls_ca_file(ca),
        None => options,
    }
}

async fn connect(at: &Endpoint) -> Result<Client> {
    Ok(options(at).connect().await?)
}

impl Contender for Ours {
    fn name(&self) -> &'static str {
        "ours"
    }

    fn publish(
        &self,
        at: &Endpoint,
        subject: &str,
        payload: &[u8],
        count: usize,
    ) -> Result<Throughput> {
        smol::block_on(async {
            let client = connect(at).await?;
            let probe = format!("{subject}.nobody");
            server_has_all(&client, &probe).await?; // warm-up: creates the reply inbox
            let meter = Meter::start();
            for _ in 0..count {
                client.publish(subject, payload).await?;
            }
            server_has_all(&client, &probe).await?;
            let figure = Throughput::of(count, &meter);
            client.close().await;
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
        smol::block_on(async {
            let client = options(at).subscription_capacity(count).connect().await?;
            let mut sub = client.subscribe(subject).await?;
            client.flush().await?;
            let meter = Meter::start();
            let sending = publisher.go();
            let timeout = async {
                Timer::after(RECEIVE_TIMEOUT).await;
                Err("timed out: messages were lost".into())
            };
            let elapsed = receive(&mut sub, count).or(timeout).await?;
            let publisher = sending.join().map_err(|_| "publisher panicked")??;
            let cpu_ns = meter.cpu_per_without(count, publisher);
            let dropped = client.statistics().dropped_msgs;
            client.close().await;
            if dropped != 0 {
                return Err(format!("ours dropped {dropped} messages").into());
            }
            let per_sec = rate(count, elapsed);
            Ok(Throughput { per_sec, cpu_ns })
        })
    }

    fn request_sequential(&self, at: &Endpoint, subject: &str, count: usize) -> Result<Latency> {
        smol::block_on(async {
            let responder = respond(at, subject).await?;
            let client = connect(at).await?;
            client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
            let mut samples = Vec::with_capacity(count);
            let meter = Meter::start();
            for _ in 0..count {
                let sent = Instant::now();
                client.request(subject, REQUEST_PAYLOAD).await?;
                samples.push(sent.elapsed());
            }
            let latency = Latency::from_samples(samples, &meter);
            client.close().await;
            responder.cancel().await;
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
        smol::block_on(async {
            let responder = respond(at, subject).await?;
            let client = connect(at).await?;
            client.request(subject, REQUEST_PAYLOAD).await?; // warm-up
            let each = total / in_flight;
            let meter = Meter::start();
            let workers = (0..in_flight).map(|_| async {
                for _ in 0..each {
                    client.request(subject, REQUEST_PAYLOAD).await?;
                }
                Ok::<_, panini::Error>(())
            });
            futures::future::try_join_all(workers).await?;
            let figure = Throughput::of(each * in_flight, &meter);
            client.close().await;
            responder.cancel().await;
            Ok(figure)
        })
    }
}

/// Flush, then a request nobody serves: the server's 503 comes after it processed every
/// earlier publish of this connection.
async fn server_has_all(client: &Client, nobody: &str) -> Result<()> {
    client.flush().await?;
    match client.request(nobody, b"").await {
        Err(panini::Error::NoResponders) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err(format!("{nobody}: unexpected reply").into()),
    }
}

/// Time from the first to the `count`th message.
async fn receive(sub: &mut Subscription, count: usize) -> Result<std::time::Duration> {
    let mut first = None;
    for _ in 0..count {
        sub.next().await.ok_or("subscription ended early")?;
        first.get_or_insert_with(Instant::now);
    }
    Ok(first.map_or_else(Default::default, |t| t.elapsed()))
}

/// An echo responder on its own connection, running on smol's global executor.
async fn respond(at: &Endpoint, subject: &str) -> Result<smol::Task<()>> {
    let server = connect(at).await?;
    let mut sub = server.subscribe(subject).await?;
    server.flush().await?;
    Ok(smol::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = &msg.reply {
                let _ = server.publish(reply, &msg.payload).await;
            }
        }
    }))
}
