//! `eric-load floor`: the least a server can do per W5 command, to measure what this
//! machine allows before any server logic.
//!
//! One thread, blocking system calls, the same ones as the accept thread of eric's
//! server: accept, wait for the half-close (`poll`), peek at the command, write the
//! answer, take the command off the socket, close. (Taking it before answering would
//! wake the client once more.) It answers `c` and `r` with
//! `1` and every other command with `ack`, without parsing JSON or keeping anything, so
//! W5a and W5b run against it unchanged. Their rates against it are the ceiling for any
//! server on the same machine and client, since one connection per command is the
//! protocol.

use clap::Args as ClapArgs;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The socket file to create (replaced if it exists).
    #[arg(long)]
    socket: PathBuf,
}

/// Serves until killed.
pub fn serve(args: Args) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::net::{recv, send, RecvFlags, SendFlags};
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)?;
    let mut command = vec![0u8; 64 * 1024];
    for stream in listener.incoming() {
        let stream = stream?;
        let mut hang_up = [PollFd::new(&stream, PollFlags::RDHUP)];
        if poll(&mut hang_up, None).is_err() {
            continue;
        }
        let Ok((length, _)) = recv(&stream, &mut command[..], RecvFlags::PEEK) else {
            continue;
        };
        let answer: &[u8] = if creates(&command[..length]) {
            b"1"
        } else {
            b"ack"
        };
        let _ = send(&stream, answer, SendFlags::NOSIGNAL);
        let _ = recv(&stream, &mut command[..length], RecvFlags::empty());
    }
    Ok(())
}

/// Whether the command is `c` or `r`, whose answer is an id; W5 spells verbs `"v": "x"`.
fn creates(command: &[u8]) -> bool {
    command
        .windows(8)
        .any(|verb| verb == br#""v": "c""# || verb == br#""v": "r""#)
}
