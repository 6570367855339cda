//! A small client of eric's HTTP API, for the verbs the socket protocol lacks: choosing
//! a channel id, listing channels, removing channels and listeners.
//!
//! One HTTP/1.1 connection per request (hyper's connection API, no pool): a CLI run makes
//! one request. Over TLS when asked ([`HttpClient::tls`], from `--https` / `--cacert`),
//! with a bearer token when given (`--token`).

use crate::error::{CliError, Exit};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a connection or a whole request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How the HTTP verbs reach the server: TLS or not, a token or not.
#[derive(Clone, Debug, Default)]
pub struct HttpClient {
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Speak HTTPS, trusting what this configuration trusts.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client configuration trusting the CA certificates (PEM) in `cacert`, or, with
/// none given, the system's.
pub fn tls_client(cacert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, CliError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match cacert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|error| {
                    CliError::invalid_input(format!(
                        "--cacert {}: cannot read it as PEM certificates: {error}",
                        path.display()
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(CliError::invalid_input(format!(
                    "--cacert {}: no usable certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(CliError::invalid_input(
                    "--https: no CA certificate found on this system; give one with --cacert",
                ));
            }
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| CliError::new(Exit::Other, error.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The HTTP API of a server at `host:port`.
#[derive(Clone, Debug)]
pub struct HttpApi {
    authority: String,
    /// The CLI verb being run, named in the error when nothing answers.
    verb: &'static str,
    client: HttpClient,
}

impl HttpApi {
    /// The API at `address` (`127.0.0.1:8080`; an `http://` prefix is accepted), used by
    /// the CLI verb `verb`.
    pub fn new(address: &str, verb: &'static str) -> Self {
        HttpApi {
            authority: authority(address).to_owned(),
            verb,
            client: HttpClient::default(),
        }
    }

    /// This API reached as `client` says.
    pub fn with_client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }

    /// `PUT /create?channel_id=ID`: creates a channel with a chosen id.
    pub async fn create_channel(&self, id: &str) -> Result<String, CliError> {
        let answer = self
            .request(
                Method::PUT,
                &format!("/create?channel_id={}", percent_encode(id)),
            )
            .await?;
        answer
            .get("channel_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| unexpected(&answer))
    }

    /// `GET /channels`: the channel ids.
    pub async fn channels(&self) -> Result<Vec<String>, CliError> {
        let answer = self.request(Method::GET, "/channels").await?;
        serde_json::from_value(answer.clone()).map_err(|_| unexpected(&answer))
    }

    /// `GET /`: every channel id with its listener ids.
    pub async fn snapshot(&self) -> Result<BTreeMap<String, Vec<String>>, CliError> {
        let answer = self.request(Method::GET, "/").await?;
        serde_json::from_value(answer.clone()).map_err(|_| unexpected(&answer))
    }

    /// `DELETE /channel/{channel}`.
    pub async fn remove_channel(&self, channel: &str) -> Result<(), CliError> {
        self.request(
            Method::DELETE,
            &format!("/channel/{}", percent_encode(channel)),
        )
        .await
        .map(drop)
    }

    /// `DELETE /listener/{channel}/{listener}`.
    pub async fn remove_listener(&self, channel: &str, listener: &str) -> Result<(), CliError> {
        self.request(
            Method::DELETE,
            &format!(
                "/listener/{}/{}",
                percent_encode(channel),
                percent_encode(listener)
            ),
        )
        .await
        .map(drop)
    }

    /// `GET path` of an event stream: its body, to read as it comes, once the server
    /// answered 200 (within the request timeout).
    pub async fn event_stream(&self, path: &str) -> Result<hyper::body::Incoming, CliError> {
        let open = async {
            let addresses = self.resolve().await?;
            let stream = TcpStream::connect(&addresses[..])
                .await
                .map_err(|error| self.connect_error(error))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|error| self.http_error(error))?;
            // Runs as long as the body is read; ends with the connection.
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
            });
            let request = Request::get(path)
                .header(hyper::header::HOST, &self.authority)
                .header(hyper::header::ACCEPT, "text/event-stream")
                .body(Full::new(Bytes::new()))
                .expect("a request from valid parts");
            let response = sender
                .send_request(request)
                .await
                .map_err(|error| self.http_error(error))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response.into_body());
            }
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| self.http_error(error))?
                .to_bytes();
            let answer = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Err(self.status_error(status, &answer))
        };
        tokio::time::timeout(TIMEOUT, open).await.map_err(|_| {
            CliError::new(
                Exit::Io,
                format!(
                    "no answer from the HTTP API at {} to GET {path} within {}s",
                    self.authority,
                    TIMEOUT.as_secs()
                ),
            )
        })?
    }

