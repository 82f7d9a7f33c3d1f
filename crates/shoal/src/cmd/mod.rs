//! One module per subcommand.

pub mod hash;
pub mod repair;
pub mod route;
