//! The probe trail's data: what auto-repro's second VM asks the guest to
//! probe ([`ProbePlan`]), and what the guest sends back ([`ProbeTrail`]):
//! the functions it probed with their decoded signatures, the events of
//! the task that triggered the scheduler's exit, and the pipeline's
//! accounting. Plain data, below the channel: the guest fills it, the
//! host's `repro` stage stitches and renders it.

use serde::{Deserialize, Serialize};

/// What the host asks the repro VM's guest to probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePlan {
    /// Function names from the primary run's crash backtrace, generic
    /// frames already dropped (BPF programs by their short names).
    pub stack: Vec<String>,
    /// Fail the trigger's attach on purpose (tests of the no-trigger path).
    #[serde(default)]
    pub break_trigger: bool,
}

/// How a probed value reads: drives decoding on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueKind {
    /// An integer of `size` bytes.
    Int { signed: bool, size: u8 },
    /// A dispatch queue id (`SCX_DSQ_LOCAL`, `SCX_DSQ_INVALID`, a user DSQ).
    DsqId,
    /// `SCX_ENQ_*` flags.
    EnqFlags,
    /// A task's `scx.flags` (`SCX_TASK_*`).
    ScxFlags,
    /// The first 64 bits of a cpumask.
    Cpumask,
    /// An enum's value, with its variants as the BTF names them.
    Enum { variants: Vec<(String, i64)> },
    /// A pointer shown as an address.
    Ptr,
}

/// One field read out of a struct argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub kind: ValueKind,
}

/// One parameter of a probed function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// As C spells it: `task_struct *`, `u64`, `s32`.
    pub type_name: String,
    /// How the argument itself reads (a scalar), when it has no fields.
    pub kind: ValueKind,
    /// Fields read through the argument, for a struct pointer.
    pub fields: Vec<Field>,
}

impl Param {
    /// A `task_struct *` argument: what stitching filters on.
    pub fn is_task(&self) -> bool {
        self.type_name == "task_struct *"
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FuncKind {
    /// A kernel function (kprobe on entry, fexit when BTF allows).
    Kernel,
    /// A scheduler's struct_ops program, with the `sched_ext_ops` member
    /// it implements (fentry and fexit).
    BpfCallback { member: String },
}

/// A probed function and how to decode its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFunc {
    pub id: u32,
    pub name: String,
    pub kind: FuncKind,
    /// `main.bpf.c:21` from a program's line info; a kernel function's
    /// `file:line` when debug info was available.
    pub source: Option<String>,
    pub params: Vec<Param>,
}

/// One probe firing. `fields` holds every param's fields in order (params
/// without fields contribute none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeEvent {
    pub func: u32,
    /// Fired on return (fexit): the fields were read again after the call.
    pub exit: bool,
    pub ts_ns: u64,
    pub cpu: u32,
    /// `bpf_get_current_task()` when it fired.
    pub task: u64,
    pub args: Vec<u64>,
    pub fields: Vec<u64>,
}

/// The `tp_btf/sched_ext_exit` firing: the task current when the kernel
/// claimed the scheduler's exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub ts_ns: u64,
    pub cpu: u32,
    pub task: u64,
    pub pid: u32,
    pub comm: String,
}

/// Whether the trigger attached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerStatus {
    Attached,
    AttachFailed(String),
}

/// The `--- probe pipeline ---` accounting, step by step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Stack functions the plan carried.
    pub extracted: usize,
    /// Stack functions that passed the traceability check.
    pub traceable: usize,
    /// Targets left out before attaching: stack functions that failed the
    /// traceability check, and callers of callbacks that cannot be probed.
    pub dropped: Vec<Dropped>,
    /// struct_ops programs found in the repro VM.
    pub bpf_discovered: usize,
    /// Probe targets after adding discovered programs and their callers.
    pub after_expand: usize,
    pub kprobes_attached: usize,
    pub fentry_attached: usize,
    pub fexit_attached: usize,
    /// Targets that failed to attach, `(name, why)`.
    pub attach_failed: Vec<(String, String)>,
    pub trigger: TriggerStatus,
    /// Function specs installed for the probes.
    pub probe_keys: usize,
    /// Events whose function id matched no spec.
    pub unmatched: u64,
    /// Events captured in all (before stitching).
    pub events_captured: u64,
    /// Events the ring buffer had no room for.
    #[serde(default)]
    pub events_lost: u64,
    /// Events the guest still held when the scheduler had exited (the
    /// window stitching chose from).
    #[serde(default)]
    pub events_held: u64,
    /// Time from the scheduler's attach to the probes recording.
    #[serde(default)]
    pub setup_ms: u64,
}

/// A probe target left out before attaching, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub name: String,
    /// Set when the target was not a function of the crash stack but a
    /// kernel caller of this struct_ops callback, added to bridge to it.
    #[serde(default)]
    pub caller_of: Option<String>,
    pub why: String,
}

impl Dropped {
    /// Why, as the pipeline prints it (`caller of enqueue: no BTF signature ...`).
    pub fn reason(&self) -> String {
        match &self.caller_of {
            Some(member) => format!("caller of {member}: {}", self.why),
            None => self.why.clone(),
        }
    }
}

/// What the repro VM's guest sends once the scheduler has exited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTrail {
    pub pipeline: Pipeline,
    pub funcs: Vec<ProbeFunc>,
    pub trigger: Option<Trigger>,
    /// The events that concern the triggering task (by a `task_struct *`
    /// argument, else by the current task), the latest few hundred.
    pub events: Vec<ProbeEvent>,
    /// No event concerned that task: `events` are those of the trigger's
    /// CPU up to the exit instead.
    #[serde(default)]
    pub by_cpu: bool,
}
