//! Fuzz target: see [`meerkat_tests::fuzz::sasl_server`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meerkat_tests::fuzz::sasl_server(data));
