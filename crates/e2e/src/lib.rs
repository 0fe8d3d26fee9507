//! Nothing to link: this package holds the end-to-end tests (`tests/`) and
//! the served-path benchmark (`benches/`).
