//! The shell sessions and Python examples of `README.md` and `docs/*.md`, run against a
//! real `eric serve`: an example that stops printing what its page shows fails here.
//!
//! # How a page marks its examples
//!
//! The language of a fenced block says what the harness does with it:
//!
//! - ` ```console `: a shell session. A line starting with `$ ` is a command (a line
//!   ending in `\` goes on to the next one); the lines up to the next command are what it
//!   prints, stdout and stderr together, as a terminal shows them. A command ending in
//!   `&` runs in the background: what it prints later is expected under the command that
//!   caused it, as in a terminal. An output whose last line is `^C` means: once the rest
//!   has been printed, the command gets SIGINT (the user pressed Ctrl-C).
//! - ` ```console netcat `: the same, for sessions that need OpenBSD netcat (`nc -N`).
//! - ` ```python `: run with `python3`. What it prints on stdout must match the
//!   ` ```text output ` block that follows it, or be nothing if none follows.
//! - ` ```python eric-sse `: the same, with the Python reference (eric-sse 0.6.0.3)
//!   installed: `$ERIC_PYTHON`, else `.venv/bin/python` at the workspace root.
//! - ` ```js node `: a JavaScript module run with `node`, its output checked the same
//!   way; ` ```js browser `: code for a page (`fetch`, `EventSource`), run with
//!   `node --experimental-eventsource`, which has the browser's `EventSource`. Both are
//!   [`JAVASCRIPT`] blocks, run by an ignored test (it needs node).
//! - `ignore` after the language (` ```console ignore `): illustrative, not run (it needs
//!   systemd, root, or a tool to install), and said so on the page.
//! - Other languages (`rust`, `text`, `json`, `ini`, `nginx`, other `js`, ...) are not shell or
//!   Python examples: the Rust ones are doctests of eric-socket, the rest is reference
//!   text. A shell or Python block that is neither run nor marked `ignore`, or a language
//!   this harness does not know, fails [`every_block_is_run_or_marked_illustrative`].
//!
//! # Placeholders
//!
//! In an expected line, `[..]` stands for any text (a time, a temporary path); a line
//! `...` stands for any number of lines. `127.0.0.1:8080` in a command or in Python code
//! is replaced by the test server's address, and that address by `127.0.0.1:8080` in
//! what they print. Event ids are positions in a channel's log, `<epoch>-<offset>`, and
//! the epoch is new in every run: the pages write it [`DOCS_EPOCH`], which stands for
//! any epoch in what is printed, and for the last epoch printed in a command (a resume
//! with `Last-Event-ID`). A printed answer without a final line feed (the socket's and the
//! HTTP API's answers have none) is read as one line, as the pages show it.
//!
//! # Each block
//!
//! A block runs in a temporary directory of its own against an `eric serve` of its own,
//! on a free port and a temporary socket path, given to every command and program in
//! `ERIC_HTTP` and `ERIC_SOCKET`; so ids start at 1 in every block. A block that starts
//! the server itself (`$ eric serve &`) gets no other. The `eric` on `PATH` is the one
//! this test was built with. Everything a block started is killed when it ends.
//!
//! Nothing is timed: the harness awaits each expected output (and, after a background
//! command that opens a stream of a new listener, that listener's registration, so that
//! the next command's broadcast reaches it); only a hung example fails after [`WAIT`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ERIC: &str = env!("CARGO_BIN_EXE_eric");

/// How long an example may take to print what it should, or to end.
const WAIT: Duration = Duration::from_secs(20);

/// The address the pages use; replaced by the test server's.
const DOCS_HTTP: &str = "127.0.0.1:8080";

/// The epoch the pages show in event ids.
const DOCS_EPOCH: &str = "5f0c2a9be1d34c77";

