//! The engine `eric serve` keeps its channels in: memory, or Redis with `--redis`.

use crate::cli::ServeArgs;
use crate::error::{CliError, Exit};
use eric_socket::{ChannelContainer, ChannelSettings};
use std::path::Path;
use std::sync::Arc;

/// The container of `eric serve`: in memory, or over the Redis of `--redis`, which must
/// answer now.
pub fn container(
    args: &ServeArgs,
    settings: ChannelSettings,
) -> Result<ChannelContainer, CliError> {
    let Some(url) = &args.redis else {
        return Ok(ChannelContainer::with_settings(settings));
    };
    let config = eric_redis::RedisConfig::new(url.clone())
        .prefix(args.redis_prefix.clone())
        .tls(tls(args)?);
    let engine = eric_redis::RedisEngine::connect(config).map_err(|error| {
        CliError::new(Exit::Io, format!("cannot use the Redis at {url}: {error}"))
    })?;
    tracing::info!(url = %url, prefix = %args.redis_prefix, "channels are kept in Redis");
    Ok(ChannelContainer::with_engine(settings, Arc::new(engine)))
}

/// The certificates of `--redis-ca`, `--redis-cert` and `--redis-key`, read now.
fn tls(args: &ServeArgs) -> Result<eric_redis::RedisTls, CliError> {
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).map_err(|error| {
            CliError::new(
                Exit::Io,
                format!("cannot read --{flag} {}: {error}", path.display()),
            )
        })
    };
    let mut tls = eric_redis::RedisTls::default();
    if let Some(path) = &args.redis_ca {
        tls.ca = Some(read("redis-ca", path)?);
    }
    if let (Some(cert), Some(key)) = (&args.redis_cert, &args.redis_key) {
        tls.client = Some((read("redis-cert", cert)?, read("redis-key", key)?));
    }
    Ok(tls)
}
