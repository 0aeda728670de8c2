//! NATS JWTs minted in the test with panini's own NKeys: an operator, an account and a user
//! (deterministic keys), the server config of operator mode with `resolver: MEMORY`, creds
//! files in the shape `nsc` writes, and the handshake done by hand over a `TcpStream` (to
//! check what the server accepts without going through the client).
//!
//! A JWT is `b64url(header).b64url(claims).b64url(sig)`, header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`; with `nats.version: 2` the issuer signs the text
//! `header.claims`. The limits are the full set `nsc` writes: a limit left out is 0 to the
//! server, not unlimited. `jti` is left out: nats-server 2.9.10 does not check it.

#![cfg(feature = "nkeys")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use panini::nkeys::{KeyKind, KeyPair};
use serde_json::{json, Value};

use super::{NatsServer, TempDir};

/// Seconds since the Unix epoch (JWT `iat` and `exp`).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// base64url without padding. The crate's own encoder is private; this separate one lets
/// the server, not the crate, judge the crate's signatures.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut held = 0u32;
    let mut out = String::new();
    for &byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(char::from(ALPHABET[((bits >> held) & 63) as usize]));
        }
        bits &= (1 << held) - 1;
    }
    if held > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - held)) & 63) as usize]));
    }
    out
}

/// A v2 JWT: `claims` signed by `issuer` over `header.claims`.
pub fn sign_jwt(issuer: &KeyPair, claims: &Value) -> String {
    let header = base64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = base64url(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let sig = base64url(&issuer.sign(signed.as_bytes()));
    format!("{signed}.{sig}")
}

/// The claims every JWT has, around its `nats` object (`exp` only when given).
pub fn claims(
    issuer: &KeyPair,
    subject: &str,
    name: &str,
    iat: u64,
    exp: Option<u64>,
    nats: Value,
) -> Value {
    let mut claims = json!({
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    if let Some(exp) = exp {
        claims["exp"] = json!(exp);
    }
    claims
}

/// An operator, one account it signs, and one user of that account, each from a fixed
/// seed, so every run mints the same keys.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The operator: the server trusts it; it signs the account.
    pub operator: KeyPair,
    /// The account: preloaded in the server; it signs the user.
    pub account: KeyPair,
    /// The user: its seed signs the nonce.
    pub user: KeyPair,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            operator: KeyPair::from_raw_seed(KeyKind::Operator, [0x0f; 32]),
            account: KeyPair::from_raw_seed(KeyKind::Account, [0xac; 32]),
            user: KeyPair::from_raw_seed(KeyKind::User, [0x05; 32]),
        }
    }
}

impl Trust {
    /// The self-signed operator JWT.
    pub fn operator_jwt(&self) -> String {
        let nats = json!({"type": "operator", "version": 2});
        let op = &self.operator;
        sign_jwt(
            op,
            &claims(op, &op.public_key(), "panini-op", now(), None, nats),
        )
    }

    /// The account JWT, signed by the operator, with nsc's full limits and these
    /// revocations (`{user public key: unix time}`; users issued at or before it are out).
    pub fn account_jwt(&self, revocations: &[(&str, u64)]) -> String {
        let mut nats = json!({
            "type": "account",
            "version": 2,
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
            },
            "default_permissions": {"pub": {}, "sub": {}},
        });
        if !revocations.is_empty() {
            let revoked: serde_json::Map<String, Value> = revocations
                .iter()
                .map(|(key, at)| (key.to_string(), json!(at)))
                .collect();
            nats["revocations"] = Value::Object(revoked);
        }
        let sub = self.account.public_key();
        sign_jwt(
            &self.operator,
            &claims(&self.operator, &sub, "panini-acct", now(), None, nats),
        )
    }

    /// The user JWT, signed by the account, issued now, valid forever.
    pub fn user_jwt(&self) -> String {
        self.user_jwt_at(now(), None)
    }

    /// The user JWT issued at `iat`, expiring at `exp` if given.
    pub fn user_jwt_at(&self, iat: u64, exp: Option<u64>) -> String {
        let nats = json!({
            "type": "user",
            "version": 2,
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
        });
        let sub = self.user.public_key();
        sign_jwt(
            &self.account,
            &claims(&self.account, &sub, "panini-user", iat, exp, nats),
        )
    }

    /// The server config of operator mode: this operator, and this account JWT preloaded.
    pub fn server_config(&self, account_jwt: &str) -> String {
        format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
            self.operator_jwt(),
            self.account.public_key(),
        )
    }
}

