//! The token checks, one refusal each: the cases of an attacker's list.

use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &[u8] = b"a test secret of some length";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"exp": now() + 600, "eric": {"subscribe": ["news.*"]}});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn gate(key: JwtKey, configure: impl FnOnce(&mut AccessConfig)) -> Gate {
    let mut config = AccessConfig {
        key: Some(key),
        ..AccessConfig::default()
    };
    configure(&mut config);
    Gate::new(config)
}

fn secret_gate() -> Gate {
    gate(JwtKey::hs256(SECRET).unwrap(), |_| {})
}

fn check(gate: &Gate, token: &str) -> Result<Access, Refusal> {
    verify(gate, gate.config.key.as_ref().unwrap(), token)
}

/// The refusal of `token`: a 401 whose message contains `needle`.
fn refused(gate: &Gate, token: &str, needle: &str) {
    let refusal = check(gate, token).expect_err(needle);
    assert_eq!(
        refusal.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains(needle),
        "{needle:?} not in {:?}",
        refusal.message
    );
    assert!(refusal
        .challenge
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
}

fn b64(bytes: &[u8]) -> String {
    // base64url without padding, by hand: the test needs no base64 crate for this.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn a_valid_token_grants_its_claim_until_its_exp() {
    let exp = now() + 600;
    let access = check(&secret_gate(), &hs256(&claims(json!({"exp": exp})))).unwrap();
    assert_eq!(
        access.expires(),
        Some(UNIX_EPOCH + Duration::from_secs(exp))
    );
    assert!(access.require(Right::Subscribe, "news.sport").is_ok());
    let refusal = access.require(Right::Subscribe, "newsroom").unwrap_err();
    assert_eq!(refusal.status, StatusCode::FORBIDDEN);
    assert!(
        refusal
            .message
            .contains("subscribe on channel \"newsroom\""),
        "{}",
        refusal.message
    );
    assert!(refusal
        .challenge
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(
        access
            .require(Right::Publish, "news.sport")
            .unwrap_err()
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(access.require_admin().is_err());
}

#[test]
fn an_exp_beyond_the_clock_is_no_expiry_and_no_panic() {
    let access = check(&secret_gate(), &hs256(&claims(json!({"exp": u64::MAX})))).unwrap();
    assert_eq!(access.expires(), None);
    for exp in [json!(-1), json!(1.5e300), json!("soon")] {
        assert!(check(&secret_gate(), &hs256(&claims(json!({ "exp": exp })))).is_err());
    }
}

#[test]
fn alg_none_is_refused() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(claims(json!({})).to_string().as_bytes());
    refused(&secret_gate(), &format!("{header}.{body}."), "malformed");
    refused(&secret_gate(), &format!("{header}.{body}"), "malformed");
}

#[test]
fn an_hs256_token_signed_with_the_public_key_is_refused_by_a_public_key_server() {
    let public = key_file("rsa-public.pem");
    let gate = gate(JwtKey::from_public_key_pem(&public).unwrap(), |_| {});
    assert_eq!(gate.config.key.as_ref().unwrap().algorithm(), "RS256");
    let forged = encode(
        &Header::default(),
        &claims(json!({})),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    refused(&gate, &forged, "not signed with RS256");
    // The same claims signed with the private key pass.
    let signed = encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&key_file("rsa-private.pem")).unwrap(),
    )
    .unwrap();
    assert!(check(&gate, &signed).is_ok());
}

#[test]
fn each_public_key_type_fixes_its_algorithm() {
    for (public, private, algorithm) in [
        ("ec-public.pem", "ec-private.pem", Algorithm::ES256),
        (
            "ed25519-public.pem",
            "ed25519-private.pem",
            Algorithm::EdDSA,
        ),
    ] {
        let gate = gate(
            JwtKey::from_public_key_pem(&key_file(public)).unwrap(),
            |_| {},
        );
        let private = key_file(private);
        let encoding = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&private),
            _ => EncodingKey::from_ed_pem(&private),
        }
        .unwrap();
        let token = encode(&Header::new(algorithm), &claims(json!({})), &encoding).unwrap();
        assert!(check(&gate, &token).is_ok(), "{public}");
        refused(&gate, &hs256(&claims(json!({}))), "not signed with");
    }
    let error = JwtKey::from_public_key_pem(&key_file("rsa-private.pem")).unwrap_err();
    assert!(error.to_string().contains("private key"), "{error}");
    assert!(JwtKey::from_public_key_pem(b"not a key").is_err());
    assert!(JwtKey::hs256(b"").is_err());
}

