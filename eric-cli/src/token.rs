//! `eric token`: mints a JWT that a server started with `--jwt-secret` or
//! `--jwt-public-key` accepts.

use crate::cli::TokenArgs;
use crate::error::CliError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The token `args` describe, signed.
pub fn mint(args: &TokenArgs) -> Result<String, CliError> {
    let (key, algorithm) = signing_key(args)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut claims = Map::new();
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + args.ttl.0.as_secs().max(1)));
    for (name, value) in [
        ("iss", &args.issuer),
        ("aud", &args.audience),
        ("sub", &args.subject),
    ] {
        if let Some(value) = value {
            claims.insert(name.into(), json!(value));
        }
    }
    let mut eric = Map::new();
    if !args.publish.is_empty() {
        eric.insert("publish".into(), json!(args.publish));
    }
    if !args.subscribe.is_empty() {
        eric.insert("subscribe".into(), json!(args.subscribe));
    }
    if args.admin {
        eric.insert("admin".into(), json!(true));
    }
    claims.insert("eric".into(), Value::Object(eric));
    jsonwebtoken::encode(&Header::new(algorithm), &Value::Object(claims), &key)
        .map_err(|error| CliError::invalid_input(format!("cannot sign the token: {error}")))
}

fn signing_key(args: &TokenArgs) -> Result<(EncodingKey, Algorithm), CliError> {
    if let Some(secret) = &args.secret {
        if secret.is_empty() {
            return Err(CliError::invalid_input("--secret is empty"));
        }
        return Ok((
            EncodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        ));
    }
    let Some(path) = &args.private_key else {
        return Err(CliError::invalid_input(
            "give --secret (HS256) or --private-key (RS256, ES256, EdDSA) to sign with",
        ));
    };
    let pem = std::fs::read(path).map_err(|error| {
        CliError::io(
            format_args!("cannot read the key {}", path.display()),
            error,
        )
    })?;
    [
        (EncodingKey::from_rsa_pem(&pem), Algorithm::RS256),
        (EncodingKey::from_ec_pem(&pem), Algorithm::ES256),
        (EncodingKey::from_ed_pem(&pem), Algorithm::EdDSA),
    ]
    .into_iter()
    .find_map(|(key, algorithm)| key.ok().map(|key| (key, algorithm)))
    .ok_or_else(|| {
        CliError::invalid_input(format!(
            "--private-key {}: not an RSA, EC (P-256) or Ed25519 private key in PEM (PKCS#8)",
            path.display()
        ))
    })
}
