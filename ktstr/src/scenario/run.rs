//! Carrying a scenario out: per step, create cgroups and fork their
//! workers, apply ops, release the new workers together, hold while the
//! watchdog looks on, then take each worker's report for the phase.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::cgroup::CgroupTree;
use super::system::{set_online, set_policy};
use super::{CgroupDef, Ctx, HoldSpec, Op, SchedPolicy, Step, WATCHDOG_STUCK_MS};
use crate::wire::stats::{CgroupStats, PhaseStats, ScenarioStats, WatchdogTrip};
use crate::wire::verdict::AssertResult;
use crate::workload::{monotonic_ns, SpawnOptions, WorkerSet};

/// How often the hold looks at the workers and the scheduler.
const POLL: Duration = Duration::from_millis(50);
/// After the watchdog signals the scheduler, how long to wait for it to
/// leave sched_ext (its dump takes a moment under emulation).
const SCHEDULER_EXIT_WAIT: Duration = Duration::from_secs(5);
const SCHED_EXT_STATE: &str = "/sys/kernel/sched_ext/state";

/// One step holding for the whole `duration_s`.
pub fn execute_defs(ctx: &Ctx, defs: Vec<CgroupDef>) -> Result<AssertResult> {
    execute_steps(ctx, vec![Step::with_defs(defs, HoldSpec::FULL)])
}

/// Runs `steps` in order; each becomes a phase of the timeline. The
/// verdict passes unless the watchdog tripped; the host applies the
/// test's thresholds to the stats it carries.
pub fn execute_steps(ctx: &Ctx, steps: Vec<Step>) -> Result<AssertResult> {
    let mut run = Run::new(ctx)?;
    let mut stats = ScenarioStats::default();
    for (i, step) in steps.iter().enumerate() {
        let started = Instant::now();
        let mut fresh = Vec::new();
        for def in step.setup.iter().chain(step.ops.iter().filter_map(|op| match op {
            Op::AddCgroup(d) => Some(d),
            _ => None,
        })) {
            run.add(def).with_context(|| format!("step {i}: adding cgroup {}", def.name))?;
            fresh.push(&def.name);
        }
        for op in &step.ops {
            run.apply(op).with_context(|| format!("step {i}: {op:?}"))?;
        }
        // Released together, once all are placed (an op may have removed one).
        for g in run.groups.iter().filter(|g| fresh.contains(&&g.name)) {
            g.set.release();
        }
        super::WORKLOAD_RUNNING.store(true, std::sync::atomic::Ordering::Release);
        if i == 0 {
            stats.setup_ms = run.setup_ms(ctx);
        }
        let end = run.hold(step.hold.resolve(ctx.duration));
        stats.phases.push(PhaseStats {
            step: i,
            ops: step.ops.len(),
            duration_ms: started.elapsed().as_millis() as u64,
            cgroups: run.take_phase(),
        });
        match end {
            HoldEnd::Done => continue,
            HoldEnd::Watchdog(trip) => stats.watchdog = Some(trip),
            HoldEnd::SchedulerGone(at) => stats.scheduler_gone = Some((i, at.as_millis() as u64)),
        }
        break;
    }
    run.stop();
    let mut result = AssertResult::pass();
    if let Some(t) = &stats.watchdog {
        result.check(false, || watchdog_line(t, ctx));
    }
    result.stats = Some(stats);
    Ok(result)
}

fn watchdog_line(t: &WatchdogTrip, ctx: &Ctx) -> String {
    let action = match (t.scheduler_pid, &ctx.scheduler) {
        (Some(pid), Some(name)) => format!("sent SIGUSR2 to scheduler {name} (pid {pid})"),
        _ if ctx.repro => "repro mode: scheduler left running".to_string(),
        _ => "no scheduler to signal".to_string(),
    };
    format!(
        "work-conservation watchdog: tid {} in {} stuck {}ms (threshold {WATCHDOG_STUCK_MS}ms); {action}",
        t.pid, t.cgroup, t.stuck_ms
    )
}

struct Group {
    name: String,
    cpuset: Option<Vec<u32>>,
    set: WorkerSet,
}

enum HoldEnd {
    Done,
    Watchdog(WatchdogTrip),
    SchedulerGone(Duration),
}

struct Run<'a> {
    ctx: &'a Ctx,
    tree: CgroupTree,
    groups: Vec<Group>,
    epoch_ns: u64,
    /// CPUs this scenario took offline, brought back by `stop`.
    offline: Vec<u32>,
}

