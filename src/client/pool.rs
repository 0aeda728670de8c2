//! The server pool: URLs given by the user plus those a cluster advertises, normalised and
//! de-duplicated, with credentials parsed out of `nats://user:pass@host:port`.

use crate::error::{Error, Result};

/// One server the client may connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<(String, String)>,
    pub(crate) token: Option<String>,
    /// Learned from INFO `connect_urls`, not given by the user.
    pub(crate) discovered: bool,
}

impl Server {
    /// `[nats://][user:pass@|token@]host[:port]`, with IPv6 hosts in brackets.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = || Error::InvalidUrl(url.to_string());
        let rest = match url.split_once("://") {
            Some(("nats", rest)) => rest,
            Some(_) => return Err(bad()),
            None => url,
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
            discovered: false,
        })
    }

    /// `host:port` (IPv6 in brackets): the identity used to de-duplicate.
    pub(crate) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `nats://host:port`, without credentials: safe to print.
    pub(crate) fn url(&self) -> String {
        format!("nats://{}", self.addr())
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
    pub(crate) fn add_discovered(&mut self, urls: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        for url in urls {
            let Ok(mut server) = Server::parse(url) else {
                continue;
            };
            if !self.contains(&server.addr()) {
                server.discovered = true;
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
        assert!(Server::parse("tls://x:1").is_err());
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
}
