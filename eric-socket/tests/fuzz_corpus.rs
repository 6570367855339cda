//! The committed seed corpus of the fuzz targets (`fuzz/corpus/<target>/`), replayed on
//! stable through the same checks the targets run (`eric_socket::fuzzing`): what the
//! fuzzers found once stays found.

use std::path::Path;

/// Runs `check` on every file of the corpus of `target`, which must hold some.
fn replay(target: &str, check: fn(&[u8])) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eric_sse::fuzzing::replay_corpus(&workspace, target, check);
}

#[test]
fn the_socket_command_corpus_passes_its_check() {
    replay("socket_command", eric_socket::fuzzing::check_command);
}

#[test]
fn the_python_json_corpus_passes_its_check() {
    replay("python_json", eric_socket::fuzzing::check_python_json);
}

#[cfg(feature = "http")]
#[test]
fn the_http_head_corpus_passes_its_check() {
    replay("http_head", eric_socket::fuzzing::check_http_head);
}

#[cfg(feature = "http")]
#[test]
fn the_access_corpus_passes_its_check() {
    replay("access", eric_socket::fuzzing::check_access);
}
