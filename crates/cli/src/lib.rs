//! The `atende` binary's library: role dispatch (shared with the end-to-end tests, so they
//! boot exactly what `atende all` boots), the local demo, operator commands and the
//! simulator command.

pub mod demo;
pub mod ops;
pub mod roles;
pub mod simulate;

pub use atende_config::Config;
