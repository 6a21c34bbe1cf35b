use crate::wire::plan::MapWrite;

/// A value for the guest to write into the scheduler's BPF map once the
/// workload has started, e.g. a crash knob:
/// `static BPF_CRASH: BpfMapWrite = BpfMapWrite::new(".bss", "crash", 1);`
/// The scheduler binary is unmodified: the variable is found by name in
/// the loaded map's BTF.
#[derive(Debug)]
pub struct BpfMapWrite {
    /// The end of the map's name: `.bss`, `.data`.
    pub map: &'static str,
    /// The global variable, by name.
    pub var: &'static str,
    pub value: u64,
}

impl BpfMapWrite {
    pub const fn new(map: &'static str, var: &'static str, value: u64) -> Self {
        BpfMapWrite { map, var, value }
    }

    pub(crate) fn to_plan(&self) -> MapWrite {
        MapWrite { map: self.map.into(), var: self.var.into(), value: self.value }
    }
}
