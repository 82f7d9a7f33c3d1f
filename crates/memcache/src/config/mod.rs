//! moxi's configuration forms: `-z` cluster configs and `-Z` behaviours.

mod moxi;

pub use moxi::{Behaviors, MoxiError, ZListener, parse_behaviors, parse_z};
