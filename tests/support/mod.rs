//! Shared helpers for the integration tests: `mod support;` in a test file.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod cli;
pub mod deploy;
pub mod job;
pub mod kafka;
pub mod prometheus;
pub mod python;
pub mod recovery;
