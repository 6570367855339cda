//! The checks the fuzz targets run (`fuzz/` at the repository root), kept here so that
//! the stable tests replay the committed corpus (`tests/fuzz_corpus.rs`) through the very
//! same code. Each takes the raw fuzz input and panics when what it checks fails.
//!
//! Not part of the API: hidden from the docs, and free to change in any release.

use crate::protocol::{self, ProtocolError};
use crate::pyjson::{
    python_repr, python_unrepr, write_python_float, write_python_json, write_python_value,
};
use serde_json::Value;

/// The socket command parser: the one-pass parse and the full parse agree wherever the
/// one-pass parse answers; [`protocol::parse`] answers what the full parse answers; a
/// command that parsed reads back from the bytes a client writes for it, in one pass; an
/// error reads back from its wire form.
pub fn check_command(data: &[u8]) {
    let full = protocol::parse_any(data);
    if let Some(fast) = protocol::parse_well_formed(data) {
        assert_eq!(Ok(&fast), full.as_ref(), "the two parses disagree");
    }
    let parsed = protocol::parse(data);
    assert_eq!(parsed, full, "parse answers other than the full parse");
    match parsed {
        Ok(command) => {
            let bytes = command.to_bytes();
            assert_eq!(
                protocol::parse_well_formed(&bytes).as_ref(),
                Some(&command),
                "the written command {:?} does not read back in one pass",
                String::from_utf8_lossy(&bytes)
            );
        }
        Err(error) => check_error_wire(&error),
    }
}

fn check_error_wire(error: &ProtocolError) {
    let wire = String::from_utf8(error.to_wire()).expect("an error is written as UTF-8");
    assert_eq!(
        ProtocolError::from_wire(&wire).as_ref(),
        Some(error),
        "the error {wire:?} does not read back"
    );
    assert_eq!(protocol::parse_answer(&wire), Err(error.clone()));
}

/// The Python-style JSON writer: any text as a string, any JSON document the input is,
/// and any finite float the first eight bytes are, written as `json.dumps` writes them:
/// printable ASCII only, the direct writer byte for byte what the serializer writes, and
/// read back by serde_json as the same value. Python's `repr` of the text reads back
/// through `python_unrepr`, and an error carrying it through its wire form.
pub fn check_python_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_value(&Value::String(text.clone().into_owned()));
    let repr = python_repr(&text);
    assert_eq!(python_unrepr(&repr[1..repr.len() - 1]), text, "{repr}");
    check_error_wire(&ProtocolError::new("InvalidMessageFormat", text.clone()));
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check_value(&value);
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        let float = f64::from_le_bytes(*bytes);
        if float.is_finite() {
            check_value(&Value::from(float));
        }
    }
}

fn check_value(value: &Value) {
    let mut direct = Vec::new();
    write_python_value(&mut direct, value);
    let mut serialized = Vec::new();
    write_python_json(&mut serialized, value).expect("a JSON value serializes");
    assert_eq!(
        String::from_utf8_lossy(&direct),
        String::from_utf8_lossy(&serialized),
        "the two writers disagree"
    );
    assert!(
        direct.iter().all(|byte| (0x20..0x7f).contains(byte)),
        "json.dumps writes printable ASCII only: {:?}",
        String::from_utf8_lossy(&direct)
    );
    let back: Value = serde_json::from_slice(&direct).unwrap_or_else(|error| {
        panic!(
            "{:?} does not parse back: {error}",
            String::from_utf8_lossy(&direct)
        )
    });
    assert_eq!(&back, value, "{:?}", String::from_utf8_lossy(&direct));
    check_floats(value);
}

/// Every float is written as Python's `repr` writes one: a form that reads back as a
/// float (with a `.` or an exponent), to the very same bits.
fn check_floats(value: &Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().expect("an f64 number");
            let mut text = Vec::new();
            write_python_float(&mut text, float);
            let text = String::from_utf8(text).expect("ASCII");
            assert!(text.contains(['.', 'e']), "{text} reads back as an int");
            assert_eq!(
                text.parse::<f64>().map(f64::to_bits),
                Ok(float.to_bits()),
                "{text} is not {float:?}"
            );
        }
        Value::Array(items) => items.iter().for_each(check_floats),
        Value::Object(map) => map.values().for_each(check_floats),
        _ => {}
    }
}

