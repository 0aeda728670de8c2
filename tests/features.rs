//! What a build without the optional features does when asked for them: a clear error that
//! names the feature, before anything is sent in clear. `scripts/test` runs this file with
//! `--no-default-features` (with the features on, it has nothing to check).
#![cfg(not(any(feature = "tls", feature = "nkeys")))]

mod common;

use std::time::Duration;

use common::{within, NatsServer};
use panini::client::ConnectOptions;
use panini::Error;

const BOUND: Duration = Duration::from_secs(10);

/// A public test seed (the NKey reference's check vector).
const SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";

fn feature_of(e: &Error) -> Option<&'static str> {
    match e {
        Error::FeatureDisabled { feature, .. } => Some(feature),
        _ => None,
    }
}

#[test]
fn a_tls_url_or_option_names_the_tls_feature() {
    smol::block_on(within(BOUND, "connects", async {
        let e = ConnectOptions::new(["tls://127.0.0.1:1"])
            .connect()
            .await
            .unwrap_err();
        assert_eq!(feature_of(&e), Some("tls"), "{e}");
        assert!(e.to_string().contains("tls://127.0.0.1:1"), "{e}");
        assert!(e.to_string().contains("`tls` cargo feature"), "{e}");
        let e = ConnectOptions::new(["nats://127.0.0.1:1"])
            .tls_ca_file("ca.pem")
            .connect()
            .await
            .unwrap_err();
        assert_eq!(feature_of(&e), Some("tls"), "{e}");
    }));
}

#[test]
fn a_server_that_requires_tls_gets_the_feature_error_not_plain_text() {
    let server = NatsServer::with_tls_config(&common::tls::tls_config());
    smol::block_on(within(BOUND, "connects", async {
        let e = ConnectOptions::new([server.url()])
            .user_and_password("alice", "s3cret")
            .connect()
            .await
            .unwrap_err();
        assert_eq!(feature_of(&e), Some("tls"), "{e}");
        assert!(e.to_string().contains("requires TLS"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }));
}

#[test]
fn nkey_and_creds_settings_name_the_nkeys_feature() {
    smol::block_on(within(BOUND, "connects", async {
        for opts in [
            ConnectOptions::new(["nats://127.0.0.1:1"]).nkey_seed(SEED),
            ConnectOptions::new(["nats://127.0.0.1:1"]).creds_file("user.creds"),
        ] {
            let e = opts.connect().await.unwrap_err();
            assert_eq!(feature_of(&e), Some("nkeys"), "{e}");
            assert!(!format!("{e} {e:?}").contains(SEED), "{e}");
        }
    }));
}
