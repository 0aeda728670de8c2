//! The client's NKey and JWT authentication against a real nats-server: an nkey user, a
//! JWT user of operator mode (`resolver: MEMORY`) through a creds file in `nsc`'s shape and
//! its variants, through the file's text, and through a JWT with a signing callback; and
//! the refusals: another seed, a garbled seed or creds file, an expired or revoked user.
//!
//! The JWTs are minted here with `panini::nkeys` (`common::jwt`); `tests/nkeys_wire.rs`
//! checks, without the client, that the server takes them.

#![cfg(feature = "nkeys")]

mod common;

use std::time::{Duration, Instant};

use common::jwt::{creds_file, now, read_info, Scratch, Trust};
use common::{run, within, NatsServer};
use panini::client::{Client, ConnectOptions};
use panini::nkeys::{KeyKind, KeyPair};
use panini::{BoxError, Error};
use smol::stream::StreamExt;

/// A refusal is final: no retry, so well under the 5 s default connect timeout.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// Bound on one message or reply.
const STEP: Duration = Duration::from_secs(5);

fn nkey_server(user: &KeyPair) -> NatsServer {
    let conf = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    NatsServer::with_config(&conf)
}

fn operator_server(trust: &Trust, revocations: &[(&str, u64)]) -> NatsServer {
    NatsServer::with_config(&trust.server_config(&trust.account_jwt(revocations)))
}

/// A publish reaches the client's own subscription.
async fn pub_sub(client: &Client) {
    let mut sub = client.subscribe("auth.check").await.unwrap();
    client.publish("auth.check", "signed in").await.unwrap();
    let msg = within(STEP, "the message", sub.next()).await;
    assert_eq!(msg.expect("subscription open").payload, b"signed in");
}

/// A request is answered by a responder on the same client.
async fn request_reply(client: &Client) {
    let mut sub = client.subscribe("svc.double").await.unwrap();
    let responder = client.clone();
    let serve = smol::spawn(async move {
        let msg = sub.next().await.expect("subscription open");
        let n: u64 = msg.text().unwrap().parse().unwrap();
        let reply = msg.reply.expect("a request has a reply subject");
        responder
            .publish(&reply, (n * 2).to_string())
            .await
            .unwrap();
    });
    let reply = within(STEP, "the reply", client.request("svc.double", "21")).await;
    assert_eq!(reply.unwrap().payload, b"42");
    serve.await;
}

/// Asserts `err` is a refusal by the server, and that it came without retries.
fn assert_refused(err: &Error, started: Instant) {
    assert!(
        matches!(err, Error::Auth(t) if t.contains("Authorization Violation")),
        "{err:?}"
    );
    let took = started.elapsed();
    assert!(
        took < REFUSED_WITHIN,
        "refused after {took:?}: a retry storm?"
    );
}

/// Asserts `err` is `Error::Credentials` and that neither its Display nor its Debug holds
/// `secret` or a 10-character piece of it.
fn assert_credentials_error(err: &Error, secret: &str) {
    assert!(matches!(err, Error::Credentials(_)), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}")] {
        for piece in secret.as_bytes().windows(10) {
            let piece = String::from_utf8_lossy(piece);
            assert!(!shown.contains(&*piece), "{shown:?} quotes the secret");
        }
    }
}

#[test]
fn an_nkey_user_connects_with_its_seed() {
    let user = KeyPair::from_raw_seed(KeyKind::User, [1; 32]);
    let server = nkey_server(&user);
    let info = read_info(&server);
    assert!(info["nonce"].is_string(), "INFO without a nonce: {info}");
    run(async {
        let client = ConnectOptions::new([server.url()])
            .nkey_seed(user.seed())
            .connect()
            .await
            .unwrap();
        pub_sub(&client).await;
        // A seed read from a file keeps its newline: it still works.
        let client = ConnectOptions::new([server.url()])
            .nkey_seed(format!("{}\n", user.seed()))
            .connect()
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
}

#[test]
fn another_valid_seed_is_refused_at_once() {
    let user = KeyPair::from_raw_seed(KeyKind::User, [1; 32]);
    let stranger = KeyPair::from_raw_seed(KeyKind::User, [2; 32]);
    let server = nkey_server(&user);
    run(async {
        let started = Instant::now();
        let err = ConnectOptions::new([server.url()])
            .nkey_seed(stranger.seed())
            .connect()
            .await
            .unwrap_err();
        assert_refused(&err, started);
    });
}

#[test]
fn a_garbled_seed_is_a_credentials_error_that_does_not_quote_it() {
    let user = KeyPair::from_raw_seed(KeyKind::User, [1; 32]);
    let server = nkey_server(&user);
    let seed = user.seed();
    let flip = if &seed[30..31] == "A" { "B" } else { "A" };
    let mut garbled = seed.clone();
    garbled.replace_range(30..31, flip);
    run(async {
        for (bad, secret) in [
            (garbled.clone(), garbled.as_str()),
            (seed[..40].to_string(), seed.as_str()),
            (seed.to_lowercase(), seed.as_str()),
        ] {
            let opts = ConnectOptions::new([server.url()]).nkey_seed(bad.clone());
            assert!(!format!("{opts:?}").contains(&bad), "Debug shows the seed");
            let err = opts.connect().await.unwrap_err();
            assert_credentials_error(&err, secret);
        }
        // A public key where the seed belongs.
        let err = ConnectOptions::new([server.url()])
            .nkey_seed(user.public_key())
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Credentials(t) if t.to_string().contains("public key")),
            "{err:?}"
        );
    });
}