impl<'a> Run<'a> {
    fn new(ctx: &'a Ctx) -> Result<Run<'a>> {
        let tree = CgroupTree::create(&ctx.test_name)?;
        Ok(Run { ctx, tree, groups: Vec::new(), epoch_ns: monotonic_ns(), offline: Vec::new() })
    }

    /// Creates the cgroup and forks its workers into it (not released).
    fn add(&mut self, def: &CgroupDef) -> Result<()> {
        anyhow::ensure!(!self.groups.iter().any(|g| g.name == def.name), "cgroup {} exists already", def.name);
        let cpuset =
            def.cpuset.as_ref().map(|c| c.resolve(&self.ctx.topology)).transpose().map_err(anyhow::Error::msg)?;
        self.tree.add(&def.name)?;
        if let Some(cpus) = &cpuset {
            self.tree.set_cpus(&def.name, cpus)?;
        }
        if let Some(w) = def.weight {
            self.tree.set_weight(&def.name, w)?;
        }
        let n = def.workers.unwrap_or_else(|| cpuset.as_ref().map_or(self.ctx.topology.cpus() as usize, Vec::len));
        let set =
            WorkerSet::spawn(&vec![def.work_type; n], &SpawnOptions { epoch_ns: self.epoch_ns, telemetry: true })?;
        for pid in set.pids() {
            self.tree.move_pid(&def.name, pid)?;
            if def.policy != SchedPolicy::Normal(0) {
                set_policy(pid, def.policy)?;
            }
        }
        self.groups.push(Group { name: def.name.clone(), cpuset, set });
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::AddCgroup(_) => Ok(()), // created with the step's setup
            Op::RemoveCgroup(name) => {
                let i = self.find(name)?;
                let g = self.groups.remove(i);
                g.set.stop();
                self.tree.remove(name)
            }
            Op::SetCpuset(name, spec) => {
                let i = self.find(name)?;
                let cpus = spec.resolve(&self.ctx.topology).map_err(anyhow::Error::msg)?;
                self.tree.set_cpus(name, &cpus)?;
                self.groups[i].cpuset = Some(cpus);
                Ok(())
            }
            Op::MoveWorkers(from, to) => {
                let (i, j) = (self.find(from)?, self.find(to)?);
                for pid in self.groups[i].set.pids() {
                    self.tree.move_pid(to, pid)?;
                }
                // Held to the cpuset they now live under.
                self.groups[i].cpuset = self.groups[j].cpuset.clone();
                Ok(())
            }
            Op::SetPolicy(name, policy) => {
                let i = self.find(name)?;
                self.groups[i].set.pids().into_iter().try_for_each(|pid| set_policy(pid, *policy))
            }
            Op::SetWeight(name, w) => {
                self.find(name)?;
                self.tree.set_weight(name, *w)
            }
            Op::CpuOffline(cpu) => {
                anyhow::ensure!(
                    *cpu < self.ctx.topology.cpus(),
                    "cpu{cpu} does not exist: the VM has {} cpus",
                    self.ctx.topology.cpus()
                );
                set_online(*cpu, false)?;
                self.offline.push(*cpu);
                Ok(())
            }
            Op::CpuOnline(cpu) => {
                set_online(*cpu, true)?;
                self.offline.retain(|c| c != cpu);
                Ok(())
            }
        }
    }

    fn find(&self, name: &str) -> Result<usize> {
        self.groups.iter().position(|g| g.name == name).with_context(|| format!("no cgroup named {name}"))
    }

    /// From the payload's start to the first iteration of the last worker
    /// alive now; waits (bounded) for that iteration.
    fn setup_ms(&self, ctx: &Ctx) -> Option<u64> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let firsts: Option<Vec<u64>> = self.groups.iter().map(|g| g.set.first_iteration_ns()).collect();
            if let Some(last) = firsts.and_then(|f| f.into_iter().max()) {
                return Some(last.saturating_sub(ctx.payload_start_ns) / 1_000_000);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sleeps for `hold`, ending early if a worker is stuck past the
    /// watchdog's threshold or the scheduler leaves sched_ext.
    fn hold(&mut self, hold: Duration) -> HoldEnd {
        let started = Instant::now();
        let watch_scheduler = self.ctx.scheduler.is_some();
        while started.elapsed() < hold {
            std::thread::sleep(POLL.min(hold.saturating_sub(started.elapsed())));
            if watch_scheduler && !sched_ext_enabled() {
                return HoldEnd::SchedulerGone(started.elapsed());
            }
            if let Some(trip) = self.stuck_worker() {
                return HoldEnd::Watchdog(self.trip(trip));
            }
        }
        HoldEnd::Done
    }

    fn stuck_worker(&self) -> Option<WatchdogTrip> {
        let threshold = Duration::from_millis(WATCHDOG_STUCK_MS);
        self.groups.iter().find_map(|g| {
            g.set.stuck(threshold).into_iter().max_by_key(|(_, d)| *d).map(|(pid, d)| WatchdogTrip {
                pid,
                cgroup: g.name.clone(),
                stuck_ms: d.as_millis() as u64,
                scheduler_pid: None,
            })
        })
    }

    /// Signals the scheduler (outside repro mode) and waits for it to
    /// leave, so the stuck worker runs again and its gap is measured.
    fn trip(&self, mut trip: WatchdogTrip) -> WatchdogTrip {
        let Some(pid) = self.ctx.scheduler_pid.filter(|_| !self.ctx.repro) else {
            return trip;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGUSR2);
        trip.scheduler_pid = Some(pid);
        let deadline = Instant::now() + SCHEDULER_EXIT_WAIT;
        while sched_ext_enabled() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        // Under the kernel's default class again, the stuck worker runs
        // and closes its gap.
        std::thread::sleep(Duration::from_millis(200));
        trip
    }

    fn take_phase(&mut self) -> Vec<CgroupStats> {
        self.groups
            .iter_mut()
            .map(|g| CgroupStats { name: g.name.clone(), cpuset: g.cpuset.clone(), workers: g.set.take_reports() })
            .collect()
    }

    fn stop(self) {
        for &cpu in &self.offline {
            let _ = set_online(cpu, true);
        }
        for g in self.groups {
            g.set.stop();
            let _ = self.tree.remove(&g.name);
        }
    }
}

fn sched_ext_enabled() -> bool {
    std::fs::read_to_string(SCHED_EXT_STATE).is_ok_and(|s| s.trim() == "enabled")
}
