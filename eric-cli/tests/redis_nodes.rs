//! `eric serve --redis`: several nodes share every channel through a Redis of the
//! test's own, and nothing acknowledged is lost when nodes or Redis restart.
//!
//! Each test starts its own `redis-server` (Debian's package, installed by `.ci/run`)
//! and is ignored without it: run them with `cargo test -p eric-cli --test redis_nodes
//! -- --include-ignored`.

mod redis_support;

use redis_support::{wait_until, Event, Node, Proxy, Redis, RedisCertificates, ERIC};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn payloads(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.data.parse().unwrap()).collect()
}

fn offset(event: &Event) -> u64 {
    let id = event.id.as_deref().unwrap();
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[test]
#[ignore = "needs redis-server"]
fn two_nodes_share_channels_listeners_broadcasts_and_positions() {
    let redis = Redis::start();
    let a = Node::start(&redis);
    let b = Node::start(&redis);

    a.create("news");
    let (status, body) = b.request("GET", "/channels", None);
    assert_eq!((status, body.as_str()), (200, r#"["news"]"#));

    // A listener registered on B, streamed from A; a watcher on A.
    let listener = b.subscribe("news");
    let (_, root) = a.request("GET", "/", None);
    assert_eq!(root, format!(r#"{{"news":["{listener}"]}}"#));
    let mut watch = a.events("/watch/news", None);
    let mut stream = a.events(&format!("/stream/news/{listener}"), None);
    assert_eq!((watch.status, stream.status), (200, 200));

    for n in 1..=20 {
        assert_eq!(b.broadcast("news", n), 200);
    }
    assert_eq!(b.dispatch("news", &listener, 21), 200);
    let watched = watch.take("n", 20);
    assert_eq!(payloads(&watched), (1..=20).collect::<Vec<_>>());
    let offsets: Vec<u64> = watched.iter().map(offset).collect();
    assert_eq!(
        offsets,
        (1..=20).collect::<Vec<_>>(),
        "in the channel's order"
    );
    let streamed = stream.take("n", 20);
    assert_eq!(payloads(&streamed), (1..=20).collect::<Vec<_>>());
    let dispatched = stream.next();
    assert_eq!(
        (dispatched.event.as_str(), dispatched.data.as_str()),
        ("d", "21")
    );

    // Exactly once: the next event on A's watch is the next broadcast, not a repeat.
    assert_eq!(a.broadcast("news", 22), 200);
    assert_eq!(payloads(&watch.take("n", 1)), [22]);

    // The position A gave resumes on B.
    let tenth = watched[9].id.clone().unwrap();
    let mut resumed = b.events("/watch/news", Some(&tenth));
    let replayed = resumed.take("n", 11);
    assert_eq!(
        payloads(&replayed),
        (11..=20).chain([22]).collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs redis-server"]
fn channels_listeners_and_queued_messages_outlive_every_node() {
    let redis = Redis::start();
    let a = Node::start(&redis);
    a.create("jobs");
    let listener = a.subscribe("jobs");
    for n in 1..=5 {
        assert_eq!(a.broadcast("jobs", n), 200);
    }
    assert_eq!(a.dispatch("jobs", &listener, 6), 200);
    a.stop();

    // Another node, after every node stopped: all of it is there.
    let b = Node::start(&redis);
    let (_, root) = b.request("GET", "/", None);
    assert_eq!(root, format!(r#"{{"jobs":["{listener}"]}}"#));
    let mut stream = b.events(&format!("/stream/jobs/{listener}"), None);
    let queued: Vec<Event> = (0..6).map(|_| stream.next()).collect();
    let data: Vec<&str> = queued.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["1", "2", "3", "4", "5", "6"]);
    drop(stream);
    // What was consumed is not queued again on the next node.
    b.stop();
    let c = Node::start(&redis);
    assert_eq!(c.broadcast("jobs", 7), 200);
    let mut stream = c.events(&format!("/stream/jobs/{listener}"), None);
    assert_eq!(stream.next().data, "7");
}

#[test]
#[ignore = "needs redis-server"]
fn publishes_are_refused_while_redis_is_down_and_streams_heal_after() {
    let mut redis = Redis::start();
    let a = Node::start(&redis);
    let b = Node::start(&redis);
    a.create("live");
    let mut watch = a.events("/watch/live", None);
    assert_eq!(b.broadcast("live", 1), 200);
    assert_eq!(payloads(&watch.take("n", 1)), [1]);

    redis.stop();
    assert_eq!(b.broadcast("live", 2), 503, "HTTP refuses");
    let answer = b.command(r#"{"v": "b", "c": "live", "t": "n", "p": 2}"#);
    assert!(
        answer.starts_with("EngineUnavailableException("),
        "the socket refuses: {answer}"
    );

    redis.restart();
    // B publishes as soon as Redis answers, maybe before A listens again: A's stream
    // gets every acknowledged broadcast, in order, from the log if not notified.
    let mut acknowledged = Vec::new();
    let mut n = 3;
    while acknowledged.len() < 5 {
        if b.broadcast("live", n) == 200 {
            acknowledged.push(n);
        }
        n += 1;
    }
    let healed = watch.take("n", 5);
    assert_eq!(payloads(&healed), acknowledged);
    let offsets: Vec<u64> = healed.iter().map(offset).collect();
    assert_eq!(offsets, (2..=6).collect::<Vec<_>>(), "no gap, no repeat");
}

#[test]
#[ignore = "needs redis-server"]
fn a_hung_notification_connection_is_probed_replaced_and_healed() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port);
    let a = Node::start_with(&proxy.url(), &[]);
    let b = Node::start(&redis);
    a.create("quiet");
    let mut watch = a.events("/watch/quiet", None);
    assert_eq!(b.broadcast("quiet", 1), 200);
    assert_eq!(payloads(&watch.take("n", 1)), [1]);

    // Every connection of A's hangs: no error, no close, nothing comes through.
    let subscribed = proxy.accepted_sending("SUBSCRIBE");
    proxy.freeze();
    let frozen = Instant::now();
    let give_up = frozen + Duration::from_secs(20);
    for n in 2..=4 {
        assert_eq!(b.broadcast("quiet", n), 200);
    }

    // The probe: 5 s of silence, 2 s for a PONG that does not come, then a new
    // notification connection, told from A's command connections by its SUBSCRIBE.
    while proxy.accepted_sending("SUBSCRIBE") == subscribed {
        assert!(
            Instant::now() < give_up,
            "A never noticed its hung notification connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let detected = frozen.elapsed();
    assert!(
        detected <= Duration::from_secs(10),
        "noticed only after {detected:?}"
    );

    // The heal after the reconnect reads the log; should it miss, a broadcast's notice
    // shows A the gap, which it fills from the log.
    let heal_by = Instant::now() + Duration::from_secs(6);
    let mut healed = Vec::new();
    while healed.len() < 3 {
        match watch.next_before(heal_by.min(give_up)) {
            Some(event) if event.event == "n" => healed.push(event),
            Some(_) => {}
            None => break,
        }
    }
    let by_itself = healed.len() == 3;
    let last = if by_itself {
        4
    } else {
        assert_eq!(b.broadcast("quiet", 5), 200);
        5
    };
    while healed.len() < last - 1 {
        match watch.next_before(give_up) {
            Some(event) if event.event == "n" => healed.push(event),
            Some(_) => {}
            None => panic!(
                "by {:?} A's stream had only {:?}",
                frozen.elapsed(),
                payloads(&healed)
            ),
        }
    }
    let expected: Vec<u64> = (2..=last as u64).collect();
    assert_eq!(payloads(&healed), expected);
    let offsets: Vec<u64> = healed.iter().map(offset).collect();
    assert_eq!(offsets, expected, "no gap, no repeat");
    eprintln!(
        "noticed the hang after {detected:?}; healed {} after {:?}",
        if by_itself {
            "by itself"
        } else {
            "on the next broadcast"
        },
        frozen.elapsed()
    );

    // Nothing more of what was missed comes again.
    let next = last as u64 + 1;
    assert_eq!(b.broadcast("quiet", next), 200);
    let after = watch.take("n", 1);
    assert_eq!((payloads(&after), offset(&after[0])), (vec![next], next));
}

/// The value of the sample `series` (name and labels as written) in a `/metrics` body.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[test]
#[ignore = "needs redis-server"]
fn readyz_and_the_redis_metrics_follow_redis_going_away_and_coming_back() {
    let mut redis = Redis::start();
    let a = Node::start(&redis);
    a.create("pulse");
    assert_eq!(a.broadcast("pulse", 1), 200);
    let metrics = || {
        let (status, body) = a.request("GET", "/metrics", None);
        assert_eq!(status, 200, "{body}");
        body
    };
    let up = metrics();
    assert_eq!(a.request("GET", "/readyz", None).0, 200);
    assert_eq!(sample(&up, "eric_redis_up"), Some(1.0), "{up}");
    assert_eq!(sample(&up, "eric_ready"), Some(1.0));
    assert_eq!(sample(&up, "eric_redis_reconnects_total"), Some(0.0));
    let commands = sample(&up, "eric_redis_command_duration_seconds_count").unwrap();
    assert!(commands >= 2.0, "create and broadcast are commands: {up}");

    redis.stop();
    wait_until("/readyz turns 503", || {
        a.request("GET", "/readyz", None).0 == 503
    });
    let (_, reason) = a.request("GET", "/readyz", None);
    assert!(reason.contains("Redis"), "the reason names Redis: {reason}");
    wait_until("eric_redis_up turns 0", || {
        sample(&metrics(), "eric_redis_up") == Some(0.0)
    });
    assert_eq!(sample(&metrics(), "eric_ready"), Some(0.0));

    redis.restart();
    wait_until("/readyz turns 200 again", || {
        a.request("GET", "/readyz", None).0 == 200
    });
    assert_eq!(a.broadcast("pulse", 2), 200);
    let back = metrics();
    assert_eq!(sample(&back, "eric_redis_up"), Some(1.0), "{back}");
    let reconnects = sample(&back, "eric_redis_reconnects_total").unwrap();
    assert!(
        reconnects >= 2.0,
        "commands and notifications each connected again: {back}"
    );
    let after = sample(&back, "eric_redis_command_duration_seconds_count").unwrap();
    assert!(after > commands, "{back}");
}

/// `eric serve` with `args`, expected to refuse to start: its stderr.
fn refused_start(args: &[&std::ffi::OsStr]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(ERIC)
        .arg("serve")
        .arg("--socket")
        .arg(dir.path().join("eric.sock"))
        .args(["--http", "127.0.0.1:0"])
        .args(args)
        .env_remove("ERIC_REDIS_CA")
        .env_remove("ERIC_REDIS_CERT")
        .env_remove("ERIC_REDIS_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success(), "it started with {args:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
#[ignore = "needs redis-server"]
fn a_node_speaks_tls_to_redis_with_a_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = RedisCertificates::issue(dir.path(), "redis");
    let stranger = RedisCertificates::issue(dir.path(), "stranger");
    let redis = Redis::start_tls(&certificates);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let os = |path: &std::path::Path| path.as_os_str().to_owned();
    let flags = |ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path| {
        [
            "--redis".into(),
            url.clone().into(),
            "--redis-ca".into(),
            os(ca),
            "--redis-cert".into(),
            os(cert),
            "--redis-key".into(),
            os(key),
        ]
    };
    fn borrowed(flags: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
        flags.iter().map(|f| f.as_os_str()).collect()
    }

    // A Redis certificate that no trusted CA signed: refused, whatever the client has.
    let untrusted = flags(
        &stranger.ca,
        &certificates.client_cert,
        &certificates.client_key,
    );
    let stderr = refused_start(&borrowed(&untrusted));
    assert!(
        stderr.contains("cannot use the Redis at rediss://"),
        "{stderr}"
    );
    // Redis asks for a client certificate: without one, no connection.
    let no_client = [
        "--redis".into(),
        std::ffi::OsString::from(&url),
        "--redis-ca".into(),
        os(&certificates.ca),
    ];
    let stderr = refused_start(&borrowed(&no_client));
    assert!(
        stderr.contains("cannot use the Redis at rediss://"),
        "{stderr}"
    );
    // TLS certificates with a plain URL are a mistake, said so.
    let plain = [
        "--redis".into(),
        std::ffi::OsString::from(format!("redis://127.0.0.1:{}", redis.port)),
        "--redis-ca".into(),
        os(&certificates.ca),
    ];
    let stderr = refused_start(&borrowed(&plain));
    assert!(stderr.contains("not rediss://"), "{stderr}");

    // The CA and a client certificate it signed: two nodes share a channel over TLS.
    let trusted = flags(
        &certificates.ca,
        &certificates.client_cert,
        &certificates.client_key,
    );
    let rest: Vec<&str> = trusted[2..].iter().map(|f| f.to_str().unwrap()).collect();
    let a = Node::start_with(&url, &rest);
    let b = Node::start_with(&url, &rest);
    a.create("secure");
    let mut watch = b.events("/watch/secure", None);
    for n in 1..=3 {
        assert_eq!(a.broadcast("secure", n), 200);
    }
    assert_eq!(payloads(&watch.take("n", 3)), [1, 2, 3]);
    let stored = redis.cli(&["XLEN", "{eric:secure}:log"]);
    assert_eq!(stored.trim(), "3", "the log is in the TLS Redis");
}

#[test]
#[ignore = "needs redis-server"]
fn a_node_killed_mid_publish_loses_nothing_acknowledged() {
    let redis = Redis::start();
    let a = Node::start(&redis);
    a.create("audit");
    let first = {
        let mut watch = a.events("/watch/audit", None);
        assert_eq!(a.broadcast("audit", 0), 200);
        watch.next().id.unwrap()
    };
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let http = a.http.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 1 + p * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(tcp) = std::net::TcpStream::connect(&http) else {
                        break;
                    };
                    drop(tcp);
                    let result = std::panic::catch_unwind(|| {
                        redis_support::request(
                            &http,
                            "POST",
                            "/broadcast?channel_id=audit",
                            Some(&format!(r#"{{"type":"n","payload":{n}}}"#)),
                            &[],
                        )
                    });
                    match result {
                        Ok((200, _)) => acknowledged.lock().unwrap().push(n),
                        _ => break,
                    }
                    n += 1;
                }
            })
        })
        .collect();
    wait_until("some publishes are acknowledged", || {
        acknowledged.lock().unwrap().len() >= 30
    });
    a.kill();
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        let _ = publisher.join();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Every acknowledged publish is in the log: replay it all through another node.
    let b = Node::start(&redis);
    let epoch = first.rsplit_once('-').unwrap().0;
    let stored: usize = redis
        .cli(&["XLEN", "{eric:audit}:log"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        stored > acknowledged.len(),
        "{stored} stored, {} acked",
        acknowledged.len()
    );
    let mut replay = b.events("/watch/audit", Some(&format!("{epoch}-1")));
    let replayed = payloads(&replay.take("n", stored - 1));
    for n in &acknowledged {
        assert!(replayed.contains(n), "acknowledged {n} was lost");
    }
}

#[test]
#[ignore = "needs redis-server"]
fn a_value_that_does_not_parse_is_an_error_naming_its_key() {
    let redis = Redis::start();
    let a = Node::start(&redis);
    redis.cli(&[
        "HSET",
        "{eric:bad}:meta",
        "e",
        "not-an-epoch",
        "s",
        "0",
        "r",
        "5",
        "a",
        "0",
    ]);
    redis.cli(&["SADD", "eric:channels", "bad"]);
    let (status, body) = a.request("GET", "/watch/bad", None);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("{eric:bad}:meta") && body.contains("field e"),
        "{body}"
    );
    let answer = a.command(r#"{"v": "r", "c": "bad"}"#);
    assert!(
        answer.starts_with("EngineException(") && answer.contains("{eric:bad}:meta"),
        "{answer}"
    );
    // The node still serves everything else.
    a.create("good");
    assert_eq!(a.broadcast("good", 1), 200);
}

#[test]
#[ignore = "needs redis-server"]
fn two_nodes_share_channels_on_a_three_master_redis_cluster() {
    let cluster = redis_support::RedisCluster::start();
    let a = Node::start_with(&cluster.url(0), &[]);
    let b = Node::start_with(&cluster.url(1), &[]);
    // Enough channels that their hash tags fall on every master.
    let channels: Vec<String> = (0..12).map(|n| format!("c{n}")).collect();
    for channel in &channels {
        a.create(channel);
    }
    let (_, listed) = b.request("GET", "/channels", None);
    let listed: Vec<String> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), channels.len());
    let mut masters = std::collections::HashSet::new();
    for channel in &channels {
        let slot = cluster.cli(
            cluster.ports[0],
            &["CLUSTER", "KEYSLOT", &format!("{{eric:{channel}}}:meta")],
        );
        masters.insert(slot.trim().parse::<u32>().unwrap() * 3 / 16384);
    }
    assert_eq!(masters.len(), 3, "the channels span the three masters");

    let mut watches: Vec<_> = channels
        .iter()
        .map(|channel| a.events(&format!("/watch/{channel}"), None))
        .collect();
    let listener = b.subscribe(&channels[0]);
    for (i, channel) in channels.iter().enumerate() {
        for n in 1..=3 {
            assert_eq!(b.broadcast(channel, i as u64 * 10 + n), 200);
        }
    }
    assert_eq!(b.dispatch(&channels[0], &listener, 99), 200);
    for (i, watch) in watches.iter_mut().enumerate() {
        let expected: Vec<u64> = (1..=3).map(|n| i as u64 * 10 + n).collect();
        assert_eq!(payloads(&watch.take("n", 3)), expected);
    }
    let mut stream = a.events(&format!("/stream/{}/{listener}", channels[0]), None);
    assert_eq!(payloads(&stream.take("n", 3)), [1, 2, 3]);
    assert_eq!(stream.next().data, "99");
}
