//! Failures of a command and the exit code each one maps to.

use eric_socket::ClientError;
use std::fmt;
use std::io;

/// The exit codes of `eric`, as documented in `eric --help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything not covered below (an answer the CLI does not understand, a server error).
    Other = 1,
    /// 3: no server answers at the socket path or the HTTP address.
    NoServer = 3,
    /// 4: the server refused the command (unknown channel or listener, id taken, queue full).
    Refused = 4,
    /// 5: the input is invalid (a payload that is not JSON, an address that does not parse).
    InvalidInput = 5,
    /// 6: an I/O error (reading stdin, writing stdout, binding a socket, a dropped connection).
    Io = 6,
}

/// The table printed at the end of `eric --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (a stream ended by the server or by Ctrl-C is a success too)
  1  other failure (an unexpected answer, a server error)
  2  usage error (unknown flag, missing argument)
  3  no server: nothing answers at the socket path (or, for the verbs that use it, the HTTP address)
  4  the server refused the command (unknown channel or listener, id taken, queue full)
  5  invalid input (a payload that is not JSON, an address that does not parse)
  6  I/O error (reading stdin, writing stdout, binding a socket, a dropped connection)";

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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NoServer { .. } => CliError::new(Exit::NoServer, error.to_string()),
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
    fn no_server_keeps_the_clients_advice() {
        let error = CliError::from(ClientError::NoServer {
            path: "/tmp/x.sock".into(),
        });
        assert_eq!(error.exit, Exit::NoServer);
        assert!(error.message.contains("eric serve"));
    }
}
