#![no_main]
//! `cargo fuzz run -s none config`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("config") {
        (target.run)(data);
    }
});
