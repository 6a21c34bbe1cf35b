//! Auto-repro's probe data: its records are wire types
//! ([`crate::wire::probe`]: the plan the host sends, the trail the guest
//! returns); this module decodes a probed value into the words the trail
//! prints ([`decode`]).

pub(crate) mod decode;
pub(crate) mod stitch;

pub use crate::wire::probe::*;
