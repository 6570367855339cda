//! An eric socket server on a Unix socket, speaking the eric-sse 0.6.0.3 protocol, until
//! SIGINT or SIGTERM; then it ends its open streams, removes the socket file and exits 0.
//!
//! ```text
//! cargo run -p eric-socket --example unix_server -- /tmp/eric.sock
//! ```
//!
//! Try it with the Python reference's client, or by hand:
//! ```text
//! printf '{"v": "c"}' | socat - UNIX-CONNECT:/tmp/eric.sock
//! ```

use eric_socket::{termination_signal, ChannelContainer, UnixServer, UnixServerConfig};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("eric.sock"));

    // Install the signal handlers before telling anyone the server is up: a SIGTERM
    // that came before them would kill the process the default way, socket file left.
    let mut signal = Box::pin(termination_signal());
    let early = std::future::poll_fn(|cx| Poll::Ready(signal.as_mut().poll(cx))).await;
    if let Poll::Ready(result) = early {
        return result;
    }

    let container = Arc::new(ChannelContainer::new());
    let server = UnixServer::bind(UnixServerConfig::new(&path), container).await?;
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        if let Err(error) = signal.await {
            eprintln!("cannot wait for signals: {error}");
        }
        stop.shutdown();
    });

    println!("listening on {}", path.display());
    server.run().await?;
    println!("stopped");
    Ok(())
}
