//! The committed seed corpus of the SSE parser's fuzz target (`fuzz/corpus/sse_parser/`),
//! replayed on stable through the same check the target runs
//! (`eric_sse::fuzzing::check_parser`).

use std::path::Path;

#[test]
fn the_sse_parser_corpus_passes_its_check() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eric_sse::fuzzing::replay_corpus(&workspace, "sse_parser", eric_sse::fuzzing::check_parser);
}
