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

use futures_rustls::pki_types::pem::{self, PemObject};
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::options::ConnectOptions;
use crate::error::{BoxError, Error, FileError, Result};

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
            let chain = certificates(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error("cannot read", "private key", key, pem_cause(e)))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error("cannot use", "client certificate", cert, e))?
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

/// A TLS error about the file at `path` (`what` it is), caused by `source`.
fn file_error(
    doing: &'static str,
    what: &'static str,
    path: &Path,
    source: impl Into<BoxError>,
) -> Error {
    Error::Tls(Box::new(FileError::new(
        doing,
        what,
        format!("{path:?}"),
        source,
    )))
}

/// The cause of a PEM failure: the I/O error itself when the file could not be read (so
/// the chain reaches it), else the PEM error.
fn pem_cause(e: pem::Error) -> BoxError {
    match e {
        pem::Error::Io(e) => Box::new(e),
        other => Box::new(other),
    }
}

/// The certificates of the PEM file at `path` (the `what` of the errors).
fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |e| file_error("cannot read", what, path, pem_cause(e));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(file_error(
            "cannot use",
            what,
            path,
            "no PEM certificate in it",
        ));
    }
    Ok(certs)
}

fn roots_from(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "CA file")? {
        roots
            .add(cert)
            .map_err(|e| file_error("cannot trust a certificate of", "CA file", path, e))?;
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
    if let Some(bundle) = &bundle {
        let certs = CertificateDer::pem_file_iter(bundle)
            .map_err(|e| file_error("cannot read", "CA bundle", bundle, pem_cause(e)))?;
        roots.add_parsable_certificates(certs.filter_map(|c| c.ok()));
    }
    if roots.is_empty() {
        return Err(tls_error(format!(
            "no trusted root certificates: none found in {} (set SSL_CERT_FILE, or \
             give a CA file with `tls_ca_file` or NATS_CA)",
            match &bundle {
                Some(b) => format!("{b:?}"),
                None => SYSTEM_BUNDLES.join(", "),
            }
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_missing_ca_file_keeps_the_io_error_as_the_source() {
        let dir = format!("panini-missing-{}", std::process::id());
        let path = std::env::temp_dir().join(dir).join("ca.pem");
        let Err(err) = roots_from(&path) else {
            panic!("a missing CA file gave roots");
        };
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        let file = err.source().expect("the file error");
        let io = file.source().and_then(|e| e.downcast_ref::<io::Error>());
        assert_eq!(
            io.map(io::Error::kind),
            Some(io::ErrorKind::NotFound),
            "{err:?}"
        );
        let text = err.to_string();
        let start = format!("tls: cannot read the CA file {path:?}: ");
        assert!(text.starts_with(&start), "{text}");
    }

    #[test]
    fn a_ca_file_without_certificates_says_so() {
        let path = std::env::temp_dir().join(format!("panini-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let result = roots_from(&path);
        let _ = std::fs::remove_file(&path);
        let Err(err) = result else {
            panic!("an empty CA file gave roots");
        };
        assert_eq!(
            err.to_string(),
            format!("tls: cannot use the CA file {path:?}: no PEM certificate in it")
        );
    }
}
