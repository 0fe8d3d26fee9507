#![no_main]
//! `cargo fuzz run -s none projected_token`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("projected_token") {
        (target.run)(data);
    }
});
