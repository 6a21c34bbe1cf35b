//! Probed values as a scheduler author reads them: DSQ ids, enqueue flags
//! and a task's `scx.flags` by the kernel's names, cpumasks as CPU lists.
//!
//! The numbers are the kernel's as of Linux 7.3, the sched_ext kernel ktstr
//! boots (Debian's 7.3.4; its 6.12 has no sched_ext). They are not a
//! stable ABI: the task state grew a bit in 7.2 and the core's
//! `ENQUEUE_*` flags were renumbered not long before, so a reading from
//! an older kernel can name the wrong state or flag. Each table says which
//! header it comes from; all were checked against the BTF of
//! `7.3.4+deb13-cloud-amd64`. A value no table names is printed in hex
//! rather than guessed at.

use super::ValueKind;

/// `raw` as `kind` reads.
pub fn value(kind: &ValueKind, raw: u64) -> String {
    match kind {
        ValueKind::Int { signed: true, size } => sign_extend(raw, *size).to_string(),
        ValueKind::Int { .. } => raw.to_string(),
        ValueKind::Enum { variants } => {
            variants.iter().find(|(_, v)| *v as u64 == raw).map_or_else(|| raw.to_string(), |(n, _)| n.clone())
        }
        ValueKind::DsqId => dsq_id(raw),
        ValueKind::EnqFlags => enq_flags(raw),
        ValueKind::ScxFlags => scx_flags(raw),
        ValueKind::Cpumask => cpumask(raw),
        ValueKind::Ptr => format!("{raw:#x}"),
    }
}

fn sign_extend(raw: u64, size: u8) -> i64 {
    let bits = u32::from(size.clamp(1, 8)) * 8;
    ((raw << (64 - bits)) as i64) >> (64 - bits)
}

// `enum scx_dsq_id_flags`, include/linux/sched/ext.h: bit 63 marks a
// built-in DSQ, bit 62 with it a CPU's local DSQ whose low 32 bits are the
// CPU. Ids without bit 63 are the scheduler's own (`scx_bpf_create_dsq`).
const DSQ_FLAG_BUILTIN: u64 = 1 << 63;
const DSQ_LOCAL_ON: u64 = DSQ_FLAG_BUILTIN | 1 << 62;
const DSQ_LOCAL_CPU_MASK: u64 = 0xffff_ffff;
const BUILTIN_DSQS: &[(u64, &str)] = &[
    (DSQ_FLAG_BUILTIN, "SCX_DSQ_INVALID"),
    (DSQ_FLAG_BUILTIN | 1, "SCX_DSQ_GLOBAL"),
    (DSQ_FLAG_BUILTIN | 2, "SCX_DSQ_LOCAL"),
    (DSQ_FLAG_BUILTIN | 3, "SCX_DSQ_BYPASS"),
    (DSQ_FLAG_BUILTIN | 4, "SCX_DSQ_REJECT"),
    (DSQ_FLAG_BUILTIN | 5, "SCX_DSQ_RESCUE"),
];

/// A dispatch queue id: a built-in DSQ by name (`SCX_DSQ_LOCAL`,
/// `SCX_DSQ_LOCAL_ON|3`), a user DSQ in decimal as the scheduler created
/// it, a built-in id this kernel does not name in hex.
pub fn dsq_id(raw: u64) -> String {
    // The kernel takes any id with both bits set as LOCAL_ON; bits 32-61
    // are reserved, so one with them set is shown raw, not as a CPU.
    if raw & !DSQ_LOCAL_CPU_MASK == DSQ_LOCAL_ON {
        return format!("SCX_DSQ_LOCAL_ON|{}", raw & DSQ_LOCAL_CPU_MASK);
    }
    if let Some((_, name)) = BUILTIN_DSQS.iter().find(|(id, _)| *id == raw) {
        return name.to_string();
    }
    if raw & DSQ_FLAG_BUILTIN == 0 {
        return raw.to_string();
    }
    format!("{raw:#x}")
}

