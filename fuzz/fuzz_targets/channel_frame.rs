//! The guest channel's frame decoder (`ktstr::channel::Decoder`): bytes
//! from the guest's serial port in, messages out. The same bytes fed
//! whole and split at an input-chosen point must decode to the same
//! messages; every message decoded must survive its own encoding; and the
//! host's pipeline (outcome, judge, report, auto-repro's plan) runs over
//! what came out.
//!
//! Input: `split: u16 LE | sel: u8 | channel bytes`.

#![no_main]

use ktstr::channel::{encode, Decoder};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn decode(chunks: &[&[u8]]) -> (Vec<ktstr::channel::GuestMessage>, Decoder) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(ktstr::fuzz_api::feed(&mut d, c));
    }
    out.extend(d.finish());
    (out, d)
}

fuzz_target!(|data: &[u8]| {
    let mut h = common::Header::new(data);
    let split = usize::from(h.u16());
    let sel = h.u8();
    let bytes = h.rest;
    let (whole, d) = decode(&[bytes]);
    let at = split % (bytes.len() + 1);
    let (parts, _) = decode(&[&bytes[..at], &bytes[at..]]);
    assert_eq!(whole, parts, "split at {at} changed what decodes");
    assert!(d.damaged_bytes <= bytes.len(), "more bytes damaged than fed");
    for m in &whole {
        let (again, d2) = decode(&[&encode(m)]);
        assert_eq!(again.as_slice(), std::slice::from_ref(m), "a decoded message does not survive its encoding");
        assert_eq!((d2.damaged_bytes, d2.damaged_frames), (0, 0));
    }
    let o = ktstr::fuzz_api::outcome(common::vm_output(String::new(), whole, sel));
    common::report(&o, &common::checks(sel, u32::from(sel)));
});
