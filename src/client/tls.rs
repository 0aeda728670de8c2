//! TLS for the client (feature `tls`): the rustls configuration made from the options once
//! per client (trusted roots, client certificate), the upgrade of a TCP transport after
//! INFO, and the sorting of rustls failures into [`Error::Tls`] (retrying cannot fix them)
//! apart from plain I/O failures (it can).
//!
//! rustls runs on the `ring` provider, passed to the config builder: nothing process-wide
//! is installed, so another crate in the program that picks a different provider does not
//! make ours panic.

use std::io;
use std::path::Path;
use std::sync::Arc;

use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::options::ConnectOptions;
use crate::error::{Error, Result};

/// Where Linux distributions and BSDs keep the system's bundle of trusted CAs, in the
/// order OpenSSL's own probing tries them (`SSL_CERT_FILE` comes first).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem", // Alpine, macOS, the BSDs
];

/// The rustls configuration for these options: the user's own, or one made from the CA
/// file (else the system roots) and the client certificate.
pub(crate) fn client_config(opts: &ConnectOptions) -> Result<Arc<ClientConfig>> {
    if let Some(config) = &opts.tls_config {
        return Ok(config.clone());
    }
    let roots = match &opts.tls_ca_file {
        Some(path) => roots_from(path)?,
        None => system_roots()?,
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(Box::new(e)))?
            .with_root_certificates(roots);
    let config = match &opts.tls_client_cert {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_error(format!("cannot read the private key {key:?}: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(format!("cannot use the client certificate {cert:?}: {e}"))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name to check the certificate against: an IP address or a DNS name.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string()).map_err(|_| {
        tls_error(format!(
            "{name:?} is not a host name a certificate can name"
        ))
    })
}

/// Sorts an I/O error from a TLS stream: a rustls error inside it (a certificate that does
/// not verify, an alert from the server) is [`Error::Tls`]; the rest stays [`Error::Io`].
pub(crate) fn classify(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        if let Some(inner) = e.into_inner() {
            return Error::Tls(inner);
        }
        return Error::Tls("TLS error".into());
    }
    Error::Io(e)
}

fn tls_error(why: String) -> Error {
    Error::Tls(why.into())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |e: &dyn std::fmt::Display| tls_error(format!("cannot read {path:?}: {e}"));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM certificate in it"));
    }
    Ok(certs)
}

fn roots_from(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(format!("cannot trust a certificate of {path:?}: {e}")))?;
    }
    Ok(roots)
}

/// The system's trusted CAs: `$SSL_CERT_FILE`, else the first bundle of
/// [`SYSTEM_BUNDLES`] that exists. Certificates webpki cannot use are skipped, as other
/// TLS stacks skip them; none at all is an error that says what to do.
fn system_roots() -> Result<RootCertStore> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let bundle = from_env.or_else(|| {
        SYSTEM_BUNDLES
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file())
    });
    let mut roots = RootCertStore::empty();
    let mut why = String::new();
    if let Some(bundle) = &bundle {
        match CertificateDer::pem_file_iter(bundle) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs.filter_map(|c| c.ok()));
            }
            Err(e) => why = format!(": {e}"),
        }
    }
    if roots.is_empty() {
        return Err(tls_error(format!(
            "no trusted root certificates: none found in {}{why} (set SSL_CERT_FILE, or \
             give a CA file with `tls_ca_file` or NATS_CA)",
            match &bundle {
                Some(b) => format!("{b:?}"),
                None => SYSTEM_BUNDLES.join(", "),
            }
        )));
    }
    Ok(roots)
}
