#![no_main]
//! `cargo fuzz run -s none kube_patch`: see `podseal_fuzz::TARGETS`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(target) = podseal_fuzz::target("kube_patch") {
        (target.run)(data);
    }
});
