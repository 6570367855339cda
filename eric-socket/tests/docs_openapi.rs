//! docs/openapi.yaml against the real HTTP server: the spec's operations are the
//! server's routes ([`eric_socket::http::ROUTES`], with their summaries), and each
//! answers with a status and a body the spec documents.
#![cfg(feature = "http")]

use eric_socket::http::ROUTES;
use eric_socket::{ChannelContainer, HttpServer, HttpServerConfig};
use serde_json::{json, Value as Json};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Yaml {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .expect("docs/openapi.yaml is readable");
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is valid YAML")
}

/// One operation of the spec.
struct Operation {
    method: String,
    path: String,
    spec: Yaml,
}

fn operations(spec: &Yaml) -> Vec<Operation> {
    let paths = spec["paths"].as_mapping().expect("the spec has paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings").to_owned();
        for (method, operation) in item.as_mapping().expect("a path item is a mapping") {
            let method = method.as_str().expect("method names are strings");
            if METHODS.contains(&method) {
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    spec: operation.clone(),
                });
            }
        }
    }
    operations
}

/// Follows a local `$ref` (`#/components/...`), if `node` is one.
fn resolve<'a>(spec: &'a Yaml, node: &'a Yaml) -> &'a Yaml {
    match node.get("$ref").and_then(Yaml::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix("#/").expect("local references only");
            let target = pointer.split('/').fold(spec, |node, key| &node[key]);
            assert!(!target.is_null(), "{reference} points nowhere");
            resolve(spec, target)
        }
        None => node,
    }
}

