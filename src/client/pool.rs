//! The server pool: URLs given by the user plus those a cluster advertises, normalised and
//! de-duplicated, with credentials parsed out of `nats://user:pass@host:port` and the
//! `tls://` scheme noted (that server must be reached over TLS).

use crate::error::{Error, Result};

/// One server the client may connect to. Its `Debug` shows no credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<(String, String)>,
    pub(crate) token: Option<String>,
    /// `tls://`: TLS is required, whatever the server's INFO says.
    pub(crate) tls: bool,
    /// The name to verify the server's certificate against, when not `host`: a server a
    /// cluster advertised by IP address is checked against the host name of the server
    /// that advertised it (as nats.go does), so a certificate for `nats.example.com`
    /// covers the whole cluster.
    pub(crate) tls_name: Option<String>,
    /// Learned from INFO `connect_urls`, not given by the user.
    pub(crate) discovered: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url())
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_name", &self.tls_name)
            .field("discovered", &self.discovered)
            .finish()
    }
}

impl Server {
    /// `[nats://|tls://][user:pass@|token@]host[:port]`, with IPv6 hosts in brackets.
    /// The error never repeats credentials.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = || Error::InvalidUrl(redact(url));
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("nats") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => (true, rest),
            Some(_) => return Err(bad()),
            None => (false, url),
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(bad)?;
        let (user, token) = match auth {
            Some(a) => match a.split_once(':') {
                Some((u, p)) => (Some((u.to_string(), p.to_string())), None),
                None => (None, Some(a.to_string())),
            },
            None => (None, None),
        };
        Ok(Server {
            host,
            port,
            user,
            token,
            tls,
            tls_name: None,
            discovered: false,
        })
    }

    /// The name the server's certificate must be valid for.
    pub(crate) fn tls_name(&self) -> &str {
        self.tls_name.as_deref().unwrap_or(&self.host)
    }

    /// `host:port` (IPv6 in brackets): the identity used to de-duplicate.
    pub(crate) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `nats://host:port` (or `tls://`), without credentials: safe to print.
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://{}", self.addr())
    }
}

/// `url` with any `user:pass@` or `token@` part replaced by `***@`: what logs, banners and
/// errors may show.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((_, hostport)) => format!("***@{hostport}"),
        None => rest.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest,
    }
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 4222,
    };
    Some((host.to_string(), port))
}

/// The servers to try, in order, and which one we are on.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) servers: Vec<Server>,
    pub(crate) current: usize,
}

impl Pool {
    pub(crate) fn new(urls: &[String]) -> Result<Self> {
        let mut pool = Pool {
            servers: Vec::new(),
            current: 0,
        };
        for url in urls {
            let server = Server::parse(url)?;
            if server.tls && !cfg!(feature = "tls") {
                return Err(Error::FeatureDisabled {
                    feature: "tls",
                    needed_for: format!("the URL {}", server.url()),
                });
            }
            if !pool.contains(&server.addr()) {
                pool.servers.push(server);
            }
        }
        if pool.servers.is_empty() {
            return Err(Error::InvalidUrl(String::new()));
        }
        Ok(pool)
    }

    fn contains(&self, addr: &str) -> bool {
        self.servers.iter().any(|s| s.addr() == addr)
    }

    /// Adds the `host:port` entries of INFO `connect_urls`; returns the new ones' URLs.
    /// They take TLS from the server that advertised them: if we had to reach it over
    /// TLS, we must reach them over TLS too.
    pub(crate) fn add_discovered(&mut self, urls: &[String]) -> Vec<String> {
        let from = self.current().clone();
        let from_name = (from.tls_name().parse::<std::net::IpAddr>().is_err())
            .then(|| from.tls_name().to_string());
        let mut added = Vec::new();
        for url in urls {
            let Ok(mut server) = Server::parse(url) else {
                continue;
            };
            if !self.contains(&server.addr()) {
                server.discovered = true;
                server.tls = server.tls || from.tls;
                if server.host.parse::<std::net::IpAddr>().is_ok() {
                    server.tls_name.clone_from(&from_name);
                }
                added.push(server.url());
                self.servers.push(server);
            }
        }
        added
    }

    /// The server we are on.
    pub(crate) fn current(&self) -> &Server {
        &self.servers[self.current.min(self.servers.len() - 1)]
    }

    /// Indices to try, starting after the current server, which comes last.
    pub(crate) fn order_after_current(&self) -> Vec<usize> {
        let n = self.servers.len();
        (1..=n).map(|i| (self.current + i) % n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_and_defaults() {
        let s = Server::parse("nats://bob:s3cret@10.0.0.1:4333").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("10.0.0.1", 4333));
        assert_eq!(s.user, Some(("bob".into(), "s3cret".into())));
        let s = Server::parse("nats://tok@localhost").unwrap();
        assert_eq!((s.token.as_deref(), s.port), (Some("tok"), 4222));
        let s = Server::parse("[::1]:4222").unwrap();
        assert_eq!((s.host.as_str(), s.addr().as_str()), ("::1", "[::1]:4222"));
        let s = Server::parse("tls://x:1").unwrap();
        assert!(s.tls && !Server::parse("nats://x:1").unwrap().tls);
        assert_eq!((s.url().as_str(), s.tls_name()), ("tls://x:1", "x"));
        assert!(Server::parse("ws://x:1").is_err());
        assert!(Server::parse("nats://host:notaport").is_err());
    }

    #[test]
    fn discovered_urls_are_normalised_and_deduplicated() {
        let mut pool = Pool::new(&["nats://127.0.0.1:4222".into()]).unwrap();
        let added = pool.add_discovered(&[
            "127.0.0.1:4222".into(),
            "127.0.0.1:4223".into(),
            "127.0.0.1:4223".into(),
            "[::1]:4224".into(),
        ]);
        assert_eq!(added, ["nats://127.0.0.1:4223", "nats://[::1]:4224"]);
        assert_eq!(pool.servers.len(), 3);
        assert_eq!(pool.order_after_current(), [1, 2, 0]);
    }

    #[test]
    fn servers_discovered_by_ip_keep_tls_and_the_name_to_verify() {
        let mut pool = Pool {
            servers: vec![Server::parse("tls://nats.example.com:4222").unwrap()],
            current: 0,
        };
        pool.add_discovered(&["10.0.0.2:4222".into(), "other.example.com:4222".into()]);
        let ip = &pool.servers[1];
        assert!(ip.tls && ip.discovered);
        assert_eq!(ip.tls_name(), "nats.example.com");
        assert_eq!(pool.servers[2].tls_name(), "other.example.com");
    }

    #[test]
    fn credentials_never_show_in_errors_or_printable_urls() {
        assert_eq!(redact("nats://bob:s3cret@h:1"), "nats://***@h:1");
        assert_eq!(redact("tok@h"), "***@h");
        assert_eq!(redact("tls://h:1"), "tls://h:1");
        let e = Server::parse("nats://bob:s3cret@h:notaport").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let s = Server::parse("nats://bob:s3cret@h:1").unwrap();
        assert!(!s.url().contains("s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
        let s = Server::parse("nats://t0ken@h:1").unwrap();
        assert!(!format!("{s:?}").contains("t0ken"), "{s:?}");
    }
}