/// `text` with the epoch of every event id (16 lowercase hex digits before `-` and a
/// digit, not inside a longer word) replaced by [`DOCS_EPOCH`]; the last one replaced
/// is left in `seen`.
fn with_docs_epochs(text: &str, seen: &mut Option<String>) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 18 <= bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if starts_word
            && bytes[i..i + 16].iter().all(|&b| hex(b))
            && bytes[i + 16] == b'-'
            && bytes[i + 17].is_ascii_digit()
        {
            out.push_str(&text[copied..i]);
            out.push_str(DOCS_EPOCH);
            *seen = Some(text[i..i + 16].to_owned());
            i += 16;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Written into a session's output by the harness itself, to know that everything a
/// finished command printed has been read.
const SENTINEL: &str = "\u{1}eric-docs-sentinel\u{1}";

/// The JavaScript examples of each page (` ```js node ` and ` ```js browser `), kept
/// apart from [`EXPECTED`] so that its rows stay as they are.
const JAVASCRIPT: &[(&str, usize)] = &[("docs/clients.md", 2)];

/// What each page holds, so that no example silently vanishes: a block that stops being
/// found, or one that is added, changes these counts. Update them with the page.
const EXPECTED: &[(&str, Counts)] = &[
    // (page, console, netcat, python, python with the reference, illustrative)
    ("README.md", Counts::new(1, 0, 0, 0, 0)),
    ("docs/README.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/benchmarks.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/clients.md", Counts::new(0, 0, 1, 0, 0)),
    ("docs/concepts.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/deploying.md", Counts::new(0, 0, 0, 0, 2)),
    ("docs/embedding.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/eric-cli.md", Counts::new(1, 0, 0, 0, 1)),
    ("docs/eric-core.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/eric-processing.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/eric-socket.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/eric-sse.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/fuzzing.md", Counts::new(0, 0, 0, 0, 0)),
    ("docs/http-api.md", Counts::new(3, 0, 2, 0, 0)),
    ("docs/migrating-from-python.md", Counts::new(0, 0, 0, 2, 0)),
    ("docs/operating.md", Counts::new(1, 0, 0, 0, 0)),
    ("docs/socket-protocol.md", Counts::new(0, 1, 1, 1, 0)),
];

/// The examples of one page, by what the harness does with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    console: usize,
    netcat: usize,
    python: usize,
    python_reference: usize,
    illustrative: usize,
}

impl Counts {
    const fn new(
        console: usize,
        netcat: usize,
        python: usize,
        python_reference: usize,
        illustrative: usize,
    ) -> Self {
        Counts {
            console,
            netcat,
            python,
            python_reference,
            illustrative,
        }
    }

    fn count(&mut self, kind: Kind) {
        match kind {
            Kind::Console => self.console += 1,
            Kind::Netcat => self.netcat += 1,
            Kind::Python => self.python += 1,
            Kind::PythonReference => self.python_reference += 1,
            Kind::Illustrative => self.illustrative += 1,
            Kind::JavaScript | Kind::NotAnExample => {}
        }
    }
}

/// What the harness does with a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A shell session, run.
    Console,
    /// A shell session that needs OpenBSD netcat, run.
    Netcat,
    /// A Python program, run with `python3`.
    Python,
    /// A Python program that needs eric-sse 0.6.0.3, run with that interpreter.
    PythonReference,
    /// A shell or Python example marked `ignore`: shown, not run.
    Illustrative,
    /// A JavaScript example for node or a page, run with node.
    JavaScript,
    /// Code of another language: Rust (doctests elsewhere), configuration, reference text.
    NotAnExample,
}

