#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| vmpath::fuzzing::frr_vty(data));