// `enum scx_enq_flags`, kernel/sched/ext_internal.h. The low three alias
// the core's ENQUEUE_WAKEUP, ENQUEUE_HEAD and ENQUEUE_RQ_SELECTED from
// kernel/sched/sched.h, since the core's sched_change rework renumbered
// them (HEAD was 0x10, RQ_SELECTED 0x400). The other core ENQUEUE_* bits (RESTORE, MOVE, ...) pass through
// to ops.enqueue() unnamed, so they show as hex.
const ENQ_FLAGS: &[(u64, &str)] = &[
    (1 << 0, "WAKEUP"),
    (1 << 16, "HEAD"),
    (1 << 20, "CPU_SELECTED"),
    (1 << 32, "PREEMPT"),
    (1 << 33, "IMMED"),
    (1 << 34, "RESCUE"),
    (1 << 40, "REENQ"),
    (1 << 41, "LAST"),
    // The top byte is the kernel's internal use.
    (1 << 56, "CLEAR_OPSS"),
    (1 << 57, "DSQ_PRIQ"),
    (1 << 58, "NESTED"),
    (1 << 59, "GDSQ_FALLBACK"),
    (1 << 60, "IGNORE_CAPS"),
    (1 << 61, "APPLY_SLICE"),
    (1 << 62, "SLICE_DFL"),
];

/// `SCX_ENQ_*` flags without their prefix, lowest bit first and joined by
/// `|` (`WAKEUP|HEAD`); bits no flag names as one trailing hex number;
/// `NONE` for none.
pub fn enq_flags(raw: u64) -> String {
    let mut parts = Vec::new();
    let left = named_bits(raw, ENQ_FLAGS, &mut parts);
    join(parts, left)
}

// `enum scx_ent_flags`, include/linux/sched/ext.h (7.3; the for-7.2 work
// added SCX_TASK_INIT_BEGIN and SCX_TASK_DEAD, commits c941d7391f25 and
// cceb8fa9cb2c, widening the state from 2 bits to 3). Single-bit flags,
// then two small numbers packed in: the task's state in bits 8-10 and
// the reason of its pending re-enqueue in bits 12-14.
const TASK_FLAGS: &[(u64, &str)] = &[
    (1 << 0, "QUEUED"),
    (1 << 1, "IN_CUSTODY"),
    (1 << 2, "RESET_RUNNABLE_AT"),
    (1 << 3, "DEQD_FOR_SLEEP"),
    (1 << 4, "SUB_INIT"),
    (1 << 5, "IMMED"),
    (1 << 6, "PROTECTED"),
];
const TASK_CURSOR: u64 = 1 << 31;
const TASK_STATE_SHIFT: u32 = 8;
const TASK_STATE_MASK: u64 = 0x7 << TASK_STATE_SHIFT;
/// `SCX_TASK_NONE` ... `SCX_TASK_DEAD`, by value.
const TASK_STATES: &[&str] = &["NONE", "INIT_BEGIN", "INIT", "READY", "ENABLED", "DEAD"];
const TASK_REENQ_SHIFT: u32 = 12;
const TASK_REENQ_MASK: u64 = 0x7 << TASK_REENQ_SHIFT;
/// `SCX_TASK_REENQ_NONE` ... `SCX_TASK_REENQ_CAP`, by value.
const TASK_REENQ_REASONS: &[&str] = &["REENQ_NONE", "REENQ_KFUNC", "REENQ_IMMED", "REENQ_PREEMPTED", "REENQ_CAP"];

/// A task's `p->scx.flags`: its `SCX_TASK_*` flags and its state, without
/// the prefix, in bit order (`QUEUED|DEQD_FOR_SLEEP|ENABLED`). The zero
/// values of the packed fields are left out like clear flags are (state
/// `NONE` and re-enqueue reason `REENQ_NONE`), so `NONE` shows only for a
/// flags word of 0. A state or reason no name covers, and bits no flag
/// names, show as one trailing hex number.
pub fn scx_flags(raw: u64) -> String {
    let mut parts = Vec::new();
    let mut left = named_bits(raw, TASK_FLAGS, &mut parts);
    left = packed(left, TASK_STATE_MASK, TASK_STATE_SHIFT, TASK_STATES, &mut parts);
    left = packed(left, TASK_REENQ_MASK, TASK_REENQ_SHIFT, TASK_REENQ_REASONS, &mut parts);
    if left & TASK_CURSOR != 0 {
        parts.push("CURSOR");
        left &= !TASK_CURSOR;
    }
    join(parts, left)
}

