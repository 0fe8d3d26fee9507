#![no_main]
//! `cargo fuzz run -s none release_request`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("release_request") {
        (target.run)(data);
    }
});
