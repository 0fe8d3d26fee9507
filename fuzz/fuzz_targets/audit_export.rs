#![no_main]
//! `cargo fuzz run -s none audit_export`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("audit_export") {
        (target.run)(data);
    }
});
