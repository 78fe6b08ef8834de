//! Fuzz target: see [`meerkat_tests::fuzz::s2s_stream`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| meerkat_tests::fuzz::s2s_stream(data));
