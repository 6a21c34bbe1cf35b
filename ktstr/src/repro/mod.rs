//! Auto-repro: when the scheduler crashed, a second VM replays the
//! scenario with BPF probes on the crash path, and the trail of the task
//! that triggered the exit is stitched and rendered.

pub mod extract;