/// The parameters of an operation, resolved: (name, location).
fn parameters(spec: &Yaml, operation: &Yaml) -> Vec<(String, String)> {
    operation["parameters"]
        .as_sequence()
        .map(|list| {
            list.iter()
                .map(|p| {
                    let p = resolve(spec, p);
                    (
                        p["name"].as_str().unwrap().to_owned(),
                        p["in"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks `value` against the small part of JSON Schema the spec uses.
fn check_schema(spec: &Yaml, schema: &Yaml, value: &Json, at: &str) {
    let schema = resolve(spec, schema);
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "null" => value.is_null(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            other => panic!("{at}: schema type {other} is not handled by this check"),
        };
        assert!(ok, "{at}: {value} is not of type {kind}");
    }
    if let Some(constant) = schema.get("const") {
        let constant: Json = serde_yaml::from_value(constant.clone()).unwrap();
        assert_eq!(value, &constant, "{at}: not the documented constant");
    }
    if let Some(required) = schema["required"].as_sequence() {
        for key in required {
            let key = key.as_str().unwrap();
            assert!(
                value.get(key).is_some(),
                "{at}: {value} lacks the required key {key}"
            );
        }
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_mapping(), value.as_object())
    {
        for (key, property) in properties {
            let key = key.as_str().unwrap();
            if let Some(inner) = object.get(key) {
                check_schema(spec, property, inner, &format!("{at}.{key}"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check_schema(spec, items, item, &format!("{at}[{i}]"));
        }
    }
    if let (Some(extra), Some(object)) = (
        schema
            .get("additionalProperties")
            .filter(|s| s.is_mapping()),
        value.as_object(),
    ) {
        for (key, inner) in object {
            check_schema(spec, extra, inner, &format!("{at}.{key}"));
        }
    }
}

/// An HTTP answer, as read off the wire.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .expect("an error has a message")
            .to_owned()
    }
}

/// Sends one request on a fresh connection. A `text/event-stream` answer is read up to
/// the end of its head only (the stream would not end); others are read to the end.
async fn request(addr: SocketAddr, method: &str, target: &str, body: Option<&Json>) -> Reply {
    request_with(addr, method, target, body, "").await
}

/// [`request`] with more header lines (each ending in CRLF).
async fn request_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<&Json>,
    headers: &str,
) -> Reply {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}");
    let body = body.map(|b| serde_json::to_vec(b).unwrap());
    if let Some(body) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    if let Some(body) = &body {
        socket.write_all(body).await.unwrap();
    }
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            read > 0,
            "{method} {target}: connection closed before the answer's head"
        );
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(received[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: received[head_end + 4..].to_vec(),
    };
    let is_stream = reply.header("content-type") == Some("text/event-stream");
    if !is_stream && method != "HEAD" {
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut reply.body))
            .await
            .expect("the answer ends within 10 s")
            .unwrap();
        if reply.header("transfer-encoding") == Some("chunked") {
            reply.body = dechunk(&reply.body);
        }
    }
    reply
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

async fn start() -> (
    SocketAddr,
    Arc<ChannelContainer>,
    eric_socket::ShutdownHandle,
) {
    start_with(HttpServerConfig::new("127.0.0.1:0".parse().unwrap())).await
}

async fn start_with(
    config: HttpServerConfig,
) -> (
    SocketAddr,
    Arc<ChannelContainer>,
    eric_socket::ShutdownHandle,
) {
    let container = Arc::new(ChannelContainer::new());
    let server = HttpServer::bind(config, Arc::clone(&container))
        .await
        .unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    tokio::spawn(server.run());
    (addr, container, stop)
}

/// The request target of an operation, its placeholders filled from `ids`
/// (`channel_id`, `listener_id`), or left out for `skip`.
fn target(spec: &Yaml, operation: &Operation, ids: &[(&str, &str)], skip: Option<&str>) -> String {
    let mut path = operation.path.clone();
    let mut query = Vec::new();
    for (name, location) in parameters(spec, &operation.spec) {
        let Some(&(_, value)) = ids.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        match location.as_str() {
            "path" => path = path.replace(&format!("{{{name}}}"), value),
            "query" if skip != Some(name.as_str()) => query.push(format!("{name}={value}")),
            _ => {}
        }
    }
    assert!(
        !path.contains('{'),
        "{} {}: a path parameter was not filled",
        operation.method,
        operation.path
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn documented_statuses(operation: &Operation) -> BTreeSet<u16> {
    operation.spec["responses"]
        .as_mapping()
        .expect("an operation has responses")
        .keys()
        .map(|k| k.as_str().expect("status keys are quoted").parse().unwrap())
        .collect()
}

/// The response of `status` in the operation, resolved.
fn documented<'a>(spec: &'a Yaml, operation: &'a Operation, status: u16) -> &'a Yaml {
    let response = &operation.spec["responses"][status.to_string().as_str()];
    assert!(
        !response.is_null(),
        "{} {}: status {status} is not documented",
        operation.method,
        operation.path
    );
    resolve(spec, response)
}

#[test]
fn the_spec_lists_exactly_the_server_routes() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let in_spec: BTreeSet<(String, String, String)> = operations(&spec)
        .into_iter()
        .map(|op| {
            let summary = op.spec["summary"]
                .as_str()
                .unwrap_or_else(|| panic!("{} {}: no summary", op.method, op.path))
                .to_owned();
            (op.method, op.path, summary)
        })
        .collect();
    let in_server: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned(), r.summary.to_owned()))
        .collect();
    assert_eq!(
        in_spec, in_server,
        "docs/openapi.yaml and the server's routes (eric_socket::http::ROUTES) differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_the_spec_answers_as_documented() {
    let spec = spec();
    let (addr, container, stop) = start().await;
    for operation in operations(&spec) {
        let what = format!("{} {}", operation.method, operation.path);
        // A channel and a listener of its own for each operation: deletions do no harm.
        let channel = container.add();
        let listener = channel.add_listener();
        let ids = [("channel_id", channel.id()), ("listener_id", listener.id())];
        let ids: Vec<(&str, &str)> = if operation.path == "/create" {
            vec![("channel_id", "docs-check-created")]
        } else {
            ids.to_vec()
        };
        let body = (!operation.spec["requestBody"].is_null())
            .then(|| json!({"type": "docs-check", "payload": {"n": 1}}));
        let reply = request(
            addr,
            &operation.method,
            &target(&spec, &operation, &ids, None),
            body.as_ref(),
        )
        .await;

        assert!(
            (200..300).contains(&reply.status),
            "{what}: answered {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        let response = documented(&spec, &operation, reply.status);
        if operation.method == "HEAD" {
            continue;
        }
        let content = response["content"].as_mapping().expect("a documented body");
        let (media, media_spec) = content.iter().next().unwrap();
        let media = media.as_str().unwrap();
        assert_eq!(
            reply.header("content-type"),
            Some(media),
            "{what}: content type"
        );
        if media == "application/json" {
            check_schema(&spec, &media_spec["schema"], &reply.json(), &what);
        } else if media.starts_with("text/plain") || media.starts_with("text/html") {
            // A document of its own (the metrics exposition, the monitor page).
            assert_eq!(
                media_spec["schema"]["type"].as_str(),
                Some("string"),
                "{what}"
            );
            assert!(!reply.body.is_empty(), "{what}: an empty body");
        } else {
            assert_eq!(media, "text/event-stream");
            for (name, header) in response["headers"].as_mapping().into_iter().flatten() {
                let name = name.as_str().unwrap();
                let expected = header["schema"]["const"].as_str().unwrap();
                assert_eq!(reply.header(name), Some(expected), "{what}: header {name}");
            }
        }
    }
    stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_missing_parameters_answer_documented_errors() {
    let spec = spec();
    let (addr, container, stop) = start().await;
    for operation in operations(&spec) {
        let what = format!("{} {}", operation.method, operation.path);
        let statuses = documented_statuses(&operation);
        let parameters = parameters(&spec, &operation.spec);
        let channel = container.add();
        let listener = channel.add_listener();
        let body =
            (!operation.spec["requestBody"].is_null()).then(|| json!({"type": "docs-check"}));

        // An unknown channel: a 404 that names the channel, not "no route".
        if operation.path != "/create" && parameters.iter().any(|(n, _)| n == "channel_id") {
            let ids = [
                ("channel_id", "no-such-channel"),
                ("listener_id", listener.id()),
            ];
            let reply = request(
                addr,
                &operation.method,
                &target(&spec, &operation, &ids, None),
                body.as_ref(),
            )
            .await;
            assert_eq!(reply.status, 404, "{what} with an unknown channel");
            assert!(statuses.contains(&404), "{what}: 404 is not documented");
            let message = reply.message();
            assert!(
                message.contains("no channel with id \"no-such-channel\""),
                "{what}: {message}"
            );
            check_schema(
                &spec,
                &documented(&spec, &operation, 404)["content"]["application/json"]["schema"],
                &reply.json(),
                &what,
            );
        }
        // An unknown listener: a 404 that names the listener.
        if parameters.iter().any(|(n, _)| n == "listener_id") {
            let ids = [
                ("channel_id", channel.id()),
                ("listener_id", "no-such-listener"),
            ];
            let reply = request(
                addr,
                &operation.method,
                &target(&spec, &operation, &ids, None),
                body.as_ref(),
            )
            .await;
            assert_eq!(reply.status, 404, "{what} with an unknown listener");
            let message = reply.message();
            assert!(
                message.contains("no listener with id \"no-such-listener\""),
                "{what}: {message}"
            );
        }
        // A required query parameter left out: 400, documented.
        for (name, location) in &parameters {
            let required = resolve_required(&spec, &operation, name);
            if location == "query" && required {
                let ids = [("channel_id", channel.id()), ("listener_id", listener.id())];
                let reply = request(
                    addr,
                    &operation.method,
                    &target(&spec, &operation, &ids, Some(name)),
                    body.as_ref(),
                )
                .await;
                assert_eq!(reply.status, 400, "{what} without {name}");
                assert!(statuses.contains(&400), "{what}: 400 is not documented");
                assert!(
                    reply.message().contains(name.as_str()),
                    "{what}: {}",
                    reply.message()
                );
            }
        }
        // A body that is not a message: 400, documented.
        if body.is_some() {
            let ids = [("channel_id", channel.id()), ("listener_id", listener.id())];
            let reply = request(
                addr,
                &operation.method,
                &target(&spec, &operation, &ids, None),
                Some(&json!([1])),
            )
            .await;
            assert_eq!(reply.status, 400, "{what} with a bad body");
            assert!(statuses.contains(&400), "{what}: 400 is not documented");
        }
    }
    stop.shutdown();
}

fn resolve_required(spec: &Yaml, operation: &Operation, name: &str) -> bool {
    operation.spec["parameters"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| resolve(spec, p))
        .find(|p| p["name"].as_str() == Some(name))
        .is_some_and(|p| p["required"].as_bool() == Some(true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_on_each_spec_path_exactly_the_spec_methods() {
    let spec = spec();
    let (addr, container, stop) = start().await;
    let channel = container.add();
    let listener = channel.add_listener();
    let mut by_path: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for operation in operations(&spec) {
        by_path
            .entry(operation.path)
            .or_default()
            .insert(operation.method);
    }
    for (path, methods) in by_path {
        let target = path
            .replace("{channel_id}", channel.id())
            .replace("{listener_id}", listener.id());
        // OPTIONS lists what the server answers on this path.
        let reply = request(addr, "OPTIONS", &target, None).await;
        assert_eq!(reply.status, 204, "OPTIONS {path}");
        let allowed: BTreeSet<String> = reply
            .header("allow")
            .expect("an Allow header")
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "OPTIONS")
            .collect();
        assert_eq!(
            allowed, methods,
            "{path}: the server's methods differ from the spec's"
        );
        // Any other method: 405, not 404.
        for other in ["GET", "PUT", "POST", "DELETE"] {
            if !methods.contains(other) {
                let reply = request(addr, other, &target, None).await;
                assert_eq!(reply.status, 405, "{other} {path}");
                assert!(
                    reply.header("allow").is_some(),
                    "{other} {path}: no Allow header"
                );
            }
        }
    }
    // An unknown path is a 404 that says so, unlike an unknown channel.
    let reply = request(addr, "GET", "/no/such/route", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.message(), "no route for /no/such/route");
    stop.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_every_operation_answers_its_documented_401_and_403() {
    use eric_socket::http::auth::{AccessConfig, JwtKey};
    let spec = spec();
    let mut config = HttpServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.access = AccessConfig {
        key: Some(JwtKey::hs256(b"docs").unwrap()),
        ..AccessConfig::default()
    };
    let (addr, container, stop) = start_with(config).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    // A valid token that grants nothing.
    let nothing = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": exp, "eric": {}}),
        &jsonwebtoken::EncodingKey::from_secret(b"docs"),
    )
    .unwrap();
    let channel = container.add();
    let listener = channel.add_listener();
    let ids = [("channel_id", channel.id()), ("listener_id", listener.id())];
    for operation in operations(&spec) {
        let what = format!("{} {}", operation.method, operation.path);
        let body = (!operation.spec["requestBody"].is_null())
            .then(|| json!({"type": "docs-check", "payload": {"n": 1}}));
        let target = target(&spec, &operation, &ids, None);
        let statuses = documented_statuses(&operation);
        let open_to_anyone = operation.spec["security"]
            .as_sequence()
            .is_some_and(|schemes| {
                schemes
                    .iter()
                    .all(|scheme| scheme.as_mapping().is_some_and(|m| m.is_empty()))
            });
        if open_to_anyone {
            // Documented as open to anyone (the probes): it answers without a token.
            let reply = request_with(addr, &operation.method, &target, body.as_ref(), "").await;
            assert_eq!(reply.status, 200, "{what} without a token");
            assert!(
                !statuses.contains(&401),
                "{what}: open, yet documents a 401"
            );
            continue;
        }
        for (token, status) in [("", 401), (nothing.as_str(), 403)] {
            let headers = if token.is_empty() {
                String::new()
            } else {
                format!("Authorization: Bearer {token}\r\n")
            };
            let reply =
                request_with(addr, &operation.method, &target, body.as_ref(), &headers).await;
            if status == 403 && ["/", "/channels"].contains(&operation.path.as_str()) {
                // The listings answer, showing what the token may use: nothing.
                assert_eq!(reply.status, 200, "{what}");
                continue;
            }
            assert_eq!(reply.status, status, "{what} with token {token:?}");
            assert!(
                statuses.contains(&status),
                "{what}: {status} is not documented"
            );
            let response = documented(&spec, &operation, status);
            let challenge = reply.header("www-authenticate").expect("a challenge");
            let documented_header = response["headers"]["WWW-Authenticate"]["schema"]["pattern"]
                .as_str()
                .expect("the challenge is documented");
            assert!(
                challenge.contains(documented_header),
                "{what}: {challenge} against {documented_header}"
            );
            if operation.method != "HEAD" {
                check_schema(
                    &spec,
                    &response["content"]["application/json"]["schema"],
                    &reply.json(),
                    &what,
                );
            }
        }
    }
    stop.shutdown();
}
