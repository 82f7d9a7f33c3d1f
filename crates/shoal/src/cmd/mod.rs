//! One module per subcommand.

pub mod hash;
pub mod members;
pub mod memcache;
pub mod repair;
pub mod route;
pub mod serve;
pub mod upload;
