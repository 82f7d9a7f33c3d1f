//! moxi's configuration forms: `-z` cluster configs and `-Z` behaviours.

mod moxi;

pub use moxi::{Behaviors, MoxiError, ZConfig, ZListener, parse_behaviors, parse_z};
