//! The checks every request passes before it is routed: the `Host` it names (against
//! DNS rebinding) and, for the routes that read a body, its `Content-Type` (against
//! cross-site requests a browser sends without asking first).
//!
//! A page on any site can make the browser send a "simple" request to any address,
//! `POST` with `Content-Type: text/plain` included, without a CORS preflight: the
//! page cannot read the answer, but the request is served. Requiring
//! `application/json` makes every such request one the browser must preflight, and the
//! preflight fails unless the server's CORS list allows the page's origin.
//!
//! A page can also point a name of its own at 127.0.0.1 once it is loaded (DNS
//! rebinding): the browser then treats the server as the page's own origin and reads
//! its answers, streams included. Such requests carry the attacker's name in `Host`;
//! answering only the names the server was bound to shuts them out.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// The `Host` names a server answers.
///
/// The port of a `Host` is not checked against the server's, except for entries given
/// as `NAME:PORT`: a rebinding page always names a host of its own, whatever the port,
/// while a port forward or a local proxy (`ssh -L`, a container's port map) hands on
/// the port the client used.
#[derive(Clone, Debug)]
pub(crate) struct HostPolicy {
    /// Names answered with any port or none (lower case, no brackets).
    names: Vec<String>,
    /// Names given with a port, answered only with that port (lower case).
    names_with_port: Vec<(String, u16)>,
    /// Any IP address is answered: the server listens on every interface.
    any_ip: bool,
    /// Every `Host` is answered (the entry `*`).
    any: bool,
}

impl HostPolicy {
    /// The names a server listening on `local` answers: the loopback names when it
    /// listens on a loopback address, or on every interface; the address itself; and
    /// `extra` (a name, `NAME:PORT`, or `*` for any).
    pub(crate) fn new(local: SocketAddr, extra: &[String]) -> Self {
        let ip = local.ip();
        let mut policy = HostPolicy {
            names: vec![ip_name(ip)],
            names_with_port: Vec::new(),
            any_ip: ip.is_unspecified(),
            any: false,
        };
        if ip.is_loopback() || ip.is_unspecified() {
            for name in ["localhost", "127.0.0.1", "::1"] {
                policy.names.push(name.to_owned());
            }
        }
        for entry in extra {
            let entry = entry.trim();
            if entry == "*" {
                policy.any = true;
            } else if let Some((name, port)) = split_host(entry) {
                let name = name.into_owned();
                match port {
                    Some(port) => policy.names_with_port.push((name, port)),
                    None => policy.names.push(name),
                }
            } else if !entry.is_empty() {
                // Not a host name: kept as written, so that it matches what it says.
                policy.names.push(entry.to_ascii_lowercase());
            }
        }
        policy
    }

    /// Whether the request is answered: its `Host` (or the authority of an
    /// absolute-form target, which takes its place) is one of the policy's. A request
    /// without either is answered: browsers always send `Host`, so it is not the
    /// request of a page.
    fn admits(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
        if self.any {
            return Ok(());
        }
        let host = match uri.authority() {
            Some(authority) => Cow::Borrowed(authority.as_str()),
            None => match headers.get(header::HOST) {
                None => return Ok(()),
                Some(value) => String::from_utf8_lossy(value.as_bytes()),
            },
        };
        let Some((name, port)) = split_host(host.trim()) else {
            return Err(format!("the Host header {host:?} is not a host name"));
        };
        let known = self.names.iter().any(|allowed| *allowed == name)
            || (self.any_ip && name.parse::<IpAddr>().is_ok())
            || self.names_with_port.iter().any(|(allowed, allowed_port)| {
                *allowed == name && port.unwrap_or(80) == *allowed_port
            });
        if known {
            Ok(())
        } else {
            Err(format!(
                "this server does not answer for the host {host:?}; \
                 start it with --allowed-host {name} (env ERIC_ALLOWED_HOSTS) to allow it"
            ))
        }
    }
}

/// The name of an address as it appears in `Host`, brackets aside.
fn ip_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
    }
}

/// `host[:port]` as its lower-case name (an IPv6 address without its brackets, a
/// trailing dot dropped) and its port; `None` when it is not of that shape.
fn split_host(text: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        // Written the way `ip_name` writes it, whatever the spelling.
        let address: std::net::Ipv6Addr = address.parse().ok()?;
        (Cow::Owned(ip_name(IpAddr::V6(address))), port)
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) => (Cow::Borrowed(name), Some(port)),
            None => (Cow::Borrowed(text), None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    // Lowercased only if it has to be: a request's host is checked on every request.
    let name = match name {
        Cow::Borrowed(name) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            match name.bytes().any(|b| b.is_ascii_uppercase()) {
                true => Cow::Owned(name.to_ascii_lowercase()),
                false => Cow::Borrowed(name),
            }
        }
        // `ip_name` writes lower case, with no trailing dot.
        owned @ Cow::Owned(_) => owned,
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    valid.then_some((name, port))
}

