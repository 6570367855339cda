//! The socket command parser: both parse paths agree, commands and errors read back.
//! The check is `eric_socket::fuzzing::check_command`, which the stable tests also run on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eric_socket::fuzzing::check_command(data));