    /// Sends a request without a body; returns the JSON answer of a 2xx response.
    async fn request(&self, method: Method, path: &str) -> Result<Value, CliError> {
        tokio::time::timeout(TIMEOUT, self.exchange(method.clone(), path))
            .await
            .map_err(|_| {
                CliError::new(
                    Exit::Io,
                    format!(
                        "no answer from the HTTP API at {} to {method} {path} within {}s",
                        self.authority,
                        TIMEOUT.as_secs()
                    ),
                )
            })?
    }

    async fn exchange(&self, method: Method, path: &str) -> Result<Value, CliError> {
        let addresses = self.resolve().await?;
        let stream = TcpStream::connect(&addresses[..])
            .await
            .map_err(|error| self.connect_error(error))?;
        let (status, body) = match &self.client.tls {
            None => self.send_on(stream, method, path).await?,
            Some(config) => {
                let host = self
                    .authority
                    .rsplit_once(':')
                    .map_or(self.authority.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|error| CliError::invalid_input(format!("--http {host}: {error}")))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, stream)
                    .await
                    .map_err(|error| {
                        CliError::new(
                            Exit::Io,
                            format!(
                                "TLS with the HTTP API at {} failed: {error} (trust its CA with --cacert)",
                                self.authority
                            ),
                        )
                    })?;
                self.send_on(tls, method, path).await?
            }
        };
        self.answer(status, &body)
    }

    /// Sends the request on a connection; the status and body of the answer.
    async fn send_on<I>(
        &self,
        io: I,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), CliError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|error| self.http_error(error))?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(token) = &self.client.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::new())).map_err(|_| {
            CliError::invalid_input("--token: not a value an HTTP header can carry")
        })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| self.http_error(error))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| self.http_error(error))?
            .to_bytes();
        driver.abort();
        Ok((status, body))
    }

    /// The JSON answer of a 2xx response; the refusal of any other.
    fn answer(&self, status: StatusCode, body: &Bytes) -> Result<Value, CliError> {
        let answer: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).map_err(|_| {
                CliError::new(
                    Exit::Other,
                    format!(
                        "the HTTP API at {} answered {status} with a body that is not JSON: {:?}",
                        self.authority,
                        String::from_utf8_lossy(body)
                    ),
                )
            })?
        };
        if status.is_success() {
            Ok(answer)
        } else {
            Err(self.status_error(status, &answer))
        }
    }

    /// The addresses of the host; one that does not resolve is invalid input (exit 5), as
    /// it is for `eric serve`.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, CliError> {
        let invalid = |why: String| {
            CliError::invalid_input(format!(
                "--http {}: {why}; write HOST:PORT, e.g. 127.0.0.1:8080",
                self.authority
            ))
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&self.authority)
            .await
            .map_err(|error| invalid(error.to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(invalid("the name has no address".to_owned()));
        }
        Ok(addresses)
    }

    fn connect_error(&self, error: io::Error) -> CliError {
        match error.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => CliError::new(
                Exit::NoServer,
                format!(
                    "no HTTP API at {}: `eric {}` needs it (the socket protocol has no such verb); \
                     start a server with HTTP (`eric serve`, without --no-http) or point --http at one",
                    self.authority, self.verb
                ),
            ),
            _ => CliError::io(
                format_args!("cannot connect to the HTTP API at {}", self.authority),
                error,
            ),
        }
    }

    fn http_error(&self, error: hyper::Error) -> CliError {
        CliError::new(
            Exit::Io,
            format!("talking to the HTTP API at {}: {error}", self.authority),
        )
    }

    fn status_error(&self, status: StatusCode, answer: &Value) -> CliError {
        let message = answer
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| answer.to_string());
        // 503 is a refusal too: a full queue, too many streams, a server shutting down.
        let exit = if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE {
            Exit::Refused
        } else {
            Exit::Other
        };
        CliError::new(
            exit,
            format!("the server refused the command ({status}): {message}"),
        )
    }
}

fn unexpected(answer: &Value) -> CliError {
    CliError::new(
        Exit::Other,
        format!("unexpected answer from the HTTP API: {answer}"),
    )
}

/// `host:port` out of `host:port`, `http://host:port` or `http://host:port/`.
pub fn authority(address: &str) -> &str {
    address
        .strip_prefix("http://")
        .unwrap_or(address)
        .trim_end_matches('/')
}

/// What [`percent_encode`] escapes: everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` so that any id fits in a path segment or a query value.
fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_encoded() {
        assert_eq!(percent_encode("news-1"), "news-1");
        assert_eq!(percent_encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn an_http_url_is_read_as_its_authority() {
        assert_eq!(authority("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(authority("http://localhost:9000/"), "localhost:9000");
    }

    #[tokio::test]
    async fn nothing_listening_is_no_server_naming_the_verb() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let api = HttpApi::new(&format!("127.0.0.1:{port}"), "channel list");
        let error = api.channels().await.unwrap_err();
        assert_eq!(error.exit, Exit::NoServer);
        assert!(error.message.contains("eric channel list"), "{error}");
    }
}