#[test]
fn a_bad_signature_is_refused() {
    let token = encode(
        &Header::default(),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another"),
    )
    .unwrap();
    refused(&secret_gate(), &token, "signature does not verify");
    // One claim changed, the signature kept.
    let good = hs256(&claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let admin = b64(claims(json!({"eric": {"admin": true}}))
        .to_string()
        .as_bytes());
    refused(
        &secret_gate(),
        &format!("{}.{admin}.{}", parts[0], parts[2]),
        "signature does not verify",
    );
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    refused(
        &secret_gate(),
        &hs256(&claims(json!({"exp": now() - 1}))),
        "expired",
    );
    refused(
        &secret_gate(),
        &hs256(&claims(json!({"nbf": now() + 600}))),
        "not valid yet",
    );
    assert!(check(&secret_gate(), &hs256(&claims(json!({"nbf": now() - 5})))).is_ok());
    let no_exp = json!({"eric": {"admin": true}});
    refused(&secret_gate(), &hs256(&no_exp), "exp");
}

/// Found by the `access` fuzz target: the validation passes over an `nbf` it cannot
/// read as a number, so a token "not valid before" a string was valid at once.
#[test]
fn an_nbf_that_is_no_number_is_refused_not_passed_over() {
    for nbf in [json!("1"), json!(1.5), json!(-1), json!([now() + 600])] {
        refused(
            &secret_gate(),
            &hs256(&claims(json!({"nbf": nbf}))),
            "malformed",
        );
    }
    assert!(check(&secret_gate(), &hs256(&claims(json!({"nbf": null})))).is_ok());
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let strict = gate(JwtKey::hs256(SECRET).unwrap(), |config| {
        config.issuer = Some("https://auth.example".into());
        config.audience = Some("eric".into());
    });
    let good = claims(json!({"iss": "https://auth.example", "aud": "eric"}));
    assert!(check(&strict, &hs256(&good)).is_ok());
    refused(
        &strict,
        &hs256(&claims(
            json!({"iss": "https://auth.example", "aud": "other"}),
        )),
        "aud is not \"eric\"",
    );
    refused(
        &strict,
        &hs256(&claims(
            json!({"iss": "https://evil.example", "aud": "eric"}),
        )),
        "iss is not",
    );
    refused(
        &strict,
        &hs256(&claims(json!({"iss": "https://auth.example"}))),
        "no aud claim",
    );
    // With no audience configured, `aud` is not read.
    assert!(check(&secret_gate(), &hs256(&claims(json!({"aud": "other"})))).is_ok());
}

#[test]
fn truncated_non_base64_and_huge_tokens_are_refused() {
    let good = hs256(&claims(json!({})));
    refused(
        &secret_gate(),
        &good[..good.len() - 5],
        "signature does not verify",
    );
    refused(
        &secret_gate(),
        &good[..good.rfind('.').unwrap()],
        "malformed",
    );
    refused(&secret_gate(), &good[..20], "malformed");
    refused(&secret_gate(), "!!!.@@@.###", "malformed");
    refused(&secret_gate(), "", "malformed");
    refused(&secret_gate(), &"a".repeat(64 * 1024), "at most 8192");
    let huge = hs256(&claims(json!({"pad": "x".repeat(64 * 1024)})));
    refused(&secret_gate(), &huge, "at most 8192");
    // Claims of the wrong shape.
    refused(
        &secret_gate(),
        &hs256(&claims(json!({"eric": {"publish": "news"}}))),
        "malformed",
    );
}

#[test]
fn tokens_come_from_the_header_the_cookie_then_the_query_if_allowed() {
    let request = |uri: &str, headers: &[(&str, &str)]| {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    };
    let token = |r: &Request<()>, query| {
        token_of(r, query)
            .map(|t| t.map(Cow::into_owned))
            .map_err(|e| e.message)
    };
    assert_eq!(
        token(&request("/", &[("authorization", "Bearer abc")]), false),
        Ok(Some("abc".into()))
    );
    assert_eq!(
        token(&request("/", &[("authorization", "bearer  abc ")]), false),
        Ok(Some("abc".into()))
    );
    assert!(
        token(&request("/", &[("authorization", "Basic abc")]), false)
            .unwrap_err()
            .contains("Bearer")
    );
    assert_eq!(
        token(
            &request(
                "/",
                &[("authorization", "Bearer h"), ("cookie", "eric_token=c")]
            ),
            false
        ),
        Ok(Some("h".into()))
    );
    assert_eq!(
        token(
            &request("/", &[("cookie", "a=1; eric_token=c; b=2")]),
            false
        ),
        Ok(Some("c".into()))
    );
    assert_eq!(
        token(
            &request("/", &[("cookie", "a=1"), ("cookie", "eric_token=\"c\"")]),
            false
        ),
        Ok(Some("c".into()))
    );
    assert_eq!(
        token(&request("/watch/x?access_token=q", &[]), true),
        Ok(Some("q".into()))
    );
    assert!(token(&request("/watch/x?access_token=q", &[]), false)
        .unwrap_err()
        .contains("query parameter is not accepted"));
    assert_eq!(token(&request("/watch/x", &[]), false), Ok(None));
}

#[test]
fn without_a_key_everything_is_open_and_anonymous_may_only_subscribe() {
    let open = Gate::new(AccessConfig::default());
    let access = authenticate(&open, &Request::get("/").body(()).unwrap()).unwrap();
    assert!(access.require(Right::Publish, "x").is_ok() && access.require_admin().is_ok());
    let anonymous = gate(JwtKey::hs256(SECRET).unwrap(), |c| {
        c.anonymous_subscribe = true
    });
    let access = authenticate(&anonymous, &Request::get("/").body(()).unwrap()).unwrap();
    assert!(access.require(Right::Subscribe, "x").is_ok());
    let refusal = access.require(Right::Publish, "x").unwrap_err();
    assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);
    // A token that is sent is checked, anonymous or not.
    let bad = Request::get("/")
        .header("authorization", "Bearer x.y.z")
        .body(())
        .unwrap();
    assert!(authenticate(&anonymous, &bad).is_err());
    let none = authenticate(&secret_gate(), &Request::get("/").body(()).unwrap()).unwrap_err();
    assert!(none.message.contains("needs a token"), "{}", none.message);
}
