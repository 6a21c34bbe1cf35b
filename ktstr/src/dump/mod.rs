//! The failure dump: its records are wire types ([`crate::wire::dump`]);
//! this module turns a map's raw bytes into those records' JSON values by
//! the map's BTF types ([`value`]).

pub mod value;

pub use crate::wire::dump::{FailureDump, MapDump, MapEntry, ProgStats};
