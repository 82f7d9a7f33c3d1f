//! moxi's configuration forms (`-z` cluster configs and `-Z` behaviours) and twemproxy's
//! nutcracker.yml.

mod moxi;
mod nutcracker;

pub use moxi::{Behaviors, MoxiError, ZConfig, ZListener, parse_behaviors, parse_z};
pub use nutcracker::{MAX_CONNS, NutcrackerError, NutcrackerPool, parse_nutcracker};