/// The head reader of the direct stream path, against httparse on its own (with room for
/// more headers) and the rule of which requests the direct path serves, written here
/// again from the parsed head: it serves exactly the complete heads of `GET` HTTP/1.1
/// requests of a `/stream/` or `/watch/` path, with at most its number of headers, all
/// of them valid for the `http` crate, no `Transfer-Encoding`, `Expect` or `Upgrade`,
/// and no `Content-Length` but `0`; it refuses whatever httparse refuses, and waits for
/// more where httparse does (unless the head has more headers than it takes already). A decision taken on a prefix of the input (as bytes arrive)
/// is the decision on the whole.
#[cfg(feature = "http")]
pub fn check_http_head(data: &[u8]) {
    use crate::http::direct::{parse_head, Parsed, MAX_HEADERS};

    let decision = parse_head(data);
    let mut headers = [httparse::EMPTY_HEADER; 4 * MAX_HEADERS];
    let mut reference = httparse::Request::new(&mut headers);
    match reference.parse(data) {
        Err(_) => assert!(matches!(decision, Parsed::Other), "{decision:?}"),
        Ok(httparse::Status::Partial) => {
            // More headers than the direct path takes go to hyper before the head ends.
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let too_many = matches!(
                httparse::Request::new(&mut headers).parse(data),
                Err(httparse::Error::TooManyHeaders)
            );
            match decision {
                Parsed::Partial => {}
                Parsed::Other if too_many => {}
                decision => panic!("the head reader decided {decision:?} on a partial head"),
            }
        }
        Ok(httparse::Status::Complete(len)) => match (&decision, served(&reference)) {
            (Parsed::Stream { request, head_len }, Some(uri)) => {
                assert_eq!(*head_len, len);
                assert_eq!(request.method(), http::Method::GET);
                assert_eq!(request.version(), http::Version::HTTP_11);
                assert_eq!(request.uri(), &uri);
                let mut read: Vec<(String, Vec<u8>)> = request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                    .collect();
                let mut sent: Vec<(String, Vec<u8>)> = reference
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect();
                read.sort();
                sent.sort();
                assert_eq!(read, sent, "the headers read are not the headers sent");
            }
            (Parsed::Other, None) => {}
            (decision, served) => {
                panic!("the head reader decided {decision:?}, the reference serves {served:?}")
            }
        },
    }
    // Where read_head would decide on fewer bytes: after each line, and at two cuts.
    let cuts = data
        .iter()
        .enumerate()
        .filter(|(_, &byte)| byte == b'\n')
        .map(|(at, _)| at + 1)
        .chain([data.len() / 3, data.len() * 2 / 3]);
    for cut in cuts {
        match (parse_head(&data[..cut]), &decision) {
            (Parsed::Partial, _) | (Parsed::Other, Parsed::Other) => {}
            (
                Parsed::Stream { head_len, .. },
                Parsed::Stream {
                    head_len: whole, ..
                },
            ) if head_len == *whole => {}
            (early, whole) => {
                panic!("{cut} bytes decide {early:?}, the whole input decides {whole:?}")
            }
        }
    }
}

/// The URI of the request when the direct path should serve `head`, as the rule reads.
#[cfg(feature = "http")]
fn served(head: &httparse::Request<'_, '_>) -> Option<http::Uri> {
    use crate::http::direct::MAX_HEADERS;

    if head.headers.len() > MAX_HEADERS || head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    let uri: http::Uri = head.path?.parse().ok()?;
    if !(uri.path().starts_with("/stream/") || uri.path().starts_with("/watch/")) {
        return None;
    }
    for field in head.headers.iter() {
        http::HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        http::HeaderValue::from_bytes(field.value).ok()?;
        let name = field.name.to_ascii_lowercase();
        let refused = match name.as_str() {
            "transfer-encoding" | "expect" | "upgrade" => true,
            "content-length" => field.value != b"0",
            _ => false,
        };
        if refused {
            return None;
        }
    }
    Some(uri)
}