/// A fenced block of a page.
#[derive(Clone, Debug)]
struct Block {
    /// The page, relative to the workspace root.
    page: String,
    /// The line of the opening fence, from 1.
    line: usize,
    language: String,
    attributes: Vec<String>,
    body: String,
    /// For a Python block: the `text output` block that follows it.
    expected_output: Option<String>,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.page, self.line)
    }

    fn kind(&self) -> Result<Kind, String> {
        let ignored = self.attributes.iter().any(|a| a == "ignore");
        let has = |attribute: &str| self.attributes.iter().any(|a| a == attribute);
        match self.language.as_str() {
            "console" | "sh" | "shell" | "bash" | "python" | "py" if ignored => {
                Ok(Kind::Illustrative)
            }
            "console" if has("netcat") => Ok(Kind::Netcat),
            "console" => Ok(Kind::Console),
            "python" if has("eric-sse") => Ok(Kind::PythonReference),
            "python" => Ok(Kind::Python),
            "js" if has("node") || has("browser") => Ok(Kind::JavaScript),
            "sh" | "shell" | "bash" | "py" => Err(format!(
                "{}: a `{}` block is neither run nor marked illustrative: write it as a \
                 ```console session (or ```python), or add `ignore` and say on the page why \
                 it cannot run",
                self.at(),
                self.language
            )),
            "rust" | "text" | "json" | "toml" | "ini" | "nginx" | "js" | "mermaid" | "yaml" => {
                Ok(Kind::NotAnExample)
            }
            "" => Err(format!(
                "{}: a block without a language (rustdoc would compile it as Rust): name it",
                self.at()
            )),
            other => Err(format!(
                "{}: unknown block language `{other}`: teach tests/docs_examples.rs whether \
                 it is an example to run",
                self.at()
            )),
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("eric-cli lives in the workspace")
        .to_path_buf()
}

/// `README.md` and every page of `docs/`, relative to the workspace root.
fn pages() -> Vec<String> {
    let root = workspace_root();
    let mut pages = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("the docs directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The fenced blocks of a page, each Python block with the output block after it.
fn blocks(page: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(workspace_root().join(page))
        .unwrap_or_else(|error| panic!("cannot read {page}: {error}"));
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open.as_mut() {
            None if fence => {
                let info = line.trim_start().trim_start_matches('`').trim();
                let mut words = info
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|word| !word.is_empty())
                    .map(str::to_owned);
                open = Some(Block {
                    page: page.to_owned(),
                    line: index + 1,
                    language: words.next().unwrap_or_default(),
                    attributes: words.collect(),
                    body: String::new(),
                    expected_output: None,
                });
            }
            None => {}
            Some(_) if fence && line.trim() == "```" => blocks.push(open.take().unwrap()),
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "{page}: a fenced block is not closed");
    // Output blocks belong to the Python block just before them.
    let mut paired: Vec<Block> = Vec::new();
    for block in blocks {
        if block.language == "text" && block.attributes.iter().any(|a| a == "output") {
            let previous = paired
                .last_mut()
                .filter(|previous| matches!(previous.language.as_str(), "python" | "js"))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a `text output` block must follow a Python or JavaScript block",
                        block.at()
                    )
                });
            previous.expected_output = Some(block.body);
        } else {
            paired.push(block);
        }
    }
    paired
}

