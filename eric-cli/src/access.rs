//! `eric serve`'s access flags: the JWT key and its checks.

use crate::cli::ServeArgs;
use crate::error::CliError;
use eric_socket::http::auth::{AccessConfig, JwtKey};
use eric_socket::http::{TlsConfig, TlsReloader};
use eric_socket::HttpServerConfig;
use std::future::Future;

/// The [`AccessConfig`] the flags ask for; a key that cannot be read or used is invalid
/// input.
pub fn access_config(args: &ServeArgs) -> Result<AccessConfig, CliError> {
    let key = match (&args.jwt_secret, &args.jwt_public_key) {
        (Some(secret), _) => Some(
            JwtKey::hs256(secret.as_bytes())
                .map_err(|error| CliError::invalid_input(format!("--jwt-secret: {error}")))?,
        ),
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|error| {
                CliError::io(
                    format_args!("cannot read the JWT public key {}", path.display()),
                    error,
                )
            })?;
            Some(JwtKey::from_public_key_pem(&pem).map_err(|error| {
                CliError::invalid_input(format!("--jwt-public-key {}: {error}", path.display()))
            })?)
        }
        (None, None) => None,
    };
    if key.is_none() {
        let needs_key = [
            (args.jwt_issuer.is_some(), "--jwt-issuer"),
            (args.jwt_audience.is_some(), "--jwt-audience"),
            (args.anonymous_subscribe, "--anonymous-subscribe"),
            (args.jwt_query_token, "--jwt-query-token"),
        ];
        if let Some((_, flag)) = needs_key.iter().find(|(given, _)| *given) {
            return Err(CliError::invalid_input(format!(
                "{flag} needs a key to check tokens with: add --jwt-secret or --jwt-public-key"
            )));
        }
    }
    Ok(AccessConfig {
        key,
        issuer: args.jwt_issuer.clone(),
        audience: args.jwt_audience.clone(),
        anonymous_subscribe: args.anonymous_subscribe,
        query_token: args.jwt_query_token,
    })
}

/// The certificate and key of `--tls-cert` and `--tls-key` (clap requires both or none).
pub fn tls_config(args: &ServeArgs) -> Option<TlsConfig> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::new(cert, key)),
        _ => None,
    }
}

/// Installs the SIGHUP handler now; the future re-reads the certificate at each SIGHUP
/// (a renewal), keeping the one in use when the new files are unusable.
pub fn reload_on_hangup(
    reloader: TlsReloader,
) -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|error| CliError::io("cannot install the SIGHUP handler", error))?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "SIGHUP: TLS certificate not reloaded; the one in use stays")
                }
            }
        }
    })
}

/// Warns when the HTTP server listens beyond this machine with no key: anyone who can
/// reach it may publish, subscribe and delete.
pub fn warn_if_open(config: &HttpServerConfig) {
    if let Some(warning) = open_warning(config) {
        tracing::warn!("{warning}");
    }
}

fn open_warning(config: &HttpServerConfig) -> Option<String> {
    (!config.access.is_enabled() && !config.addr.ip().is_loopback()).then(|| {
        format!(
            "the HTTP server listens on {} and checks no token: anyone who reaches it may \
             publish, subscribe and delete channels; set --jwt-secret or --jwt-public-key",
            config.addr
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["eric", "serve"].iter().chain(flags)).unwrap();
        match cli.command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn listening_beyond_loopback_without_a_key_is_warned_of() {
        let mut config = HttpServerConfig::new("0.0.0.0:8080".parse().unwrap());
        let warning = open_warning(&config).unwrap();
        assert!(
            warning.contains("0.0.0.0:8080") && warning.contains("--jwt-secret"),
            "{warning}"
        );
        config.access = access_config(&serve_args(&["--jwt-secret", "s"])).unwrap();
        assert_eq!(open_warning(&config), None);
        assert_eq!(
            open_warning(&HttpServerConfig::new("127.0.0.1:8080".parse().unwrap())),
            None
        );
        assert_eq!(
            open_warning(&HttpServerConfig::new("[::1]:8080".parse().unwrap())),
            None
        );
    }

    #[test]
    fn no_key_is_no_check_and_checks_without_a_key_are_refused() {
        assert!(!access_config(&serve_args(&[])).unwrap().is_enabled());
        let error = access_config(&serve_args(&["--anonymous-subscribe"])).unwrap_err();
        assert!(error.message.contains("needs a key"), "{error}");
    }

    #[test]
    fn a_secret_fixes_hs256_and_the_flags_fill_the_checks() {
        let access = access_config(&serve_args(&[
            "--jwt-secret",
            "s3cret",
            "--jwt-audience",
            "eric",
            "--jwt-issuer",
            "https://auth.example",
            "--anonymous-subscribe",
            "--jwt-query-token",
        ]))
        .unwrap();
        assert_eq!(access.key.unwrap().algorithm(), "HS256");
        assert_eq!(access.audience.as_deref(), Some("eric"));
        assert_eq!(access.issuer.as_deref(), Some("https://auth.example"));
        assert!(access.anonymous_subscribe && access.query_token);
    }

    #[test]
    fn a_public_key_fixes_its_algorithm_and_a_bad_one_is_refused() {
        let keys = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../eric-socket/tests/fixtures/keys"
        );
        let access = access_config(&serve_args(&[
            "--jwt-public-key",
            &format!("{keys}/ec-public.pem"),
        ]))
        .unwrap();
        assert_eq!(access.key.unwrap().algorithm(), "ES256");
        let error = access_config(&serve_args(&[
            "--jwt-public-key",
            &format!("{keys}/ec-private.pem"),
        ]))
        .unwrap_err();
        assert!(error.message.contains("private key"), "{error}");
        assert!(Cli::try_parse_from([
            "eric",
            "serve",
            "--jwt-secret",
            "a",
            "--jwt-public-key",
            "b"
        ])
        .is_err());
    }
}
