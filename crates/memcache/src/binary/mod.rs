//! The binary protocol (magic 0x80 requests, 0x81 responses).

pub mod header;
pub mod request;
pub mod response;

pub use header::{HEADER_LEN, Header, Opcode, REQUEST_MAGIC, RESPONSE_MAGIC, Status};
pub use request::{BinaryRequest, error_reply};
pub use response::{BinaryResponse, decode_binary_response};
