//! Who may do what: JWT bearer tokens checked once per request (an event stream's token
//! once, when it opens; never per event).
//!
//! With no key configured ([`AccessConfig::key`] `None`) every request is served, as
//! before tokens existed. With a key, every route but `OPTIONS` needs a token whose
//! signature verifies with that key, in the one algorithm the key fixes (HS256 for a
//! secret; RS256, ES256 or EdDSA for a PEM public key: the token's header never chooses
//! it, so `alg: none` and a token signed with HS256 using the public key as the secret
//! are refused), with an `exp` in the future, an `nbf` (when present) in the past, and
//! `iss` / `aud` equal to [`AccessConfig::issuer`] / [`AccessConfig::audience`] when
//! those are set. Its `"eric"` claim says what it grants (see [`Grants`]).
//!
//! A token is read from `Authorization: Bearer <token>` (which wins), else the
//! `eric_token` cookie (what a browser's `EventSource` sends), else, only with
//! [`AccessConfig::query_token`], the `access_token` query parameter: URLs end up in
//! access logs, proxy logs and browser history, so a token there leaks.
//!
//! Refusals: `401` with `WWW-Authenticate: Bearer error="invalid_token"` for a token
//! missing, malformed, too long, badly signed, expired, not yet valid, or for another
//! issuer or audience; `403` with `error="insufficient_scope"` for a valid token that
//! does not grant what the route needs. The JSON body names what was wrong.

mod grants;

pub use grants::{pattern_matches, Grants, Right};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest token read, in bytes: a token with a few dozen patterns is a few hundred
/// bytes; anything near this is not a token a server of ours issued.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The cookie a token is read from.
pub const TOKEN_COOKIE: &str = "eric_token";

/// The query parameter a token is read from, with [`AccessConfig::query_token`].
pub const TOKEN_QUERY_PARAMETER: &str = "access_token";

/// The event a stream sends when the token that opened it expires, just before it ends;
/// its data is `{"exp": <the token's exp>}`. It carries no id, so a client resumes from
/// the last event it had.
pub const EVENT_TOKEN_EXPIRED: &str = "_eric_token_expired";

/// A key that verifies tokens, and the one algorithm it accepts.
#[derive(Clone)]
pub struct JwtKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: a secret must not reach a log.
        f.debug_struct("JwtKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A key that cannot verify tokens, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl JwtKey {
    /// A shared secret: tokens signed with HS256 (and only HS256).
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError("the JWT secret is empty".to_owned()));
        }
        Ok(JwtKey {
            key: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
        })
    }

    /// A PEM public key: RSA (tokens signed with RS256), EC P-256 (ES256) or Ed25519
    /// (EdDSA), the algorithm chosen by the key's type.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("PRIVATE KEY") {
            return Err(KeyError(
                "this is a private key: give the server the public key (it only verifies tokens)"
                    .to_owned(),
            ));
        }
        if !text.contains("-----BEGIN") {
            return Err(KeyError("not a PEM file (no -----BEGIN line)".to_owned()));
        }
        let attempts = [
            (DecodingKey::from_rsa_pem(pem), Algorithm::RS256),
            (DecodingKey::from_ec_pem(pem), Algorithm::ES256),
            (DecodingKey::from_ed_pem(pem), Algorithm::EdDSA),
        ];
        attempts
            .into_iter()
            .find_map(|(key, algorithm)| key.ok().map(|key| JwtKey { key, algorithm }))
            .ok_or_else(|| {
                KeyError("not an RSA, EC (P-256) or Ed25519 public key in PEM".to_owned())
            })
    }

    /// The algorithm tokens must be signed with: `HS256`, `RS256`, `ES256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            _ => "EdDSA",
        }
    }
}

/// Who may use the HTTP server: see the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct AccessConfig {
    /// The key tokens are verified with; `None` (the default): no token needed, every
    /// request is served.
    pub key: Option<JwtKey>,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry (or list), when set. Unset, `aud` is not read.
    pub audience: Option<String>,
    /// Subscribing (`POST /subscribe`, `/stream`, `/watch`, the listings) needs no token;
    /// publishing still does. A token that is sent is checked all the same.
    pub anonymous_subscribe: bool,
    /// Read a token from the `access_token` query parameter too (off by default: URLs
    /// are logged).
    pub query_token: bool,
}

impl AccessConfig {
    /// Whether requests need a token at all.
    pub fn is_enabled(&self) -> bool {
        self.key.is_some()
    }
}

