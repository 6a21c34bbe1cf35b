//! Probe events out of the ring buffer, kept in a bounded window while the
//! scenario runs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libbpf_rs::{MapHandle, RingBufferBuilder};

use super::attach::Attached;
use super::btf::{MAX_ARGS, MAX_FIELDS};

/// probe.h's `enum ktstr_probe_kind`.
pub const EXIT: u32 = 1;
pub const TRIGGER: u32 = 2;
/// Returns kept after the exit (many more than the trail shows: most are
/// other tasks').
const AFTER_TRIGGER_CAP: usize = 4096;

/// probe.h's `struct ktstr_probe_event`: ts, task, then func, cpu, kind,
/// pid (u32 each), args, fields, comm[16].
const ARGS_AT: usize = 32;
const FIELDS_AT: usize = ARGS_AT + 8 * MAX_ARGS;
const COMM_AT: usize = FIELDS_AT + 8 * MAX_FIELDS;
const SIZE: usize = COMM_AT + 16;

#[derive(Clone, Debug)]
pub struct Raw {
    pub ts: u64,
    pub task: u64,
    pub func: u32,
    pub cpu: u32,
    pub kind: u32,
    pub pid: u32,
    pub args: [u64; MAX_ARGS],
    pub fields: [u64; MAX_FIELDS],
    pub comm: String,
}

impl Raw {
    /// `None` for a record of the wrong size (never from our programs).
    pub fn parse(b: &[u8]) -> Option<Raw> {
        if b.len() < SIZE {
            return None;
        }
        let u64_at = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let u32_at = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap_or_default());
        let comm = &b[COMM_AT..COMM_AT + 16];
        let comm_len = comm.iter().position(|&c| c == 0).unwrap_or(16);
        Some(Raw {
            ts: u64_at(0),
            task: u64_at(8),
            func: u32_at(16),
            cpu: u32_at(20),
            kind: u32_at(24),
            pid: u32_at(28),
            args: std::array::from_fn(|i| u64_at(ARGS_AT + 8 * i)),
            fields: std::array::from_fn(|i| u64_at(FIELDS_AT + 8 * i)),
            comm: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
        })
    }
}

/// Polls the ring buffer into `buffer` (at most `cap` events, oldest
/// dropped) until `stop`, then drains it once more.
pub fn collect(
    attached: &Attached,
    buffer: Arc<Mutex<VecDeque<Raw>>>,
    stop: Arc<AtomicBool>,
    cap: usize,
) -> std::thread::JoinHandle<()> {
    // The thread gets its own fd: the ring buffer must be built where it
    // is polled.
    let map = MapHandle::try_from(&attached.events);
    std::thread::spawn(move || {
        let Ok(map) = map else { return };
        let sink = buffer.clone();
        // Once the exit is recorded only returns matter (calls in flight
        // at the exit), and only so many: the kernel's disable path calls
        // into the scheduler for every task, and that flood must not push
        // the path to the exit out of the buffer.
        let mut after_trigger: Option<usize> = None;
        let mut builder = RingBufferBuilder::new();
        let added = builder.add(&map, move |bytes: &[u8]| {
            let Some(raw) = Raw::parse(bytes) else { return 0 };
            if let Some(n) = after_trigger.as_mut() {
                if raw.kind != EXIT || *n >= AFTER_TRIGGER_CAP {
                    return 0;
                }
                *n += 1;
            } else if raw.kind == TRIGGER {
                after_trigger = Some(0);
            }
            let mut b = sink.lock().unwrap_or_else(|e| e.into_inner());
            if b.len() == cap {
                b.pop_front();
            }
            b.push_back(raw);
            0
        });
        if added.is_err() {
            return;
        }
        let Ok(rb) = builder.build() else { return };
        while !stop.load(Ordering::Relaxed) {
            let _ = rb.poll(Duration::from_millis(100));
        }
        let _ = rb.consume();
    })
}
