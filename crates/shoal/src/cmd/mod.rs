//! One module per subcommand.

pub mod hash;
pub mod serve;