/// A creds file exactly as `nsc` writes it (LF line ends, a final newline).
pub fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// A scratch directory for creds files, removed on `Drop`.
pub struct Scratch(TempDir);

impl Scratch {
    /// A new empty directory.
    pub fn new() -> Scratch {
        Scratch(TempDir::new())
    }

    /// The path of the file `name` in it (which may not exist yet).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `text` to the file `name` in it; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        path
    }
}

/// The server's INFO, read from a fresh plain connection.
pub fn read_info(server: &NatsServer) -> Value {
    let mut reader = BufReader::new(server.connect());
    info_of(&mut reader)
}

fn info_of(reader: &mut impl BufRead) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).expect("reading INFO");
    let json = line
        .strip_prefix("INFO ")
        .unwrap_or_else(|| panic!("not INFO: {line:?}"));
    serde_json::from_str(json.trim_end()).expect("INFO is JSON")
}

/// The handshake by hand: reads INFO, sends CONNECT with the fields `auth` makes from the
/// nonce (`{"jwt": .., "sig": ..}`), then PING; the server's answer: `PONG` or `-ERR '...'`.
pub fn raw_connect(server: &NatsServer, auth: impl FnOnce(&str) -> Value) -> String {
    raw_session(server, auth).0
}

/// [`raw_connect`], keeping the connection to read what the server says next.
pub fn raw_session(
    server: &NatsServer,
    auth: impl FnOnce(&str) -> Value,
) -> (String, BufReader<TcpStream>) {
    let stream = server.connect();
    let mut writer = stream.try_clone().expect("cloning the socket");
    let mut reader = BufReader::new(stream);
    let info = info_of(&mut reader);
    let nonce = info["nonce"].as_str().unwrap_or_default();
    let mut connect = json!({"verbose": false, "pedantic": false, "protocol": 1});
    if let (Value::Object(fields), Value::Object(more)) = (&mut connect, auth(nonce)) {
        fields.extend(more);
    }
    write!(writer, "CONNECT {connect}\r\nPING\r\n").expect("writing CONNECT");
    let answer = next_answer(&mut reader);
    (answer, reader)
}

/// The next `PONG` or `-ERR ...` line (`EOF` if the server closed first); skips the rest.
/// The socket's read timeout bounds the wait.
pub fn next_answer(reader: &mut impl BufRead) -> String {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("reading the answer");
        if n == 0 {
            return "EOF".into();
        }
        let line = line.trim_end();
        if line.starts_with("PONG") || line.starts_with("-ERR") {
            return line.to_string();
        }
    }
}

/// `{"jwt": jwt, "sig": b64url(sign(nonce))}`: what CONNECT carries for a JWT user.
pub fn jwt_auth(jwt: &str, signer: &KeyPair) -> impl FnOnce(&str) -> Value {
    let jwt = jwt.to_string();
    let signer = signer.clone();
    move |nonce| json!({"jwt": jwt, "sig": base64url(&signer.sign(nonce.as_bytes()))})
}

/// `{"nkey": public key, "sig": b64url(sign(nonce))}`: what CONNECT carries for an nkey user.
pub fn nkey_auth(user: &KeyPair) -> impl FnOnce(&str) -> Value {
    let user = user.clone();
    move |nonce| json!({"nkey": user.public_key(), "sig": base64url(&user.sign(nonce.as_bytes()))})
}
