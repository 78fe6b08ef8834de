//! Fuzz target: see [`meerkat_tests::fuzz::config_parser`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meerkat_tests::fuzz::config_parser(data));
