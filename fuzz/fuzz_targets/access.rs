//! The access checks of the HTTP server: the channel glob against a plain reference, the
//! token reader on any header, cookie and query, and tokens signed over any claims.
//! The check is `eric_socket::fuzzing::check_access`, which the stable tests also run on
//! the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eric_socket::fuzzing::check_access(data));
