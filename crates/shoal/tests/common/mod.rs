//! Helpers shared by the binary's integration tests.

// Each test binary uses only some helpers; a panic here is the test failing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod etcd;
pub mod memcache;
pub mod origin;
pub mod route;
pub mod serve;
pub mod tls;