/// The [`AccessConfig`] of a running server, with its validation rules built once.
#[derive(Debug)]
pub(crate) struct Gate {
    config: AccessConfig,
    validation: Validation,
}

impl Gate {
    pub(crate) fn new(config: AccessConfig) -> Self {
        let algorithm = config
            .key
            .as_ref()
            .map_or(Algorithm::HS256, |key| key.algorithm);
        let mut validation = Validation::new(algorithm);
        // Expiry is exact: a stream ends at `exp`, and a request after it is refused.
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Gate { config, validation }
    }
}

/// What a request may do, once its token (or the lack of one) was checked.
#[derive(Clone, Debug)]
pub(crate) enum Access {
    /// No key configured: everything.
    Open,
    /// No token, with anonymous subscribing allowed.
    Anonymous,
    /// A valid token.
    Token {
        grants: Grants,
        /// Its `exp` (`None` past what `SystemTime` holds).
        expires: Option<SystemTime>,
    },
}

/// A request refused for its token: `401` or `403`, what was wrong, and the
/// `WWW-Authenticate` challenge.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) challenge: HeaderValue,
}

impl Refusal {
    fn invalid_token(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            challenge: HeaderValue::from_static(r#"Bearer realm="eric", error="invalid_token""#),
        }
    }

    fn insufficient_scope(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            challenge: HeaderValue::from_static(
                r#"Bearer realm="eric", error="insufficient_scope""#,
            ),
        }
    }
}

/// The claims eric reads; the registered ones (`exp`, `nbf`, `iss`, `aud`) are checked
/// by the validation.
#[derive(Deserialize)]
struct Claims {
    exp: u64,
    /// Read only so that an `nbf` that is not a number of seconds refuses the token:
    /// the validation checks an `nbf` it can read and passes over one it cannot.
    #[serde(default, rename = "nbf")]
    _not_before: Option<u64>,
    #[serde(default)]
    eric: Grants,
}

/// Checks the token of `request`: what it may do, or why it is refused.
pub(crate) fn authenticate<B>(gate: &Gate, request: &Request<B>) -> Result<Access, Refusal> {
    let Some(key) = &gate.config.key else {
        return Ok(Access::Open);
    };
    let token = match token_of(request, gate.config.query_token)? {
        Some(token) => token,
        None if gate.config.anonymous_subscribe => return Ok(Access::Anonymous),
        None => {
            return Err(Refusal::invalid_token(format!(
                "this server needs a token: send `Authorization: Bearer <token>` or the \
                 {TOKEN_COOKIE} cookie"
            )))
        }
    };
    verify(gate, key, &token)
}

fn verify(gate: &Gate, key: &JwtKey, token: &str) -> Result<Access, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::invalid_token(format!(
            "the token is {} bytes long; the server reads at most {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &gate.validation)
        .map_err(|error| Refusal::invalid_token(describe(error.kind(), gate, key)))?
        .claims;
    Ok(Access::Token {
        grants: claims.eric,
        // An `exp` past what the clock can hold never comes: no expiry.
        expires: UNIX_EPOCH.checked_add(Duration::from_secs(claims.exp)),
    })
}

/// What was wrong with a token, in words.
fn describe(kind: &ErrorKind, gate: &Gate, key: &JwtKey) -> String {
    let algorithm = key.algorithm();
    match kind {
        ErrorKind::InvalidToken => {
            "the token is malformed: it is not three base64url parts joined by dots".to_owned()
        }
        ErrorKind::Base64(error) => {
            format!("the token is malformed: a part is not base64url ({error})")
        }
        ErrorKind::Json(error) => format!(
            "the token is malformed: its header or claims are not what eric reads ({error}); \
             the header must name {algorithm}, the claims need a numeric exp"
        ),
        ErrorKind::Utf8(_) => "the token is malformed: a part is not UTF-8".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => format!(
            "the token is not signed with {algorithm}, the only algorithm this server accepts"
        ),
        ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => {
            "the token's signature does not verify with the server's key".to_owned()
        }
        ErrorKind::ExpiredSignature => "the token has expired (its exp is past)".to_owned(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (its nbf is in the future)".to_owned()
        }
        ErrorKind::InvalidIssuer => format!(
            "the token's iss is not {:?}",
            gate.config.issuer.as_deref().unwrap_or_default()
        ),
        ErrorKind::InvalidAudience => format!(
            "the token's aud is not {:?}",
            gate.config.audience.as_deref().unwrap_or_default()
        ),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        other => format!("the token was refused ({other:?})"),
    }
}

/// The token of a request: the `Authorization` header (`Bearer`), else the cookie,
/// else (when allowed) the query parameter. A header that is there but not a bearer
/// token is refused rather than passed over.
fn token_of<B>(request: &Request<B>, query_token: bool) -> Result<Option<Cow<'_, str>>, Refusal> {
    let headers = request.headers();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default().trim();
        let token = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return match token {
            Some(token) => Ok(Some(Cow::Borrowed(token))),
            None => Err(Refusal::invalid_token(
                "the Authorization header is not `Bearer <token>`",
            )),
        };
    }
    if let Some(token) = cookie(headers, TOKEN_COOKIE) {
        return Ok(Some(Cow::Borrowed(token)));
    }
    let in_query = request.uri().query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == TOKEN_QUERY_PARAMETER).then_some(value)
        })
    });
    match in_query {
        Some(token) if query_token => Ok(percent_encoding::percent_decode_str(token)
            .decode_utf8()
            .ok()
            .filter(|token| !token.is_empty())),
        Some(_) => Err(Refusal::invalid_token(format!(
            "a token in the {TOKEN_QUERY_PARAMETER} query parameter is not accepted by this \
             server (URLs are logged): send it as `Authorization: Bearer` or the \
             {TOKEN_COOKIE} cookie"
        ))),
        None => Ok(None),
    }
}

