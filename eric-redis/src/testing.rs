//! A `redis-server` of a test's own: on a free port, its data in a temporary directory,
//! killed when dropped. For eric's tests; not part of the API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` (Debian's `/usr/bin/redis-server`, or the first on `PATH`).
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one and waits until it answers as itself.
    ///
    /// The free port is found by binding port 0 and letting it go, so another process
    /// can take it before `redis-server` binds it. Then `redis-server` exits, or, worse,
    /// a `PING` would reach someone else's Redis. So readiness is the server naming this
    /// child's process id, and a child that exited is started again on a new port.
    ///
    /// # Panics
    /// If `redis-server` cannot run or does not answer within 15 s.
    pub fn start() -> RedisServer {
        on_a_free_port("redis-server", || {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("eric-redis-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .args(["--save", "", "--appendonly", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server package) runs");
            // Dropped if it lost the port, which removes its directory.
            let mut server = RedisServer { child, port, dir };
            wait_until_serving(&mut server.child, || server_pid(port)).then_some(server)
        })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `launch`, which starts `what` on a port from [`free_port`] and gives `None` when
/// it lost that port to another process, until it keeps one; five tries.
///
/// # Panics
/// If all five lost their port.
pub fn on_a_free_port<T>(what: &str, launch: impl FnMut() -> Option<T>) -> T {
    const TRIES: usize = 5;
    std::iter::repeat_with(launch)
        .take(TRIES)
        .find_map(|launched| launched)
        .unwrap_or_else(|| panic!("{what} found no free port in {TRIES} tries"))
}

/// Waits until the Redis that `answering_pid` reaches is `child` (true), or `child`
/// exits first (false): another process took its port.
///
/// # Panics
/// If neither happens within 15 s; `child` is killed first.
pub fn wait_until_serving(
    child: &mut Child,
    mut answering_pid: impl FnMut() -> Option<u32>,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if answering_pid() == Some(child.id()) {
            return true;
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-server does not answer");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The process id of the plain-TCP Redis answering on `port`, from its `INFO server`;
/// `None` while nothing answers there.
pub fn server_pid(port: u16) -> Option<u32> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(b"INFO server\r\n").ok()?;
    let mut reply = BufReader::new(tcp);
    let mut header = String::new();
    reply.read_line(&mut header).ok()?;
    let length: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut info = vec![0; length];
    reply.read_exact(&mut info).ok()?;
    pid_in_info(std::str::from_utf8(&info).ok()?)
}

/// The `process_id` an `INFO server` reply names.
pub fn pid_in_info(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
