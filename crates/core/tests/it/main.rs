//! Integration tests of podseal-core's public API, one binary of modules.

mod envelope;
