//! What nats-server accepts from the NKeys and JWTs the tests mint with `panini::nkeys`,
//! checked by a handshake written by hand (no client): nkey users, operator mode with
//! `resolver: MEMORY`, and the refusals (another key, an expired or revoked user).

#![cfg(feature = "nkeys")]

mod common;

use common::jwt::{
    jwt_auth, next_answer, nkey_auth, now, raw_connect, raw_session, read_info, Trust,
};
use common::NatsServer;
use panini::nkeys::{KeyKind, KeyPair};

const VIOLATION: &str = "-ERR 'Authorization Violation'";

fn nkey_server(user: &KeyPair) -> NatsServer {
    let conf = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    NatsServer::with_config(&conf)
}

#[test]
fn an_nkey_user_signs_the_nonce_and_another_key_is_refused() {
    let user = KeyPair::from_raw_seed(KeyKind::User, [1; 32]);
    let server = nkey_server(&user);
    let info = read_info(&server);
    assert_eq!(info["auth_required"], true, "{info}");
    let nonce = info["nonce"].as_str().expect("INFO has a nonce");
    assert_eq!(nonce.len(), 15, "{nonce}");

    assert_eq!(raw_connect(&server, nkey_auth(&user)), "PONG");
    let stranger = KeyPair::from_raw_seed(KeyKind::User, [2; 32]);
    assert_eq!(raw_connect(&server, nkey_auth(&stranger)), VIOLATION);
    // The right public key with the wrong key's signature.
    let forged = |nonce: &str| {
        let mut fields = nkey_auth(&stranger)(nonce);
        fields["nkey"] = user.public_key().into();
        fields
    };
    assert_eq!(raw_connect(&server, forged), VIOLATION);
}

#[test]
fn the_minted_operator_account_and_user_are_accepted() {
    let trust = Trust::default();
    let server = NatsServer::with_config(&trust.server_config(&trust.account_jwt(&[])));
    assert!(read_info(&server)["nonce"].is_string());
    let answer = raw_connect(&server, jwt_auth(&trust.user_jwt(), &trust.user));
    assert_eq!(answer, "PONG", "{}", server.log());
    // The same JWT with the nonce signed by another user's key.
    let stranger = KeyPair::from_raw_seed(KeyKind::User, [2; 32]);
    let answer = raw_connect(&server, jwt_auth(&trust.user_jwt(), &stranger));
    assert_eq!(answer, VIOLATION);
}

#[test]
fn an_expired_user_jwt_is_refused() {
    let trust = Trust::default();
    let server = NatsServer::with_config(&trust.server_config(&trust.account_jwt(&[])));
    let expired = trust.user_jwt_at(now() - 3600, Some(now() - 60));
    assert_eq!(
        raw_connect(&server, jwt_auth(&expired, &trust.user)),
        VIOLATION
    );
    let later = trust.user_jwt_at(now() - 3600, Some(now() + 3600));
    assert_eq!(raw_connect(&server, jwt_auth(&later, &trust.user)), "PONG");
}

#[test]
fn a_revoked_user_is_refused_and_one_issued_after_the_revocation_is_not() {
    let trust = Trust::default();
    let at = now() - 60;
    let user = trust.user.public_key();
    let server = NatsServer::with_config(&trust.server_config(&trust.account_jwt(&[(&user, at)])));
    for iat in [at - 60, at] {
        let jwt = trust.user_jwt_at(iat, None);
        let answer = raw_connect(&server, jwt_auth(&jwt, &trust.user));
        assert_eq!(
            answer,
            VIOLATION,
            "issued {}s before the revocation",
            at - iat
        );
    }
    let renewed = trust.user_jwt_at(at + 1, None);
    assert_eq!(
        raw_connect(&server, jwt_auth(&renewed, &trust.user)),
        "PONG"
    );
}

#[test]
fn a_user_jwt_that_expires_while_connected_gets_an_error_and_the_close() {
    let trust = Trust::default();
    let server = NatsServer::with_config(&trust.server_config(&trust.account_jwt(&[])));
    let soon = trust.user_jwt_at(now(), Some(now() + 2));
    let (answer, mut conn) = raw_session(&server, jwt_auth(&soon, &trust.user));
    assert_eq!(answer, "PONG");
    // Within the socket's 5 s read timeout.
    assert_eq!(next_answer(&mut conn), "-ERR 'User Authentication Expired'");
    assert_eq!(next_answer(&mut conn), "EOF");
}
