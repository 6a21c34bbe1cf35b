//! Bytes of a BPF map as JSON with the field names of their BTF type:
//! a section map's DATASEC becomes `{variable: value}`, a struct
//! `{field: value}`, an enum its variant's name. What BTF cannot name
//! (no type, unions, pointers) stays visible as hex, never dropped.

use libbpf_rs::btf::types::Float;
use libbpf_rs::btf::types::{Array, Composite, DataSec, Enum, Enum64, Int, IntEncoding, MemberAttr, Var};
use libbpf_rs::btf::{BtfKind, BtfType, HasSize, ReferencesType, TypeId};
use libbpf_rs::Btf;
use serde_json::{json, Map, Value};

/// Elements of one array shown; the rest are counted.
const ARRAY_MAX: usize = 64;
/// Bytes of one untyped value shown.
const HEX_MAX: usize = 512;
/// Nesting followed; deeper values are shown as hex.
const DEPTH_MAX: usize = 8;

/// `bytes` decoded as type `ty` of `btf` (`None` or an unknown type: hex).
pub(crate) fn decode(btf: Option<&Btf>, ty: u32, bytes: &[u8]) -> Value {
    let found = btf.filter(|_| ty != 0).and_then(|b| Some((b, b.type_by_id::<BtfType>(TypeId::from(ty))?)));
    match found {
        Some((b, t)) => value(b, t, bytes, 0),
        None => hex(bytes),
    }
}

fn value(btf: &Btf, t: BtfType, bytes: &[u8], depth: usize) -> Value {
    let t = t.skip_mods_and_typedefs();
    if depth > DEPTH_MAX {
        return hex(bytes);
    }
    match t.kind() {
        BtfKind::Int => Int::try_from(t).map_or_else(|_| hex(bytes), |i| int(&i, bytes)),
        BtfKind::Enum => Enum::try_from(t).map_or_else(
            |_| hex(bytes),
            |e| {
                let v = signed_le(bytes, e.is_signed());
                enum_name(e.iter().map(|m| (m.name, i128::from(m.value))), v)
            },
        ),
        BtfKind::Enum64 => Enum64::try_from(t).map_or_else(
            |_| hex(bytes),
            |e| {
                let v = signed_le(bytes, e.is_signed());
                enum_name(e.iter().map(|m| (m.name, m.value)), v)
            },
        ),
        BtfKind::Struct => Composite::try_from(t).map_or_else(|_| hex(bytes), |c| composite(btf, &c, bytes, depth)),
        BtfKind::Array => Array::try_from(t).map_or_else(|_| hex(bytes), |a| array(btf, &a, bytes, depth)),
        BtfKind::DataSec => DataSec::try_from(t).map_or_else(|_| hex(bytes), |s| datasec(btf, &s, bytes, depth)),
        BtfKind::Var => {
            Var::try_from(t).map_or_else(|_| hex(bytes), |v| value(btf, v.referenced_type(), bytes, depth + 1))
        }
        // A pointer's value is an address in the kernel: hex, like the rest.
        _ => hex(bytes),
    }
}

fn composite(btf: &Btf, c: &Composite, bytes: &[u8], depth: usize) -> Value {
    let mut out = Map::new();
    for (i, m) in c.iter().enumerate() {
        let name = m.name.map_or_else(|| format!("<anon{i}>"), |n| n.to_string_lossy().into_owned());
        let Some(ty) = btf.type_by_id::<BtfType>(m.ty) else { continue };
        let v = match m.attr {
            MemberAttr::Normal { offset } => {
                let start = offset as usize / 8;
                let size = byte_size(ty);
                match bytes.get(start..start + size) {
                    // An anonymous struct or union's members belong to the parent.
                    Some(b) if m.name.is_none() && ty.skip_mods_and_typedefs().is_composite() => {
                        if let Value::Object(inner) = value(btf, ty, b, depth + 1) {
                            out.extend(inner);
                        }
                        continue;
                    }
                    Some(b) => value(btf, ty, b, depth + 1),
                    None => continue,
                }
            }
            MemberAttr::BitField { size, offset } => bitfield(bytes, offset, size),
        };
        out.insert(name, v);
    }
    // A union's members overlap: naming one would guess. Its bytes stand.
    if !c.is_struct {
        return json!({ "union": hex(bytes), "members": out.keys().cloned().collect::<Vec<_>>() });
    }
    Value::Object(out)
}

fn array(btf: &Btf, a: &Array, bytes: &[u8], depth: usize) -> Value {
    let elem = a.contained_type();
    let size = byte_size(elem);
    if size == 0 {
        return hex(bytes);
    }
    // clang encodes `char` as a signed int named "char".
    let is_char = Int::try_from(elem.skip_mods_and_typedefs())
        .is_ok_and(|i| matches!(i.encoding, IntEncoding::Char) || i.name().is_some_and(|n| n == "char"));
    if is_char {
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        return Value::String(String::from_utf8_lossy(&bytes[..end]).into_owned());
    }
    let n = a.capacity().min(bytes.len() / size);
    let mut items: Vec<Value> =
        (0..n.min(ARRAY_MAX)).map(|i| value(btf, elem, &bytes[i * size..(i + 1) * size], depth + 1)).collect();
    if n > ARRAY_MAX {
        items.push(Value::String(format!("... {} more", n - ARRAY_MAX)));
    }
    Value::Array(items)
}

fn datasec(btf: &Btf, s: &DataSec, bytes: &[u8], depth: usize) -> Value {
    let mut out = Map::new();
    for v in s.iter() {
        let Some(var) = btf.type_by_id::<BtfType>(v.ty) else { continue };
        let name = var.name().map_or_else(|| format!("<var@{}>", v.offset), |n| n.to_string_lossy().into_owned());
        let start = v.offset as usize;
        if let Some(b) = bytes.get(start..start + v.size) {
            out.insert(name, value(btf, var, b, depth + 1));
        }
    }
    Value::Object(out)
}

