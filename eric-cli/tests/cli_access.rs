//! `eric serve` with tokens and TLS, and the clients that speak to it: `--token`,
//! `--cacert`, `eric token`, and the certificate reloaded on SIGHUP.

use assert_cmd::Command;
use predicates::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustix::process::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ERIC: &str = env!("CARGO_BIN_EXE_eric");
const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "cli test secret";

/// Environment variables that would change what the binary does.
const ENVIRONMENT: &[&str] = &[
    "ERIC_SOCKET",
    "ERIC_HTTP",
    "ERIC_LOG_LEVEL",
    "ERIC_NO_HTTP",
    "RUST_LOG",
    "ERIC_TOKEN",
    "ERIC_JWT_SECRET",
    "ERIC_HTTPS",
    "ERIC_CACERT",
    "ERIC_TLS_CERT",
    "ERIC_TLS_KEY",
];

/// A running `eric serve` on a free port in a temporary directory; killed on drop.
struct Server {
    child: Child,
    socket: PathBuf,
    http: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(flags: &[&str], dir: tempfile::TempDir) -> Server {
        let socket = dir.path().join("eric.sock");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = format!("127.0.0.1:{port}");
        let mut command = std::process::Command::new(ERIC);
        command
            .args(["serve", "--socket"])
            .arg(&socket)
            .args(["--http", &http])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        let server = Server {
            child: command.spawn().unwrap(),
            socket,
            http,
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while !server.socket.exists() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn eric(&self) -> Command {
        let mut command = Command::new(ERIC);
        command
            .arg("--socket")
            .arg(&self.socket)
            .args(["--http", &self.http])
            .timeout(WAIT);
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        command
    }

    fn signal(&self, sent: Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sent).unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `eric token ARGS` signed with [`SECRET`].
fn mint(args: &[&str]) -> String {
    let output = Command::new(ERIC)
        .args(["token", "--secret", SECRET])
        .args(args)
        .env_remove("ERIC_JWT_SECRET")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(output).unwrap().trim().to_owned()
}

#[test]
fn the_http_verbs_need_a_token_from_a_server_with_a_secret() {
    let server = Server::start(&["--jwt-secret", SECRET], tempfile::tempdir().unwrap());
    server
        .eric()
        .args(["channel", "create", "--id", "news.sport"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("401"))
        .stderr(predicate::str::contains("needs a token"));
    let publisher = mint(&["--publish", "news.*", "--ttl", "5m"]);
    server
        .eric()
        .args([
            "--token",
            &publisher,
            "channel",
            "create",
            "--id",
            "news.sport",
        ])
        .assert()
        .success()
        .stdout("news.sport\n");
    server
        .eric()
        .args([
            "--token", &publisher, "channel", "create", "--id", "newsroom",
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("403"))
        .stderr(predicate::str::contains("publish on channel \"newsroom\""));
    // ERIC_TOKEN works as the flag does; the listing shows what the token may use.
    server
        .eric()
        .env("ERIC_TOKEN", mint(&["--subscribe", "*"]))
        .args(["channel", "list"])
        .assert()
        .success()
        .stdout("news.sport\n");
    // The socket needs no token: its file's permissions are its access control.
    server
        .eric()
        .args(["broadcast", "news.sport", "t", "1"])
        .assert()
        .success();
}

#[test]
fn a_token_minted_with_a_private_key_passes_a_server_holding_the_public_key() {
    let keys = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eric-socket/tests/fixtures/keys"
    );
    let server = Server::start(
        &["--jwt-public-key", &format!("{keys}/ec-public.pem")],
        tempfile::tempdir().unwrap(),
    );
    let output = Command::new(ERIC)
        .args([
            "token",
            "--private-key",
            &format!("{keys}/ec-private.pem"),
            "--admin",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let token = String::from_utf8(output).unwrap().trim().to_owned();
    server
        .eric()
        .args(["--token", &token, "channel", "list"])
        .assert()
        .success();
    // An HS256 token, whatever its secret, is refused by a server with a public key.
    server
        .eric()
        .args(["--token", &mint(&["--admin"]), "channel", "list"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not signed with ES256"));
}

/// A CA of the test's own, and a server certificate it signs written to `dir`.
fn issue(dir: &Path, ca_name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (
        dir.join(format!("{ca_name}-ca.pem")),
        dir.join(format!("{ca_name}-server.crt")),
        dir.join(format!("{ca_name}-server.key")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn https_with_a_test_ca_and_a_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, cert, key) = issue(dir.path(), "first");
    let (second_ca, second_cert, second_key) = issue(dir.path(), "second");
    let live_cert = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let flags = [
        "--tls-cert",
        live_cert.to_str().unwrap(),
        "--tls-key",
        live_key.to_str().unwrap(),
    ];
    let server = Server::start(&flags, tempfile::tempdir().unwrap());
    let list = |ca: &Path| {
        let mut command = server.eric();
        command.arg("--cacert").arg(ca).args(["channel", "list"]);
        command
    };
    server
        .eric()
        .args(["channel", "create", "--id", "a"])
        .assert()
        .failure();
    list(&first_ca).assert().success();
    list(&second_ca)
        .assert()
        .failure()
        .stderr(predicate::str::contains("TLS"));

    std::fs::copy(&second_cert, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    server.signal(Signal::HUP);
    let deadline = Instant::now() + WAIT;
    while !list(&second_ca).output().unwrap().status.success() {
        assert!(
            Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    list(&first_ca).assert().failure();
}
