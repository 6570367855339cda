//! The committed seed corpus of the SSE parser's fuzz target (`fuzz/corpus/sse_parser/`),
//! replayed on stable through the same check the target runs
//! (`eric_sse::fuzzing::check_parser`).

use std::path::PathBuf;

#[test]
fn the_sse_parser_corpus_passes_its_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sse_parser");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{} holds {} seeds",
        dir.display(),
        files.len()
    );
    for file in files {
        let input = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| eric_sse::fuzzing::check_parser(&input));
        assert!(outcome.is_ok(), "{} fails its check", file.display());
    }
}
