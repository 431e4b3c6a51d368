//! libFuzzer entry point: every input is a program for [`mrconn_core_fuzz::run`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mrconn_core_fuzz::run(data));
