//! Failures of a command and the exit code each one maps to.

use eric_socket::ClientError;
use std::fmt;
use std::io;
use std::path::Path;

/// The exit codes of `eric`, as documented in `eric --help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not covered below (an answer the CLI does not understand, a server error).
    Other = 1,
    /// 3: no server answers at the socket path or the HTTP address.
    NoServer = 3,
    /// 4: the server refused the command (unknown channel or listener, id taken, queue full).
    Refused = 4,
    /// 5: the input is invalid (a payload that is not JSON, an `--http` host that does not
    /// resolve). An address that does not parse at all is a usage error (2), reported by
    /// clap before anything runs.
    InvalidInput = 5,
    /// 6: an I/O error (reading stdin, writing stdout, binding a socket, a dropped connection).
    Io = 6,
}

/// The table printed at the end of `eric --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (a stream ended by the server or by Ctrl-C is a success too)
  1  other failure (an unexpected answer, a server error)
  2  usage error (unknown flag, missing argument, a value that does not parse, such as --http nope)
  3  no server: nothing answers at the socket path (or, for the verbs that use it, the HTTP address)
  4  the server refused the command (unknown channel or listener, id taken, queue full)
  5  invalid input (a payload that is not JSON, an --http host that does not resolve)
  6  I/O error (reading stdin, writing stdout, binding a socket, a socket you may not connect to, a dropped connection)";

/// A failed command: what went wrong, phrased for the user, and its exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// The message printed on stderr after `error: `.
    pub message: String,
}

impl CliError {
    /// A failure with exit code `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }

    /// Invalid input (exit 5).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        CliError::new(Exit::InvalidInput, message)
    }

    /// An I/O failure while doing `what` (exit 6).
    pub fn io(what: impl fmt::Display, error: io::Error) -> Self {
        CliError::new(Exit::Io, format!("{what}: {error}"))
    }
}

impl fmt::Display for CliError {
    /// The message on one line: its control characters escaped as Rust writes them
    /// (`\n`, `\u{1b}`), since parts of it (ids, a server's words) are not ours, and
    /// a line break in them must not start a line of its own on stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ch in self.message.chars() {
            if ch.is_control() {
                write!(f, "{}", ch.escape_debug())?;
            } else {
                fmt::Write::write_char(f, ch)?;
            }
        }
        Ok(())
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NoServer { .. } => CliError::new(Exit::NoServer, error.to_string()),
            ClientError::Io {
                ref path,
                ref source,
            } if source.kind() == io::ErrorKind::PermissionDenied => {
                let hint = permission_hint(path);
                CliError::new(Exit::Io, format!("{error}{hint}"))
            }
            ClientError::Io { .. } => CliError::new(Exit::Io, error.to_string()),
            ClientError::Server { name, message } => {
                let hint = match name.as_str() {
                    "InvalidChannelException" => {
                        " (see the channels with `eric channel list`, or make one with `eric channel create`)"
                    }
                    "InvalidListenerException" => {
                        " (add a listener with `eric listener add CHANNEL`)"
                    }
                    _ => "",
                };
                let message = if message.is_empty() {
                    format!("the server refused the command: {name}{hint}")
                } else {
                    format!("the server refused the command: {name}: {message}{hint}")
                };
                CliError::new(Exit::Refused, message)
            }
            other => CliError::new(Exit::Other, other.to_string()),
        }
    }
}

/// What to do when the socket refuses a connection for lack of permission: the socket's
/// mode admits its owner only unless the server says otherwise, and a new group
/// membership counts only in a new login.
fn permission_hint(path: &Path) -> String {
    format!(
        " (the socket or its directory does not let you in: `eric serve` makes it with mode \
         600, its owner only; see its owner and group with `ls -l {path}`, and connect as that \
         user, or serve with --socket-mode 660 and join the group: `sudo usermod -aG GROUP \
         \"$USER\"`, then log in again or run `newgrp GROUP`)",
        path = path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_command_names_the_exception_and_the_fix() {
        let error = CliError::from(ClientError::Server {
            name: "InvalidChannelException".into(),
            message: "No channel with id 9".into(),
        });
        assert_eq!(error.exit, Exit::Refused);
        assert!(error.message.contains("No channel with id 9"));
        assert!(error.message.contains("eric channel create"));
    }

    #[test]
    fn a_line_break_in_what_the_server_says_stays_on_the_error_line() {
        let error = CliError::from(ClientError::Server {
            name: "InvalidChannelException".into(),
            message: "No channel with id x\n2026-12-03T00:00:00Z ERROR forged\r\u{1b}[31m".into(),
        });
        let shown = error.to_string();
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(
            shown.contains(r"x\n2026-12-03T00:00:00Z ERROR forged\r\u{1b}[31m"),
            "{shown}"
        );
    }

    #[test]
    fn no_server_keeps_the_clients_advice() {
        let error = CliError::from(ClientError::NoServer {
            path: "/tmp/x.sock".into(),
        });
        assert_eq!(error.exit, Exit::NoServer);
        assert!(error.message.contains("eric serve"));
    }

    #[test]
    fn permission_denied_on_the_socket_says_how_to_get_in() {
        let error = CliError::from(ClientError::Io {
            path: "/run/eric/eric.sock".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        });
        assert_eq!(error.exit, Exit::Io);
        assert!(error.message.contains("/run/eric/eric.sock"), "{error}");
        assert!(error.message.contains("--socket-mode 660"), "{error}");
        assert!(error.message.contains("usermod -aG"), "{error}");
        assert!(error.message.contains("newgrp"), "{error}");
    }

    #[test]
    fn other_io_errors_get_no_permission_hint() {
        let error = CliError::from(ClientError::Io {
            path: "/tmp/x.sock".into(),
            source: io::Error::from(io::ErrorKind::ConnectionReset),
        });
        assert_eq!(error.exit, Exit::Io);
        assert!(!error.message.contains("newgrp"), "{error}");
    }
}
