//! Probed values as a scheduler author reads them.

use super::ValueKind;

/// `raw` as `kind` reads.
pub fn value(kind: &ValueKind, raw: u64) -> String {
    match kind {
        ValueKind::Int { signed: true, size } => sign_extend(raw, *size).to_string(),
        ValueKind::Int { .. } => raw.to_string(),
        ValueKind::Enum { variants } => {
            variants.iter().find(|(_, v)| *v as u64 == raw).map_or_else(|| raw.to_string(), |(n, _)| n.clone())
        }
        _ => format!("{raw:#x}"),
    }
}

fn sign_extend(raw: u64, size: u8) -> i64 {
    let bits = u32::from(size.clamp(1, 8)) * 8;
    ((raw << (64 - bits)) as i64) >> (64 - bits)
}