#[test]
fn a_creds_file_in_nsc_shape_and_its_variants_connects_in_operator_mode() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let jwt = trust.user_jwt();
    let nsc = creds_file(&jwt, &trust.user.seed());
    let variants = [
        ("nsc.creds", nsc.clone()),
        ("crlf.creds", nsc.replace('\n', "\r\n")),
        ("no-final-newline.creds", nsc.trim_end().to_string()),
        (
            "blank-lines-in-armour.creds",
            nsc.replace(&format!("\n{jwt}\n"), &format!("\n\n{jwt}\n\n")),
        ),
        (
            "indented.creds",
            nsc.lines().map(|line| format!("  {line}\n")).collect(),
        ),
    ];
    let dir = Scratch::new();
    run(async {
        for (name, text) in &variants {
            let path = dir.write(name, text);
            let client = ConnectOptions::new([server.url()])
                .creds_file(path)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log()));
            request_reply(&client).await;
        }
    });
}

#[test]
fn a_creds_file_is_read_when_connecting_not_when_configured() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let dir = Scratch::new();
    let path = dir.path("later.creds");
    let opts = ConnectOptions::new([server.url()]).creds_file(&path);
    dir.write(
        "later.creds",
        &creds_file(&trust.user_jwt(), &trust.user.seed()),
    );
    run(async {
        let client = opts.connect().await.unwrap();
        request_reply(&client).await;
    });
}

#[test]
fn the_creds_text_itself_connects() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let text = creds_file(&trust.user_jwt(), &trust.user.seed());
    run(async {
        let opts = ConnectOptions::new([server.url()]).creds(text.clone());
        let shown = format!("{opts:?}");
        assert!(!shown.contains(&trust.user.seed()), "Debug shows the seed");
        let client = opts.connect().await.unwrap();
        request_reply(&client).await;
    });
}

#[test]
fn a_missing_or_garbled_creds_file_is_a_credentials_error() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let jwt = trust.user_jwt();
    let seed = trust.user.seed();
    let dir = Scratch::new();
    let missing = dir.path("missing.creds");
    let no_seed = dir.write("no-seed.creds", &creds_file(&jwt, ""));
    let no_jwt = dir.write("no-jwt.creds", &creds_file("", &seed));
    let mut bad_seed = seed.clone();
    bad_seed.replace_range(57.., if seed.ends_with('A') { "B" } else { "A" });
    let bad_seed_file = dir.write("bad-seed.creds", &creds_file(&jwt, &bad_seed));
    run(async {
        let err = ConnectOptions::new([server.url()])
            .creds_file(&missing)
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Credentials(_)), "{err:?}");
        for (path, secret) in [
            (&no_seed, &jwt),
            (&no_jwt, &seed),
            (&bad_seed_file, &bad_seed),
        ] {
            let err = ConnectOptions::new([server.url()])
                .creds_file(path)
                .connect()
                .await
                .unwrap_err();
            assert_credentials_error(&err, secret);
        }
    });
}

#[test]
fn a_user_jwt_with_a_signing_callback_connects() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let signer = trust.user.clone();
    let sign = move |nonce: &[u8]| -> Result<Vec<u8>, BoxError> { Ok(signer.sign(nonce).to_vec()) };
    run(async {
        let client = ConnectOptions::new([server.url()])
            .jwt(trust.user_jwt(), sign)
            .connect()
            .await
            .unwrap();
        request_reply(&client).await;
        // The same JWT, the nonce signed by another key: refused.
        let stranger = KeyPair::from_raw_seed(KeyKind::User, [2; 32]);
        let started = Instant::now();
        let err = ConnectOptions::new([server.url()])
            .jwt(trust.user_jwt(), move |nonce: &[u8]| {
                Ok(stranger.sign(nonce).to_vec())
            })
            .connect()
            .await
            .unwrap_err();
        assert_refused(&err, started);
    });
}

#[test]
fn an_expired_user_jwt_is_refused() {
    let trust = Trust::default();
    let server = operator_server(&trust, &[]);
    let expired = trust.user_jwt_at(now() - 3600, Some(now() - 60));
    run(async {
        let started = Instant::now();
        let err = ConnectOptions::new([server.url()])
            .creds(creds_file(&expired, &trust.user.seed()))
            .connect()
            .await
            .unwrap_err();
        assert_refused(&err, started);
    });
}

#[test]
fn a_revoked_user_is_refused() {
    let trust = Trust::default();
    let revoked_at = now() - 60;
    let server = operator_server(&trust, &[(&trust.user.public_key(), revoked_at)]);
    let jwt = trust.user_jwt_at(revoked_at - 60, None);
    run(async {
        let started = Instant::now();
        let err = ConnectOptions::new([server.url()])
            .creds(creds_file(&jwt, &trust.user.seed()))
            .connect()
            .await
            .unwrap_err();
        assert_refused(&err, started);
    });
}
