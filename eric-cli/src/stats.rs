//! `eric stats`: the server's figures as a table (or JSON), read from the snapshots of
//! `GET /monitor/events`, the stream the monitor page draws.

use crate::error::{CliError, Exit};
use crate::http_api::HttpApi;
use eric_socket::http::SNAPSHOT_EVENT;
use eric_socket::metrics::Snapshot;
use eric_sse::Parser;
use http_body_util::BodyExt;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

/// Prints the latest snapshot, or (`watch`) every snapshot as it comes.
pub async fn stats(http: &str, json: bool, watch: bool) -> Result<(), CliError> {
    let mut body = HttpApi::new(http, "stats")
        .event_stream("/monitor/events")
        .await?;
    let mut parser = Parser::new();
    let clear = watch && !json && std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        while let Some(event) = parser.next_event() {
            if event.event != SNAPSHOT_EVENT {
                continue;
            }
            let snapshot: Snapshot = event.json().map_err(|error| {
                CliError::new(
                    Exit::Other,
                    format!("the server sent a snapshot this eric cannot read: {error}"),
                )
            })?;
            let text = if json {
                let mut line = serde_json::to_string(&snapshot).expect("a snapshot serialises");
                line.push('\n');
                line
            } else {
                table(&snapshot, http)
            };
            let mut out = std::io::stdout().lock();
            if clear {
                // Home and clear, so that the figures stay in place.
                let _ = out.write_all(b"\x1b[H\x1b[2J");
            } else if watch && !json && !first {
                let _ = out.write_all(b"\n");
            }
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|error| CliError::io("cannot write the figures", error))?;
            first = false;
            if !watch {
                return Ok(());
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    parser.feed(&data);
                }
            }
            Some(Err(error)) => {
                return Err(CliError::new(
                    Exit::Io,
                    format!("the server's figures stopped coming: {error}"),
                ))
            }
            None => {
                return if first {
                    Err(CliError::new(
                        Exit::Other,
                        "the server ended the stream of figures before the first",
                    ))
                } else {
                    Ok(())
                };
            }
        }
    }
}

/// A rate for people: `0.5/s`, `18/s`, `12.3k/s`.
fn rate(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1}k/s", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0}/s")
    } else {
        format!("{value:.1}/s")
    }
}

fn latency(microseconds: Option<f64>) -> String {
    match microseconds {
        None => "-".to_owned(),
        Some(us) if us < 1000.0 => format!("{us:.0} µs"),
        Some(us) => format!("{:.1} ms", us / 1000.0),
    }
}

fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A channel id as the terminal should see it: control characters escaped, so that an
/// id cannot move the cursor or forge a line.
fn printable(id: &str) -> Cow<'_, str> {
    if id.chars().any(char::is_control) {
        Cow::Owned(id.escape_debug().to_string())
    } else {
        Cow::Borrowed(id)
    }
}

