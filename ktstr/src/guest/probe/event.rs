//! Probe events out of the ring buffer, kept in a bounded window while the
//! scenario runs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libbpf_rs::{MapHandle, RingBufferBuilder};

use super::attach::skel::types::ktstr_probe_event;
use super::attach::Attached;
use super::btf::{MAX_ARGS, MAX_FIELDS};

/// probe.h's `enum ktstr_probe_kind`.
pub const EXIT: u32 = 1;
pub(crate) const TRIGGER: u32 = 2;
/// Returns kept after the exit (many more than the trail shows: most are
/// other tasks').
const AFTER_TRIGGER_CAP: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct Raw {
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
    /// A ring buffer record, read as probe.h's `struct ktstr_probe_event`
    /// (the skeleton's type); `None` for a record too short to be one
    /// (never from our programs).
    pub fn parse(b: &[u8]) -> Option<Raw> {
        if b.len() < std::mem::size_of::<ktstr_probe_event>() {
            return None;
        }
        // SAFETY: `b` holds at least one ktstr_probe_event, a #[repr(C)]
        // struct of integers (any bit pattern is valid); the record need not
        // be aligned, hence read_unaligned.
        let e: ktstr_probe_event = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        let comm: Vec<u8> = e.comm.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
        Some(Raw {
            ts: e.ts,
            task: e.task,
            func: e.func,
            cpu: e.cpu,
            kind: e.kind,
            pid: e.pid,
            args: e.args,
            fields: e.fields,
            comm: String::from_utf8_lossy(&comm).into_owned(),
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
