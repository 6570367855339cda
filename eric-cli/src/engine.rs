//! The engine `eric serve` keeps its channels in: memory, or Redis with `--redis`.

use crate::cli::ServeArgs;
use crate::error::{CliError, Exit};
use eric_socket::{ChannelContainer, ChannelSettings};
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
    let config = eric_redis::RedisConfig::new(url.clone()).prefix(args.redis_prefix.clone());
    let engine = eric_redis::RedisEngine::connect(config).map_err(|error| {
        CliError::new(Exit::Io, format!("cannot use the Redis at {url}: {error}"))
    })?;
    tracing::info!(url = %url, prefix = %args.redis_prefix, "channels are kept in Redis");
    Ok(ChannelContainer::with_engine(settings, Arc::new(engine)))
}
