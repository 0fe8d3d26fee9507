#![no_main]
//! `cargo fuzz run -s none inclusion_proof`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("inclusion_proof") {
        (target.run)(data);
    }
});