/// A request refused before routing: its status and what was wrong.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

/// The checks of a request before it is routed: its `Host`, then the `Content-Type`
/// of a route that reads a JSON body.
///
/// A wrong `Host` is `421 Misdirected Request`: the request reached a server that does
/// not answer for that name, which is what happened (a 403 would say the client lacks
/// a permission it could get).
pub(crate) fn check(
    policy: &HostPolicy,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    policy.admits(uri, headers).map_err(|message| Refusal {
        status: StatusCode::MISDIRECTED_REQUEST,
        message,
    })?;
    if method == Method::POST && matches!(uri.path(), "/broadcast" | "/dispatch") {
        json_content_type(headers).map_err(|message| Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message,
        })?;
    }
    Ok(())
}

/// `Ok` when `Content-Type` is `application/json`, parameters (`; charset=utf-8`)
/// allowed.
fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    let shape = r#"send the body as Content-Type: application/json"#;
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(match headers.get(header::CONTENT_TYPE) {
            None => format!("the request has no Content-Type; {shape}"),
            Some(_) => format!("the request has more than one Content-Type; {shape}"),
        });
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!("the Content-Type {text:?} is not JSON; {shape}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn host_headers(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        headers
    }

    fn admits(policy: &HostPolicy, host: &str) -> bool {
        policy
            .admits(&Uri::from_static("/watch/c"), &host_headers(host))
            .is_ok()
    }

    #[test]
    fn a_loopback_server_answers_the_loopback_names() {
        let policy = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &[]);
        for host in [
            "localhost",
            "LocalHost:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]:8080",
            "localhost:8081",
        ] {
            assert!(admits(&policy, host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.2",
            "",
            "local host",
            "[::1",
        ] {
            assert!(!admits(&policy, host), "{host:?}");
        }
        assert!(
            policy
                .admits(&Uri::from_static("/"), &HeaderMap::new())
                .is_ok(),
            "no Host: not a browser"
        );
        assert!(
            policy
                .admits(
                    &Uri::from_static("http://evil.example/watch/c"),
                    &host_headers("localhost")
                )
                .is_err(),
            "an absolute target's authority is the host"
        );
    }

    #[test]
    fn allowed_hosts_add_names_and_star_allows_any() {
        let extra = ["Eric.Example".to_owned(), "proxy.example:443".to_owned()];
        let policy = HostPolicy::new("10.1.2.3:9000".parse().unwrap(), &extra);
        assert!(admits(&policy, "10.1.2.3:9000"));
        assert!(admits(&policy, "eric.example"));
        assert!(admits(&policy, "eric.example:9000"));
        assert!(admits(&policy, "proxy.example:443"));
        assert!(!admits(&policy, "proxy.example"));
        assert!(!admits(&policy, "localhost"), "not bound to loopback");
        assert!(!admits(&policy, "10.1.2.4:9000"));
        let any = HostPolicy::new("127.0.0.1:1".parse().unwrap(), &["*".to_owned()]);
        assert!(admits(&any, "evil.example"));
    }

    #[test]
    fn a_server_on_every_interface_answers_ip_addresses_but_not_names() {
        let policy = HostPolicy::new("0.0.0.0:8080".parse().unwrap(), &[]);
        assert!(admits(&policy, "192.168.1.20:8080"));
        assert!(admits(&policy, "[fe80::1]:8080"));
        assert!(admits(&policy, "localhost:8080"));
        assert!(!admits(&policy, "evil.example:8080"));
    }

    #[test]
    fn bodies_must_be_json() {
        let post = |content_type: Option<&str>| {
            let mut headers = host_headers("localhost");
            if let Some(value) = content_type {
                headers.append(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            }
            let policy = HostPolicy::new("127.0.0.1:80".parse().unwrap(), &[]);
            check(
                &policy,
                &Method::POST,
                &Uri::from_static("/broadcast?channel_id=c"),
                &headers,
            )
            .map_err(|refusal| (refusal.status, refusal.message))
        };
        assert!(post(Some("application/json")).is_ok());
        assert!(post(Some("Application/JSON ; charset=utf-8")).is_ok());
        for (content_type, needle) in [
            (None, "no Content-Type"),
            (Some("text/plain"), "\"text/plain\" is not JSON"),
            (Some("application/jsonx"), "not JSON"),
            (Some("application/x-www-form-urlencoded"), "not JSON"),
        ] {
            let (status, message) = post(content_type).unwrap_err();
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(message.contains(needle), "{message}");
        }
    }
}
