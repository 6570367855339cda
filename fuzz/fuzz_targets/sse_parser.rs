//! The SSE parser against the spec's algorithm, for any chunking.
//! The check is `eric_sse::fuzzing::check_parser`, which the stable tests also run on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eric_sse::fuzzing::check_parser(data));