/// The value of the cookie `name`, from every `Cookie` header (HTTP/2 may split them).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .filter(|value| !value.is_empty())
}

impl Access {
    /// Whether `right` is granted on `channel`; a refusal naming what is missing if not.
    pub(crate) fn require(&self, right: Right, channel: &str) -> Result<(), Refusal> {
        let granted = match self {
            Access::Open => true,
            Access::Anonymous => right == Right::Subscribe,
            Access::Token { grants, .. } => grants.allows(right, channel),
        };
        if granted {
            return Ok(());
        }
        Err(self.refusal(format!("{} on channel {channel:?}", right.name())))
    }

    /// Whether `right` is granted on every channel (what creating a channel under a
    /// generated id needs).
    pub(crate) fn require_every(&self, right: Right) -> Result<(), Refusal> {
        let granted = match self {
            Access::Open => true,
            Access::Anonymous => right == Right::Subscribe,
            Access::Token { grants, .. } => grants.allows_every(right),
        };
        if granted {
            return Ok(());
        }
        Err(self.refusal(format!(
            "{} on every channel (a pattern \"*\"), which a generated channel id needs",
            right.name()
        )))
    }

    /// Whether the admin right is granted.
    pub(crate) fn require_admin(&self) -> Result<(), Refusal> {
        match self {
            Access::Open => Ok(()),
            Access::Token { grants, .. } if grants.admin => Ok(()),
            _ => Err(self.refusal("admin (\"admin\": true)".to_owned())),
        }
    }

    /// Whether a listing shows `channel`.
    pub(crate) fn may_see(&self, channel: &str) -> bool {
        match self {
            Access::Open | Access::Anonymous => true,
            Access::Token { grants, .. } => grants.may_see(channel),
        }
    }

    /// When the token expires, for a token.
    pub(crate) fn expires(&self) -> Option<SystemTime> {
        match self {
            Access::Token { expires, .. } => *expires,
            _ => None,
        }
    }

    fn refusal(&self, needed: String) -> Refusal {
        match self {
            Access::Token { grants, .. } => Refusal::insufficient_scope(format!(
                "the token does not grant {needed} (it grants publish {:?}, subscribe {:?}, \
                 admin {})",
                grants.publish, grants.subscribe, grants.admin
            )),
            _ => Refusal::invalid_token(format!(
                "this needs a token granting {needed}: send `Authorization: Bearer <token>` or \
                 the {TOKEN_COOKIE} cookie"
            )),
        }
    }
}

/// For admin-only routes (`/metrics`, the monitor page): the request's token must grant
/// `"admin": true` when the server checks tokens; with no key configured, everyone may.
pub(crate) fn require_admin<B>(gate: &Gate, request: &Request<B>) -> Result<(), Refusal> {
    authenticate(gate, request)?.require_admin()
}

#[cfg(test)]
mod tests;
