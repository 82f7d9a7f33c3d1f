//! The ascii protocol: classic commands, their replies, and the line rules they share with
//! meta commands.

pub(crate) mod line;
pub(crate) mod parse;
pub mod request;
pub mod response;

pub use line::KEY_MAX;
pub use request::{
    Arith, ArithKind, AsciiRequest, Delete, FlushAll, Get, Stats, Store, StoreKind, Touch,
    Verbosity,
};
pub use response::{MetaCode, MetaResponse, Response, Value, decode_response};
