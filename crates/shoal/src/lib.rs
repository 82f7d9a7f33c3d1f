//! The `shoal` binary's library half: the command line, configuration, the admin server and
//! the operator tools. Each door lives in its own crate; this crate wires them to flags,
//! config files, logs and metrics.
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod group_metrics;
pub mod shutdown;
pub mod telemetry;
pub mod units;
