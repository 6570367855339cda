//! The Python-style JSON writer: read back by serde_json as the same value.
//! The check is `eric_socket::fuzzing::check_python_json`, which the stable tests also run on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eric_socket::fuzzing::check_python_json(data));