/// Bytes a value of `t` takes (0: unknown).
fn byte_size(t: BtfType) -> usize {
    let t = t.skip_mods_and_typedefs();
    match t.kind() {
        BtfKind::Int => Int::try_from(t).map_or(0, |x| x.size()),
        BtfKind::Enum => Enum::try_from(t).map_or(0, |x| x.size()),
        BtfKind::Enum64 => Enum64::try_from(t).map_or(0, |x| x.size()),
        BtfKind::Struct | BtfKind::Union => Composite::try_from(t).map_or(0, |x| x.size()),
        BtfKind::Float => Float::try_from(t).map_or(0, |x| x.size()),
        BtfKind::DataSec => DataSec::try_from(t).map_or(0, |x| x.size()),
        BtfKind::Ptr => 8,
        BtfKind::Array => Array::try_from(t).map_or(0, |a| a.capacity() * byte_size(a.contained_type())),
        _ => 0,
    }
}

fn int(i: &Int, bytes: &[u8]) -> Value {
    match i.encoding {
        IntEncoding::Bool => Value::Bool(bytes.iter().any(|b| *b != 0)),
        _ if bytes.len() > 8 => hex(bytes),
        IntEncoding::Signed => json!(signed_le(bytes, true) as i64),
        _ => json!(signed_le(bytes, false) as u64),
    }
}

fn bitfield(bytes: &[u8], bit_offset: u32, bits: u8) -> Value {
    let (start, shift) = ((bit_offset / 8) as usize, bit_offset % 8);
    let mut le = [0u8; 16];
    let avail = bytes.get(start..).unwrap_or(&[]);
    let n = avail.len().min(16);
    le[..n].copy_from_slice(&avail[..n]);
    let v = u128::from_le_bytes(le) >> shift;
    let mask = if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 };
    json!((v & mask) as u64)
}

/// Little-endian bytes (x86) as an integer, sign-extended when `signed`.
fn signed_le(bytes: &[u8], signed: bool) -> i128 {
    let n = bytes.len().min(16);
    if n == 0 {
        return 0;
    }
    let mut le = [0u8; 16];
    le[..n].copy_from_slice(&bytes[..n]);
    let v = u128::from_le_bytes(le);
    let shift = 128 - 8 * n as u32;
    if signed {
        ((v << shift) as i128) >> shift
    } else {
        v as i128
    }
}

fn enum_name<'a>(mut members: impl Iterator<Item = (Option<&'a std::ffi::OsStr>, i128)>, v: i128) -> Value {
    match members.find(|(_, mv)| *mv == v).and_then(|(n, _)| n) {
        Some(n) => Value::String(n.to_string_lossy().into_owned()),
        None => json!(v as i64),
    }
}

/// Bytes without a type: `0x` and hex in memory order, cut after
/// [`HEX_MAX`] bytes (the length says how much there was).
pub fn hex(bytes: &[u8]) -> Value {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 + 2 * bytes.len().min(HEX_MAX));
    s.push_str("0x");
    for b in bytes.iter().take(HEX_MAX) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > HEX_MAX {
        let _ = write!(s, "... ({} bytes)", bytes.len());
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use libbpf_rs::btf::types::{Composite, DataSec};

    use super::*;

    /// Real BTF, as clang emitted it: auto-repro's probe object.
    const OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe.bpf.o"));

    fn btf() -> Btf<'static> {
        Btf::from_raw("probe", OBJ).expect("probe.bpf.o parses").expect("probe.bpf.o has BTF")
    }

    #[test]
    fn a_section_is_its_variables_by_name() {
        let btf = btf();
        let sec = btf.type_by_kind::<DataSec>().find(|s| s.name().is_some_and(|n| n == ".rodata")).unwrap();
        let mut bytes = vec![0u8; sec.size()];
        bytes[..4].copy_from_slice(&7u32.to_le_bytes());
        bytes[4..8].copy_from_slice(&9u32.to_le_bytes());
        let v = decode(Some(&btf), u32::from(sec.type_id()), &bytes);
        assert_eq!(v["slot_func"][0], 7, "{v}");
        assert_eq!(v["slot_func"][1], 9, "{v}");
        assert_eq!(v["slot_func"][2], 0, "{v}");
    }

    #[test]
    fn a_struct_is_its_fields_by_name_with_nested_structs_in_arrays() {
        let btf = btf();
        let spec = btf.type_by_name::<Composite>("ktstr_func_spec").unwrap();
        let mut bytes = vec![0u8; spec.size()];
        bytes[4..8].copy_from_slice(&2u32.to_le_bytes()); // nargs
        bytes[16..20].copy_from_slice(&40u32.to_le_bytes()); // fields[0].off
        bytes[21] = 8; // fields[0].size
        let v = decode(Some(&btf), u32::from(spec.type_id()), &bytes);
        assert_eq!(v["nargs"], 2, "{v}");
        assert_eq!(v["fields"][0]["off"], 40, "{v}");
        assert_eq!(v["fields"][0]["size"], 8, "{v}");
        assert_eq!(v["fields"][1]["off"], 0, "{v}");
    }

    #[test]
    fn without_a_type_bytes_stay_visible_as_hex() {
        assert_eq!(decode(None, 5, &[0xde, 0xad]), "0xdead");
        assert_eq!(decode(Some(&btf()), 0, &[1]), "0x01");
        let long = decode(None, 0, &[0u8; 600]);
        assert!(long.as_str().unwrap().ends_with("... (600 bytes)"), "{long}");
    }
}