/// The access checks of the HTTP server, on any bytes, three ways:
///
/// * the channel glob: the bytes before the first `\n` as a pattern, those after it as a
///   channel id (each at most 64 bytes, read as UTF-8 with replacement), matched by
///   [`pattern_matches`](crate::http::auth::pattern_matches) as a plain dynamic
///   programme over every split matches them;
/// * the token reader: the bytes as an `Authorization` header, as a `Cookie` header and
///   as a query, each on a server that needs a token and on one that lets anonymous
///   subscribers in and reads query tokens: nothing panics, every refusal is a `401`
///   with the `invalid_token` challenge, a request with no token is let in only
///   anonymously, and a token is only ever accepted from where it may come;
/// * signed claims: when the bytes are a JSON object, they are signed as a token's
///   claims with the server's secret and sent in the header and in the cookie: both
///   give the same answer, which is a token granting exactly the `"eric"` claim until
///   `exp` when `exp`, `nbf` and `"eric"` are valid, and a `401` when they are not.
#[cfg(feature = "http")]
pub fn check_access(data: &[u8]) {
    use crate::http::auth::pattern_matches;

    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let pattern = String::from_utf8_lossy(&data[..split.min(64)]);
    let channel = String::from_utf8_lossy(&data[(split + 1).min(data.len())..]);
    let channel: String = channel.chars().take(64).collect();
    assert_eq!(
        pattern_matches(&pattern, &channel),
        glob_reference(pattern.as_bytes(), channel.as_bytes()),
        "{pattern:?} against {channel:?}"
    );
    access::check_token_reader(data);
    if let Ok(claims) = serde_json::from_slice::<serde_json::Map<String, Value>>(data) {
        access::check_signed_claims(claims);
    }
}

/// Whether the glob `pattern` matches the whole of `text`: a table of which prefixes of
/// the pattern match which prefixes of the text, `*` taking any run.
#[cfg(feature = "http")]
fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
    // matches[j]: the pattern so far matches text[..j].
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = if p == b'*' {
                matches[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && matches[j - 1] && text[j - 1] == p
            };
        }
        matches = next;
    }
    matches[text.len()]
}

#[cfg(feature = "http")]
mod access {
    use crate::http::auth::{authenticate, AccessConfig, Grants, JwtKey, Refusal};
    use crate::http::auth::{Access, Gate};
    use http::{header, HeaderValue, Request, StatusCode};
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{Map, Value};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const SECRET: &[u8] = b"the fuzzing secret";

