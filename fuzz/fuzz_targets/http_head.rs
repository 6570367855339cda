//! The head reader of the direct stream path against httparse.
//! The check is `eric_socket::fuzzing::check_http_head`, which the stable tests also run on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eric_socket::fuzzing::check_http_head(data));