/// Names of `table`'s bits set in `raw`, in table order, onto `parts`;
/// returns `raw` with those bits cleared.
fn named_bits(raw: u64, table: &[(u64, &'static str)], parts: &mut Vec<&'static str>) -> u64 {
    table.iter().fold(raw, |left, &(bit, name)| {
        if left & bit == 0 {
            return left;
        }
        parts.push(name);
        left & !bit
    })
}

/// The field under `mask` by its name in `names` (nothing for 0); returns
/// `left` without the field, or with it when no name covers its value.
fn packed(left: u64, mask: u64, shift: u32, names: &[&'static str], parts: &mut Vec<&'static str>) -> u64 {
    let v = (left & mask) >> shift;
    match names.get(v as usize) {
        Some(_) if v == 0 => left,
        Some(name) => {
            parts.push(name);
            left & !mask
        }
        None => left,
    }
}

fn join(parts: Vec<&str>, left: u64) -> String {
    let mut text = parts.join("|");
    if left != 0 {
        let sep = if text.is_empty() { "" } else { "|" };
        text = format!("{text}{sep}{left:#x}");
    }
    if text.is_empty() {
        text = "NONE".to_string();
    }
    text
}

/// The first 64 bits of a cpumask, in hex and as CPU ranges: `0xb(0-1,3)`,
/// `0x0()`.
pub(crate) fn cpumask(bits: u64) -> String {
    let mut ranges = Vec::new();
    let mut cpu = 0;
    while cpu < 64 {
        if bits >> cpu & 1 == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu < 64 && bits >> cpu & 1 == 1 {
            cpu += 1;
        }
        let last = cpu - 1;
        ranges.push(if last == first { first.to_string() } else { format!("{first}-{last}") });
    }
    format!("{bits:#x}({})", ranges.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsq_ids_by_name_user_ids_in_decimal() {
        assert_eq!(dsq_id(0x8000_0000_0000_0000), "SCX_DSQ_INVALID");
        assert_eq!(dsq_id(0x8000_0000_0000_0001), "SCX_DSQ_GLOBAL");
        assert_eq!(dsq_id(0x8000_0000_0000_0002), "SCX_DSQ_LOCAL");
        assert_eq!(dsq_id(0x8000_0000_0000_0003), "SCX_DSQ_BYPASS");
        assert_eq!(dsq_id(0xc000_0000_0000_0000), "SCX_DSQ_LOCAL_ON|0");
        assert_eq!(dsq_id(0xc000_0000_0000_0003), "SCX_DSQ_LOCAL_ON|3");
        assert_eq!(dsq_id(0xc000_0000_ffff_ffff), "SCX_DSQ_LOCAL_ON|4294967295");
        // Reserved bits set: not a CPU's local DSQ.
        assert_eq!(dsq_id(0xc000_0001_0000_0003), "0xc000000100000003");
        assert_eq!(dsq_id(0x8000_0000_0000_0063), "0x8000000000000063");
        assert_eq!(dsq_id(0), "0");
        assert_eq!(dsq_id(1024), "1024");
        assert_eq!(dsq_id(0x7fff_ffff_ffff_ffff), "9223372036854775807");
        assert_eq!(dsq_id(u64::MAX), "0xffffffffffffffff");
    }

    #[test]
    fn enq_flags_by_name_leftovers_in_hex() {
        assert_eq!(enq_flags(0), "NONE");
        assert_eq!(enq_flags(1), "WAKEUP");
        assert_eq!(enq_flags(1 | 1 << 16), "WAKEUP|HEAD");
        assert_eq!(enq_flags(1 << 32 | 1 << 41), "PREEMPT|LAST");
        // ENQUEUE_RESTORE | ENQUEUE_NOCLOCK from the core: no SCX name.
        assert_eq!(enq_flags(0xa), "0xa");
        assert_eq!(enq_flags(1 | 1 << 20 | 0x4), "WAKEUP|CPU_SELECTED|0x4");
        assert_eq!(
            enq_flags(u64::MAX),
            "WAKEUP|HEAD|CPU_SELECTED|PREEMPT|IMMED|RESCUE|REENQ|LAST|CLEAR_OPSS|DSQ_PRIQ|NESTED|\
             GDSQ_FALLBACK|IGNORE_CAPS|APPLY_SLICE|SLICE_DFL|0x80fffcf8ffeefffe"
        );
    }

    #[test]
    fn scx_flags_name_flags_and_state() {
        const ENABLED: u64 = 4 << 8;
        assert_eq!(scx_flags(0), "NONE");
        assert_eq!(scx_flags(1), "QUEUED");
        assert_eq!(scx_flags(1 | ENABLED), "QUEUED|ENABLED");
        assert_eq!(scx_flags(1 | 8 | ENABLED), "QUEUED|DEQD_FOR_SLEEP|ENABLED");
        assert_eq!(scx_flags(ENABLED), "ENABLED");
        // A stuck worker in tests/fixtures/crash/scx_bpf_error_sigusr2.log,
        // which the kernel's dump prints as `scx_state/flags=4/0xb`.
        assert_eq!(scx_flags(ENABLED | 0xb), "QUEUED|IN_CUSTODY|DEQD_FOR_SLEEP|ENABLED");
        assert_eq!(scx_flags(1 << 8), "INIT_BEGIN");
        assert_eq!(scx_flags(2 << 8), "INIT");
        assert_eq!(scx_flags(3 << 8), "READY");
        assert_eq!(scx_flags(5 << 8), "DEAD");
        assert_eq!(scx_flags(0x3 | ENABLED | 3 << 12), "QUEUED|IN_CUSTODY|ENABLED|REENQ_PREEMPTED");
        assert_eq!(scx_flags(1 << 31 | 2 << 8), "INIT|CURSOR");
        // States 6 and 7, reasons 5 to 7 and bits 7, 11, 15-30 name nothing.
        assert_eq!(scx_flags(1 | 6 << 8), "QUEUED|0x600");
        assert_eq!(scx_flags(ENABLED | 7 << 12), "ENABLED|0x7000");
        assert_eq!(scx_flags(0x80 | 0x800 | 1 << 40), "0x10000000880");
        assert_eq!(
            scx_flags(u64::MAX),
            "QUEUED|IN_CUSTODY|RESET_RUNNABLE_AT|DEQD_FOR_SLEEP|SUB_INIT|IMMED|PROTECTED|CURSOR|0xffffffff7fffff80"
        );
    }

    #[test]
    fn cpumask_lists_ranges() {
        assert_eq!(cpumask(0), "0x0()");
        assert_eq!(cpumask(0xf), "0xf(0-3)");
        assert_eq!(cpumask(0x5), "0x5(0,2)");
        assert_eq!(cpumask(0xb), "0xb(0-1,3)");
        assert_eq!(cpumask(1 << 63), "0x8000000000000000(63)");
        assert_eq!(cpumask(u64::MAX), "0xffffffffffffffff(0-63)");
        assert_eq!(cpumask(0x8000_0000_0000_0f01), "0x8000000000000f01(0,8-11,63)");
    }

    #[test]
    fn value_dispatches_by_kind() {
        assert_eq!(value(&ValueKind::DsqId, 0x8000_0000_0000_0002), "SCX_DSQ_LOCAL");
        assert_eq!(value(&ValueKind::EnqFlags, 0), "NONE");
        assert_eq!(value(&ValueKind::ScxFlags, 0x401), "QUEUED|ENABLED");
        assert_eq!(value(&ValueKind::Cpumask, 0xf), "0xf(0-3)");
        assert_eq!(value(&ValueKind::Ptr, 0xffff_8880_0123_4000), "0xffff888001234000");
        assert_eq!(value(&ValueKind::Int { signed: true, size: 4 }, 0xffff_ffff), "-1");
        assert_eq!(value(&ValueKind::Int { signed: false, size: 4 }, 0xffff_ffff), "4294967295");
        let e = ValueKind::Enum { variants: vec![("SCX_CPU_PREEMPT_RT".into(), 0), ("SCX_CPU_PREEMPT_DL".into(), 1)] };
        assert_eq!(value(&e, 1), "SCX_CPU_PREEMPT_DL");
        assert_eq!(value(&e, 7), "7");
    }
}