    /// A server that needs a token and reads none from the query, and one that lets
    /// anonymous subscribers in and reads query tokens: made once, not per input.
    fn gates() -> &'static [Gate; 2] {
        static GATES: std::sync::OnceLock<[Gate; 2]> = std::sync::OnceLock::new();
        GATES.get_or_init(make_gates)
    }

    fn make_gates() -> [Gate; 2] {
        let key = JwtKey::hs256(SECRET).expect("a secret that is not empty");
        let strict = AccessConfig {
            key: Some(key.clone()),
            ..AccessConfig::default()
        };
        let lenient = AccessConfig {
            key: Some(key),
            anonymous_subscribe: true,
            query_token: true,
            ..AccessConfig::default()
        };
        [Gate::new(strict), Gate::new(lenient)]
    }

    fn request(uri: &str, header: Option<(header::HeaderName, HeaderValue)>) -> Request<()> {
        let mut request = Request::builder().uri(uri);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.body(()).expect("a valid request")
    }

    fn assert_invalid_token(refusal: &Refusal) {
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED, "{refusal:?}");
        assert!(
            refusal
                .challenge
                .as_bytes()
                .ends_with(br#"error="invalid_token""#),
            "{refusal:?}"
        );
        assert!(!refusal.message.is_empty());
    }

    pub(super) fn check_token_reader(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        for (lenient, gate) in gates().iter().enumerate() {
            let lenient = lenient == 1;
            if let Ok(value) = HeaderValue::from_bytes(data) {
                let answer = authenticate(
                    gate,
                    &request("/watch/c", Some((header::AUTHORIZATION, value.clone()))),
                );
                match answer {
                    Err(refusal) => assert_invalid_token(&refusal),
                    Ok(Access::Token { .. }) => {
                        let scheme = text.trim().get(..7).unwrap_or_default();
                        assert!(scheme.eq_ignore_ascii_case("bearer "), "accepted {text:?}");
                    }
                    Ok(other) => panic!("an Authorization header {text:?} gave {other:?}"),
                }
                let answer =
                    authenticate(gate, &request("/watch/c", Some((header::COOKIE, value))));
                match answer {
                    Err(refusal) => assert_invalid_token(&refusal),
                    Ok(Access::Token { .. }) => assert!(text.contains("eric_token")),
                    Ok(Access::Anonymous) => assert!(lenient),
                    Ok(Access::Open) => panic!("a server with a key answered Open"),
                }
            }
            let uri = format!(
                "/watch/c?{}",
                percent_encoding::utf8_percent_encode(&text, QUERY)
            );
            let answer = authenticate(gate, &request(&uri, None));
            match answer {
                Err(refusal) => assert_invalid_token(&refusal),
                Ok(Access::Token { .. }) => assert!(lenient && text.contains("access_token")),
                Ok(Access::Anonymous) => assert!(lenient),
                Ok(Access::Open) => panic!("a server with a key answered Open"),
            }
        }
    }

    /// What is percent-encoded in a query made of any text: all but letters, digits and
    /// what the token reader splits and names on (`&`, `=`, the `_` of `access_token`).
    const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'&')
        .remove(b'=')
        .remove(b'_');

    /// Seconds around now within which `exp` and `nbf` are not judged: the clock moves
    /// while a check runs.
    const MARGIN: u64 = 5;

    pub(super) fn check_signed_claims(claims: Map<String, Value>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs();
        let token = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("a JSON object signs");
        let gate = &gates()[0];
        let bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).expect("base64url is a valid header");
        let cookie = HeaderValue::from_str(&format!("other=1; eric_token={token}"))
            .expect("base64url is a valid header");
        let by_header = authenticate(
            gate,
            &request("/watch/c", Some((header::AUTHORIZATION, bearer))),
        );
        let by_cookie = authenticate(gate, &request("/watch/c", Some((header::COOKIE, cookie))));
        let summary = |answer: &Result<Access, Refusal>| match answer {
            Ok(access) => Ok(format!("{access:?}")),
            Err(refusal) => Err((refusal.status, refusal.message.clone())),
        };
        assert_eq!(
            summary(&by_header),
            summary(&by_cookie),
            "header and cookie differ"
        );

        let exp = claims.get("exp").and_then(Value::as_u64);
        let grants = match claims.get("eric") {
            None => Some(Grants::default()),
            Some(eric) => serde_json::from_value::<Grants>(eric.clone()).ok(),
        };
        match &by_header {
            Ok(Access::Token {
                grants: granted,
                expires,
            }) => {
                let exp = exp.expect("a token accepted without a whole-number exp");
                assert!(
                    exp.saturating_add(MARGIN) > now,
                    "a token accepted after its exp {exp}"
                );
                assert_eq!(
                    Some(granted),
                    grants.as_ref(),
                    "the grants are not the claim's"
                );
                assert_eq!(*expires, UNIX_EPOCH.checked_add(Duration::from_secs(exp)));
                if let Some(nbf) = claims.get("nbf").filter(|nbf| !nbf.is_null()) {
                    let nbf = nbf
                        .as_u64()
                        .expect("a token accepted with an nbf that is no whole number");
                    assert!(nbf <= now + MARGIN, "a token accepted before its nbf {nbf}");
                }
            }
            Ok(other) => panic!("a signed token gave {other:?}"),
            Err(refusal) => {
                assert_invalid_token(refusal);
                // Refused although it is valid? Only the claims the server reads decide,
                // for a token with no other registered claim in it.
                let registered = ["iss", "aud", "sub", "iat", "jti"];
                let plain = !claims.keys().any(|key| registered.contains(&key.as_str()));
                let valid_exp = exp.is_some_and(|exp| exp > now + MARGIN);
                let valid_nbf = match claims.get("nbf") {
                    None | Some(Value::Null) => true,
                    Some(nbf) => nbf
                        .as_u64()
                        .is_some_and(|nbf| nbf.saturating_add(MARGIN) < now),
                };
                assert!(
                    !(plain && valid_exp && valid_nbf && grants.is_some()),
                    "a valid token was refused: {}",
                    refusal.message
                );
            }
        }
    }
}