/// Every block of every page with its kind; panics on a block the harness cannot place.
fn classified() -> Vec<(Block, Kind)> {
    let mut all = Vec::new();
    let mut problems = Vec::new();
    for page in pages() {
        for block in blocks(&page) {
            match block.kind() {
                Ok(kind) => all.push((block, kind)),
                Err(problem) => problems.push(problem),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    all
}

/// The blocks of one kind, checking first that the pages still hold what
/// [`EXPECTED`] says.
fn examples(kind: Kind) -> Vec<Block> {
    let all = classified();
    let selected: Vec<Block> = all
        .into_iter()
        .filter(|(_, k)| *k == kind)
        .map(|(block, _)| block)
        .collect();
    let expected: usize = if kind == Kind::JavaScript {
        JAVASCRIPT.iter().map(|(_, n)| n).sum()
    } else {
        EXPECTED
            .iter()
            .map(|(_, counts)| count_of(counts, kind))
            .sum()
    };
    assert_eq!(
        selected.len(),
        expected,
        "the pages hold {} {kind:?} blocks, EXPECTED says {expected}: update EXPECTED if an \
         example was added or removed on purpose",
        selected.len(),
    );
    assert!(!selected.is_empty(), "no {kind:?} block to run");
    selected
}

fn count_of(counts: &Counts, kind: Kind) -> usize {
    match kind {
        Kind::Console => counts.console,
        Kind::Netcat => counts.netcat,
        Kind::Python => counts.python,
        Kind::PythonReference => counts.python_reference,
        Kind::Illustrative => counts.illustrative,
        Kind::JavaScript | Kind::NotAnExample => 0,
    }
}

// ---------------------------------------------------------------------------------------
// Matching output

/// Whether `actual` matches `expected`, with `...` lines and `[..]` placeholders.
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => {
            !actual.is_empty() && line_matches(first, actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// Whether one line matches a pattern in which `[..]` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == line;
    }
    if line.len() < first.len() + last.len() || !line.starts_with(first) || !line.ends_with(last) {
        return false;
    }
    let mut middle = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(at) => middle = &middle[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The lines of a page's expected output.
fn expected_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Printed text as lines; a last line without a line feed counts as a line.
fn printed_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

fn show(lines: &[impl AsRef<str>]) -> String {
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "    |{}", line.as_ref());
    }
    if out.is_empty() {
        out.push_str("    (nothing)\n");
    }
    out
}

// ---------------------------------------------------------------------------------------
// Processes

/// A process in a process group of its own; the whole group is killed on drop.
struct Group {
    child: Child,
    /// The leader was waited for: its id may belong to another process by now, so the
    /// group is not signalled any more. (Until then the leader, even ended, keeps the id.)
    reaped: bool,
}

impl Group {
    fn spawn(mut command: Command, what: &str) -> Group {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        Group {
            child,
            reaped: false,
        }
    }

    /// Sends `signal` to every process of the group.
    fn signal(&self, signal: rustix::process::Signal) {
        if self.reaped {
            return;
        }
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            // The group may be gone already: nothing left to signal.
            let _ = rustix::process::kill_process_group(group, signal);
        }
    }

    /// Waits for the process to end; `None` (and the group killed) if it does not within
    /// [`WAIT`].
    fn wait(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.signal(rustix::process::Signal::KILL);
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(rustix::process::Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// The shell's `$?` for a status: the code, or 128 + the signal.
fn shell_status(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Fails the test with a clear message when a program an example needs is missing.
fn require(program: &str, args: &[&str], needle: &str, install: &str) {
    let output = Command::new(program).args(args).output();
    let found = output.as_ref().is_ok_and(|output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        text.contains(needle)
    });
    assert!(
        found,
        "the examples need `{program}` ({needle}), which is not on PATH: {install}"
    );
}

/// Fails at once, saying why, when this process ignores SIGINT: the sessions' `^C`
/// could not stop their commands, which would run on until the wait gave up. A shell
/// without job control starts its background commands so (`(cargo test &)`), and they
/// pass it on; run the tests in the foreground.
fn require_interruptible() {
    // SigIgn: the ignored signals as a hexadecimal mask, bit n - 1 for signal n (Linux).
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0);
    const SIGINT: u32 = 2;
    assert!(
        ignored & (1 << (SIGINT - 1)) == 0,
        "this test process ignores SIGINT, so the sessions' ^C cannot stop curl: it was \
         started in the background by a shell without job control; run it in the foreground"
    );
}

// ---------------------------------------------------------------------------------------
// A session: one block's server, directory and shared terminal

/// One block's world: a temporary directory, the environment of its commands, its server,
/// and the output all its commands share, as one terminal.
struct Session {
    dir: tempfile::TempDir,
    http: String,
    socket: PathBuf,
    /// The write end of the shared output: every command's stdout and stderr.
    terminal: UnixStream,
    output: mpsc::Receiver<Vec<u8>>,
    /// Read but not yet matched.
    pending: Vec<u8>,
    background: Vec<Group>,
    server: Option<Group>,
    /// `$?` for the next command.
    status: i32,
    /// The epoch of the last event id printed, for [`DOCS_EPOCH`] in commands.
    epoch: std::cell::RefCell<Option<String>>,
}

impl Session {
    fn new() -> Session {
        let dir = tempfile::tempdir().unwrap();
        // curl shows a progress meter when its output is not a terminal; the harness's
        // output is a socket, so it turns the meter off as a terminal would.
        std::fs::write(dir.path().join(".curlrc"), "silent\nshow-error\n").unwrap();
        let (terminal, reader) = UnixStream::pair().unwrap();
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buffer = [0u8; 8192];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sender.send(buffer[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Session {
            socket: dir.path().join("eric.sock"),
            http: format!("127.0.0.1:{}", free_port()),
            dir,
            terminal,
            output,
            pending: Vec::new(),
            background: Vec::new(),
            server: None,
            status: 0,
            epoch: Default::default(),
        }
    }

    /// A command in the block's directory and environment, printing to its terminal.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ERIC_") || name == "RUST_LOG" {
                command.env_remove(&name);
            }
        }
        let bin = Path::new(ERIC).parent().unwrap();
        let mut path = OsString::from(bin);
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(":");
            path.push(rest);
        }
        command
            .env("PATH", path)
            .env("ERIC_SOCKET", &self.socket)
            .env("ERIC_HTTP", &self.http)
            .env("CURL_HOME", self.dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("LC_ALL", "C.UTF-8")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(self.terminal_stdio())
            .stderr(self.terminal_stdio());
        command
    }

    fn terminal_stdio(&self) -> Stdio {
        Stdio::from(OwnedFd::from(self.terminal.try_clone().unwrap()))
    }

    /// Starts `eric serve` for the block and waits until both servers answer.
    fn start_server(&mut self) {
        let mut command = self.command(ERIC);
        // No keep-alive comments: a page shows none, and a slow machine would print one
        // into a stream's output between two commands.
        command
            .args(["serve", "--keep-alive", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.server = Some(Group::spawn(command, "eric serve"));
        self.wait_for_server();
    }

    fn wait_for_server(&self) {
        let deadline = Instant::now() + WAIT;
        while !(self.socket.exists() && TcpStream::connect(&self.http).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "eric serve did not listen at {} and {} within {WAIT:?}",
                self.socket.display(),
                self.http
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The listeners of every channel, from `GET /`.
    fn listener_count(&self) -> usize {
        let mut stream = TcpStream::connect(&self.http)
            .unwrap_or_else(|error| panic!("no HTTP server at {}: {error}", self.http));
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let snapshot: BTreeMap<String, Vec<String>> = serde_json::from_str(body)
            .unwrap_or_else(|error| panic!("GET / answered {answer:?}: {error}"));
        snapshot.values().map(Vec::len).sum()
    }

    /// What the commands printed, as the page would show it.
    fn printed(&self) -> String {
        let text = String::from_utf8_lossy(&self.pending)
            .replace(SENTINEL, "")
            .replace(&self.http, DOCS_HTTP);
        with_docs_epochs(&text, &mut self.epoch.borrow_mut())
    }

    /// Marks the end of what finished commands printed, and reads up to the mark.
    fn read_to_sentinel(&mut self, at: &str) {
        self.terminal.write_all(SENTINEL.as_bytes()).unwrap();
        let deadline = Instant::now() + WAIT;
        while !String::from_utf8_lossy(&self.pending).contains(SENTINEL) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(_) => panic!("{at}: the output of the session stopped"),
            }
        }
    }

    /// Waits until what was printed since the last match is `expected`, then consumes it.
    fn expect(&mut self, expected: &[String], at: &str, command: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let printed = self.printed();
            if lines_match(expected, &printed_lines(&printed)) {
                self.pending.clear();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let more = if left.is_zero() {
                None
            } else {
                self.output.recv_timeout(left).ok()
            };
            match more {
                Some(chunk) => self.pending.extend(chunk),
                None => panic!(
                    "{at}: `{command}` printed\n{}instead of what the page shows:\n{}",
                    show(&printed_lines(&printed)),
                    show(expected)
                ),
            }
        }
    }

    /// Runs one command of a session as the page shows it.
    fn run(&mut self, step: &Step, page_at: &str) {
        let at = format!("{page_at} (the command on line {})", step.line);
        let mut text = step.command.replace(DOCS_HTTP, &self.http);
        if let Some(epoch) = self.epoch.borrow().as_deref() {
            text = text.replace(DOCS_EPOCH, epoch);
        }
        // A stream of a new listener: the next command may broadcast to it, so it must be
        // registered first, as it would be long before a person typed the next command.
        let opens_listener = step.background
            && (text.contains(" watch ")
                || text.contains("/watch/")
                || text.contains(r#""v": "w""#));
        let listeners_before = if opens_listener {
            self.listener_count()
        } else {
            0
        };
        let mut shell = self.command("bash");
        // `(exit N)` gives the command the `$?` of the one before, for `echo $?`.
        shell
            .arg("-c")
            .arg(format!("(exit {}); {text}", self.status));
        let mut group = Group::spawn(shell, &format!("`{}`", step.command));
        if step.background {
            self.expect(&step.expected, &at, &step.command);
            if opens_listener {
                let deadline = Instant::now() + WAIT;
                while self.listener_count() <= listeners_before {
                    assert!(
                        Instant::now() < deadline,
                        "{at}: `{}` registered no listener within {WAIT:?}",
                        step.command
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if step.command.starts_with("eric serve") {
                self.wait_for_server();
            }
            self.background.push(group);
            self.status = 0;
        } else if step.interrupt {
            self.expect(&step.expected, &at, &step.command);
            group.signal(rustix::process::Signal::INT);
            let status = group.wait();
            self.status = self.ended(status, &at, &format!("`{}` after ^C", step.command));
        } else {
            let status = group.wait();
            self.status = self.ended(status, &at, &format!("`{}`", step.command));
            self.read_to_sentinel(&at);
            self.expect(&step.expected, &at, &step.command);
        }
    }

    /// The `$?` of a command that ended; a failure showing what it printed if it did not.
    fn ended(&mut self, status: Option<ExitStatus>, at: &str, what: &str) -> i32 {
        match status {
            Some(status) => shell_status(status),
            None => {
                self.read_to_sentinel(at);
                panic!(
                    "{at}: {what} did not end within {WAIT:?}; it printed\n{}(a stream the \
                     page shows ending needs `^C` after its output)",
                    show(&printed_lines(&self.printed()))
                )
            }
        }
    }

    /// Checks that nothing was printed after the last command's output.
    fn finish(&mut self, at: &str) {
        self.read_to_sentinel(at);
        let printed = self.printed();
        assert!(
            printed.is_empty(),
            "{at}: the session printed more than the page shows, after its last command:\n{}",
            show(&printed_lines(&printed))
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.background.clear();
        self.server = None;
    }
}

/// A command of a console block and what it prints.
#[derive(Debug)]
struct Step {
    /// The line of the command in the page.
    line: usize,
    command: String,
    background: bool,
    /// The output ends with `^C`: interrupt the command once the rest is printed.
    interrupt: bool,
    expected: Vec<String>,
}

/// The commands of a console block.
fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (offset, line) in block.body.lines().enumerate() {
        let continues = steps
            .last()
            .is_some_and(|step| step.command.ends_with('\\') && step.expected.is_empty());
        if continues {
            let step = steps.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: block.line + 1 + offset,
                command: command.to_owned(),
                background: false,
                interrupt: false,
                expected: Vec::new(),
            });
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("{}: output before the first `$ ` command", block.at()));
            step.expected.push(line.to_owned());
        }
    }
    for step in &mut steps {
        let command = step.command.trim_end();
        if command.ends_with('&') && !command.ends_with("&&") {
            step.command = command.trim_end_matches('&').trim_end().to_owned();
            step.background = true;
        }
        if step.expected.last().is_some_and(|line| line == "^C") {
            step.expected.pop();
            step.interrupt = true;
        }
    }
    steps
}

fn run_console(block: &Block) {
    let steps = steps(block);
    let mut session = Session::new();
    if !steps
        .iter()
        .any(|step| step.command.starts_with("eric serve"))
    {
        session.start_server();
    }
    for step in &steps {
        session.run(step, &block.at());
    }
    session.finish(&block.at());
}

fn run_python(block: &Block, interpreter: &Path) {
    run_program(block, interpreter, &[], "example.py", "Python");
}

/// Runs `block` as the program `file` with `interpreter` and its `flags`, against a
/// server of its own, and checks what it prints; `what` names the language.
fn run_program(block: &Block, interpreter: &Path, flags: &[&str], file: &str, what: &str) {
    let mut session = Session::new();
    session.start_server();
    let script = session.dir.path().join(file);
    std::fs::write(&script, block.body.replace(DOCS_HTTP, &session.http)).unwrap();
    let mut command = session.command(interpreter);
    command.args(flags).arg(&script).stderr(Stdio::piped());
    let mut group = Group::spawn(command, &format!("the {what} example at {}", block.at()));
    let mut stderr = group.child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = group.wait().unwrap_or_else(|| {
        panic!(
            "{}: the {what} example did not end within {WAIT:?}",
            block.at()
        )
    });
    let errors = errors.join().unwrap();
    assert!(
        status.success(),
        "{}: the {what} example failed ({status}):\n{errors}",
        block.at()
    );
    session.read_to_sentinel(&block.at());
    let expected = expected_lines(block.expected_output.as_deref().unwrap_or(""));
    let printed = session.printed();
    assert!(
        lines_match(&expected, &printed_lines(&printed)),
        "{}: the {what} example printed\n{}instead of what the page shows:\n{}{}",
        block.at(),
        show(&printed_lines(&printed)),
        show(&expected),
        if errors.is_empty() {
            String::new()
        } else {
            format!("and on stderr:\n{errors}")
        }
    );
}

/// The interpreter that has the Python reference: `$ERIC_PYTHON`, else the workspace's
/// `.venv`; fails with what to do when there is none.
fn reference_python() -> PathBuf {
    let python = std::env::var_os("ERIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    let probe = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata; print(importlib.metadata.version('eric-sse'))",
        ])
        .output();
    let version = probe
        .as_ref()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    assert_eq!(
        version.as_deref(),
        Some("0.6.0.3"),
        "{} has no eric-sse 0.6.0.3: create the venv at the workspace root (`python3 -m venv \
         .venv && .venv/bin/pip install eric-sse==0.6.0.3`) or point ERIC_PYTHON at an \
         interpreter that has it",
        python.display()
    );
    python
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn every_block_is_run_or_marked_illustrative() {
    let mut found: BTreeMap<String, Counts> = BTreeMap::new();
    for page in pages() {
        found.entry(page).or_default();
    }
    for (block, kind) in classified() {
        found.entry(block.page.clone()).or_default().count(kind);
        if kind == Kind::Console || kind == Kind::Netcat {
            let steps = steps(&block);
            assert!(
                !steps.is_empty(),
                "{}: a session without a command",
                block.at()
            );
        }
    }
    let expected: BTreeMap<String, Counts> = EXPECTED
        .iter()
        .map(|(page, counts)| ((*page).to_owned(), *counts))
        .collect();
    assert_eq!(
        found, expected,
        "the examples of the pages changed: update EXPECTED in tests/docs_examples.rs if that \
         was on purpose"
    );
}

#[test]
fn console_sessions_print_what_the_pages_show() {
    require("curl", &["--version"], "curl", "install curl");
    require("bash", &["--version"], "bash", "install bash");
    require_interruptible();
    for block in examples(Kind::Console) {
        run_console(&block);
    }
}

#[test]
#[ignore = "needs OpenBSD netcat (Debian: netcat-openbsd)"]
fn netcat_sessions_print_what_the_pages_show() {
    require(
        "nc",
        &["-h"],
        "OpenBSD netcat",
        "install OpenBSD netcat (Debian: apt install netcat-openbsd)",
    );
    require_interruptible();
    for block in examples(Kind::Netcat) {
        run_console(&block);
    }
}

#[test]
fn python_examples_print_what_the_pages_show() {
    require("python3", &["--version"], "Python 3", "install python3");
    for block in examples(Kind::Python) {
        run_python(&block, Path::new("python3"));
    }
}

#[test]
#[ignore = "needs node (20.18 or later, for --experimental-eventsource)"]
fn javascript_examples_print_what_the_pages_show() {
    require("node", &["--version"], "v", "install nodejs");
    for block in examples(Kind::JavaScript) {
        let page_code = block.attributes.iter().any(|a| a == "browser");
        let flags: &[&str] = if page_code {
            &["--experimental-eventsource"]
        } else {
            &[]
        };
        run_program(
            &block,
            Path::new("node"),
            flags,
            "example.mjs",
            "JavaScript",
        );
    }
}

#[test]
#[ignore = "needs the Python reference (eric-sse 0.6.0.3): ERIC_PYTHON or .venv"]
fn python_examples_with_the_reference_print_what_the_pages_show() {
    let python = reference_python();
    for block in examples(Kind::PythonReference) {
        run_python(&block, &python);
    }
}

#[test]
fn placeholders_match_any_text_and_any_lines() {
    let expected = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    assert!(line_matches("a [..] c", "a b c"));
    assert!(line_matches(
        "[..]Z  INFO x",
        "2026-01-01T00:00:00Z  INFO x"
    ));
    assert!(line_matches("a[..]b[..]c", "a1b2c"));
    assert!(!line_matches("a[..]b[..]c", "a1c2b"));
    assert!(!line_matches("ab[..]ba", "aba"));
    assert!(!line_matches("exact", "exact "));
    assert!(lines_match(&expected(&["x", "...", "z"]), &["x", "z"]));
    assert!(lines_match(
        &expected(&["x", "...", "z"]),
        &["x", "y", "y", "z"]
    ));
    assert!(!lines_match(&expected(&["x", "..."]), &["y"]));
    assert!(!lines_match(&expected(&["x"]), &["x", ""]));
    assert_eq!(printed_lines("1"), ["1"]);
    assert_eq!(printed_lines("retry: 1000\n\n"), ["retry: 1000", ""]);
    assert!(printed_lines("").is_empty());
}

#[test]
fn event_ids_read_with_the_pages_epoch() {
    let mut seen = None;
    let text = "id: 0123456789abcdef-12\nx 0123456789abcdef-1 a0123456789abcdef-1 beef-2\n";
    assert_eq!(
        with_docs_epochs(text, &mut seen),
        format!("id: {DOCS_EPOCH}-12\nx {DOCS_EPOCH}-1 a0123456789abcdef-1 beef-2\n")
    );
    assert_eq!(seen.as_deref(), Some("0123456789abcdef"));
}

#[test]
fn a_session_is_read_as_commands_and_their_output() {
    let block = Block {
        page: "page.md".to_owned(),
        line: 10,
        language: "console".to_owned(),
        attributes: Vec::new(),
        body: "$ curl -X POST url \\\n       -d '{}'\nnull\n$ curl -N url &\nretry: 1000\n\n$ eric listen 1 1\na null\n^C\n".to_owned(),
        expected_output: None,
    };
    let steps = steps(&block);
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0].command, "curl -X POST url \\\n       -d '{}'");
    assert_eq!(
        (steps[0].line, steps[0].expected.as_slice()),
        (11, &["null".to_owned()][..])
    );
    assert!(steps[1].background && !steps[1].interrupt);
    assert_eq!(steps[1].command, "curl -N url");
    assert_eq!(steps[1].expected, ["retry: 1000", ""]);
    assert!(steps[2].interrupt && !steps[2].background);
    assert_eq!(steps[2].expected, ["a null"]);
}

#[test]
fn unmarked_shell_blocks_and_unknown_languages_are_refused() {
    let block = |language: &str, attributes: &[&str]| Block {
        page: "page.md".to_owned(),
        line: 1,
        language: language.to_owned(),
        attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
        body: String::new(),
        expected_output: None,
    };
    assert!(block("sh", &[]).kind().is_err());
    assert!(block("cobol", &[]).kind().is_err());
    assert!(block("", &[]).kind().is_err());
    assert_eq!(block("sh", &["ignore"]).kind(), Ok(Kind::Illustrative));
    assert_eq!(block("console", &["netcat"]).kind(), Ok(Kind::Netcat));
    assert_eq!(
        block("python", &["eric-sse"]).kind(),
        Ok(Kind::PythonReference)
    );
}
