//! Where the socket lives by default, and the private directory that holds it.

use crate::error::{CliError, Exit};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The file name of the socket in its directory.
const SOCKET_NAME: &str = "eric.sock";

/// The default socket path: `$XDG_RUNTIME_DIR/eric.sock`, else `/tmp/eric-$UID/eric.sock`.
///
/// `$XDG_RUNTIME_DIR` is private to the user by definition. Under `/tmp` the directory is
/// named after the user so that two users of one machine do not collide, and `eric serve`
/// creates it with mode 0700.
pub fn default_socket_path() -> PathBuf {
    default_socket_path_from(std::env::var_os("XDG_RUNTIME_DIR"), current_user())
}

fn default_socket_path_from(runtime_dir: Option<OsString>, user: String) -> PathBuf {
    match runtime_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(SOCKET_NAME),
        None => PathBuf::from(format!("/tmp/eric-{user}")).join(SOCKET_NAME),
    }
}

/// The uid of this process, as text; else `$USER`; else `user`.
fn current_user() -> String {
    current_uid()
        .map(|uid| uid.to_string())
        .or_else(|| std::env::var("USER").ok().filter(|user| !user.is_empty()))
        .unwrap_or_else(|| "user".to_owned())
}

/// The uid of this process, without libc: the owner of `/proc/self` on Linux, else the
/// owner of a file this process creates.
pub fn current_uid() -> Option<u32> {
    if let Ok(metadata) = std::fs::metadata("/proc/self") {
        return Some(metadata.uid());
    }
    let probe = std::env::temp_dir().join(format!(".eric-uid-probe-{}", std::process::id()));
    let file = std::fs::File::create(&probe).ok()?;
    let uid = file.metadata().ok().map(|metadata| metadata.uid());
    drop(file);
    let _ = std::fs::remove_file(&probe);
    uid
}

/// Makes sure `dir` exists and is private to this user: creates it with mode 0700, or
/// checks that an existing one is a real directory owned by this user that nobody else
/// may write to (a directory someone else made under `/tmp` could hijack the socket).
pub fn ensure_private_dir(dir: &Path) -> Result<(), CliError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(CliError::io(
                format_args!("cannot create the socket directory {}", dir.display()),
                error,
            ))
        }
    }
    let metadata = std::fs::symlink_metadata(dir)
        .map_err(|error| CliError::io(format_args!("cannot inspect {}", dir.display()), error))?;
    let refuse = |why: &str| {
        CliError::new(
            Exit::Io,
            format!(
                "refusing to use {} for the socket: {why}; remove it, or choose another path with --socket",
                dir.display()
            ),
        )
    };
    if !metadata.is_dir() {
        return Err(refuse("it is not a directory"));
    }
    if let Some(uid) = current_uid() {
        if metadata.uid() != uid {
            return Err(refuse(&format!(
                "it belongs to uid {}, not to you (uid {uid})",
                metadata.uid()
            )));
        }
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(refuse(&format!(
            "others may write to it (mode {:o})",
            metadata.mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_runtime_dir_wins_when_set() {
        assert_eq!(
            default_socket_path_from(Some("/run/user/1000".into()), "1000".into()),
            Path::new("/run/user/1000/eric.sock")
        );
    }

    #[test]
    fn without_a_runtime_dir_the_socket_goes_to_a_per_user_tmp_dir() {
        assert_eq!(
            default_socket_path_from(None, "1000".into()),
            Path::new("/tmp/eric-1000/eric.sock")
        );
        assert_eq!(
            default_socket_path_from(Some("".into()), "1000".into()),
            Path::new("/tmp/eric-1000/eric.sock")
        );
    }

    #[test]
    fn the_uid_is_found_without_libc() {
        let uid = current_uid().expect("a uid");
        let probe = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(probe.as_file().metadata().unwrap().uid(), uid);
    }

    #[test]
    fn a_private_dir_is_created_0700_and_reused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("eric");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_dir_others_may_write_to_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("open");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = ensure_private_dir(&dir).unwrap_err();
        assert!(error.message.contains("others may write"), "{error}");
    }
}