/// The figures as a table.
pub fn table(snapshot: &Snapshot, http: &str) -> String {
    let t = &snapshot.totals;
    let mut out = String::new();
    let state = if snapshot.ready {
        "ready".to_owned()
    } else {
        format!("NOT READY: {}", snapshot.state)
    };
    let _ = writeln!(
        out,
        "eric at {http}: {state}, up {}",
        uptime(snapshot.uptime_seconds)
    );
    let mut row = |name: &str, value: u64, detail: String| {
        let line = format!("  {name:<12}{value:>12}  {detail}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    row("channels", snapshot.channels as u64, String::new());
    row("listeners", snapshot.listeners as u64, String::new());
    row(
        "subscribers",
        t.subscribers(),
        format!(
            "http {}, socket {}",
            t.subscribers_http, t.subscribers_socket
        ),
    );
    row(
        "connections",
        t.connections_http + t.connections_socket,
        format!(
            "http {}, socket {}",
            t.connections_http, t.connections_socket
        ),
    );
    row(
        "published",
        t.published(),
        format!(
            "{}  (broadcast {}, dispatch {})",
            rate(snapshot.publish_rate),
            t.published_broadcast,
            t.published_dispatch
        ),
    );
    row(
        "delivered",
        t.delivered(),
        format!(
            "{}  (http {}, socket {})",
            rate(snapshot.delivery_rate),
            t.delivered_http,
            t.delivered_socket
        ),
    );
    let losses = &snapshot.losses;
    row(
        "dropped",
        t.dropped() + losses.dropped_oldest + losses.dropped_too_slow,
        format!(
            "rejected {}, disconnected {}, oldest {}, too slow {}",
            t.dropped_rejected,
            t.dropped_disconnected,
            losses.dropped_oldest,
            losses.dropped_too_slow
        ),
    );
    row(
        "refused",
        losses.overloaded,
        "publishes refused: the queues held --max-queued-bytes".to_owned(),
    );
    row(
        "disconnects",
        t.disconnects() + losses.slow_disconnects,
        format!(
            "slow {}, token expired {}, overflow {}, shutdown {}",
            t.disconnects_slow + losses.slow_disconnects,
            t.disconnects_token_expired,
            t.disconnects_overflow,
            t.disconnects_shutdown
        ),
    );
    row(
        "resumes",
        t.resumes_replayed + t.resumes_marker,
        format!(
            "replayed {}, with a gap marker {}",
            t.resumes_replayed, t.resumes_marker
        ),
    );
    let _ = writeln!(
        out,
        "  {:<12}{:>12}  p99 {}",
        "latency p50",
        latency(snapshot.latency_p50_us),
        latency(snapshot.latency_p99_us)
    );
    if let Some(engine) = &snapshot.engine {
        let commands = &engine.command_latency;
        let _ = writeln!(
            out,
            "  {:<12}{:>12}  reconnects {}, commands {}, p50 {}, p99 {}",
            engine.store,
            if engine.up { "up" } else { "DOWN" },
            engine.reconnects,
            commands.count(),
            latency(commands.quantile_us(0.5)),
            latency(commands.quantile_us(0.99))
        );
    }
    if !snapshot.channel_list.is_empty() {
        let ids: Vec<Cow<'_, str>> = snapshot
            .channel_list
            .iter()
            .map(|c| printable(&c.id))
            .collect();
        let width = ids
            .iter()
            .map(|id| id.chars().count())
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            out,
            "\n  {:<width$}  {:>9}  {:>11}  {:>10}  {:>8}",
            "CHANNEL", "LISTENERS", "SUBSCRIBERS", "PUBLISHED", "RATE"
        );
        for (channel, id) in snapshot.channel_list.iter().zip(&ids) {
            let _ = writeln!(
                out,
                "  {id:<width$}  {:>9}  {:>11}  {:>10}  {:>8}",
                channel.listeners,
                channel.subscribers,
                channel.published,
                channel.publish_rate.map_or_else(|| "-".to_owned(), rate)
            );
        }
        if snapshot.channels > snapshot.channel_list.len() {
            let _ = writeln!(
                out,
                "  ... the {} most subscribed of {} channels",
                snapshot.channel_list.len(),
                snapshot.channels
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        serde_json::from_value(json!({
            "time_ms": 0, "uptime_seconds": 75, "ready": true, "state": "ready",
            "channels": 2, "listeners": 3,
            "totals": {
                "published_broadcast": 10, "published_dispatch": 2, "delivered_http": 25,
                "delivered_socket": 5, "dropped_rejected": 1, "dropped_disconnected": 0,
                "disconnects_slow": 0, "disconnects_token_expired": 0,
                "disconnects_shutdown": 0, "disconnects_overflow": 0,
                "resumes_replayed": 4, "resumes_marker": 1, "subscribers_http": 2,
                "subscribers_socket": 1, "connections_http": 3, "connections_socket": 1
            },
            "publish_rate": 12.5, "delivery_rate": 30000.0,
            "publish_history": [], "delivery_history": [],
            "latency_p50_us": 50.0, "latency_p99_us": 2500.0,
            "losses": {"dropped_oldest": 7, "dropped_too_slow": 20, "slow_disconnects": 2, "overloaded": 3},
            "engine": {"store": "redis", "up": false, "reconnects": 4,
                       "command_latency": {"buckets": [0, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], "sum_seconds": 0.001}},
            "channel_list": [
                {"id": "news", "listeners": 2, "subscribers": 2, "published": 9, "publish_rate": 3.0},
                {"id": "bad\nid", "listeners": 1, "subscribers": 1, "published": 3, "publish_rate": null}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_table_shows_every_figure() {
        let text = table(&snapshot(), "127.0.0.1:8080");
        for needle in [
            "eric at 127.0.0.1:8080: ready, up 1m 15s",
            "subscribers            3  http 2, socket 1",
            "published             12  12/s  (broadcast 10, dispatch 2)",
            "delivered             30  30.0k/s  (http 25, socket 5)",
            "dropped               28  rejected 1, disconnected 0, oldest 7, too slow 20",
            "refused                3  publishes refused",
            "disconnects            2  slow 2,",
            "redis               DOWN  reconnects 4, commands 10, p50 100 µs, p99 250 µs",
            "resumes                5  replayed 4, with a gap marker 1",
            "latency p50        50 µs  p99 2.5 ms",
            "news",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }

    #[test]
    fn channel_ids_cannot_forge_lines() {
        let text = table(&snapshot(), "x");
        assert!(text.contains("bad\\nid"), "{text}");
        assert!(
            !text
                .lines()
                .any(|line| line.trim_start().starts_with("id ")),
            "{text}"
        );
    }
}
