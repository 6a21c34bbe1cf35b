//! What a scenario changes outside cgroups: a task's scheduling policy and
//! nice value, and whether a CPU is online.

use anyhow::{Context, Result};

use super::SchedPolicy;

/// Sets `pid`'s policy (and, for `Normal`, its nice value).
pub(crate) fn set_policy(pid: u32, policy: SchedPolicy) -> Result<()> {
    let (class, prio) = match policy {
        SchedPolicy::Normal(_) => (libc::SCHED_OTHER, 0),
        SchedPolicy::Batch => (libc::SCHED_BATCH, 0),
        SchedPolicy::Idle => (libc::SCHED_IDLE, 0),
        SchedPolicy::Fifo(p) => (libc::SCHED_FIFO, i32::from(p)),
    };
    let param = libc::sched_param { sched_priority: prio };
    // SAFETY: plain syscalls on a pid with a valid parameter block.
    if unsafe { libc::sched_setscheduler(pid as i32, class, &param) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            let hint = if matches!(policy, SchedPolicy::Fifo(_)) {
                " (an RT task in a cgroup needs a kernel without CONFIG_RT_GROUP_SCHED, or cpu.rt_runtime_us)"
            } else {
                ""
            };
            format!("setting {policy:?} on tid {pid}{hint}")
        });
    }
    if let SchedPolicy::Normal(nice) = policy {
        // SAFETY: as above.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, nice) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("setting nice {nice} on tid {pid}"));
        }
    }
    Ok(())
}

fn online_path(cpu: u32) -> String {
    format!("/sys/devices/system/cpu/cpu{cpu}/online")
}

/// Takes `cpu` offline or brings it back.
pub(crate) fn set_online(cpu: u32, online: bool) -> Result<()> {
    let path = online_path(cpu);
    std::fs::write(&path, if online { "1" } else { "0" }).with_context(|| {
        format!(
            "writing {} to {path} (CPU hotplug needs CONFIG_HOTPLUG_CPU, and CPU 0 often cannot go offline)",
            u8::from(online)
        )
    })
}
