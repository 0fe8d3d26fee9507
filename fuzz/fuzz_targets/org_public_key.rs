#![no_main]
//! `cargo fuzz run -s none org_public_key`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("org_public_key") {
        (target.run)(data);
    }
});
