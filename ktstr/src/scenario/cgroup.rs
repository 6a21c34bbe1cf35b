//! The scenario's cgroup v2 groups: one parent per test under
//! `/sys/fs/cgroup/ktstr`, one child per [`super::CgroupDef`].

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The parent group; children are removed when it is dropped.
pub(crate) struct CgroupTree {
    parent: PathBuf,
}

impl CgroupTree {
    /// Creates `/sys/fs/cgroup/ktstr/<test>` with the cpu and cpuset
    /// controllers enabled for its children.
    pub fn create(test: &str) -> Result<CgroupTree> {
        let top = Path::new(CGROUP_ROOT).join("ktstr");
        let parent = top.join(test);
        for dir in [&top, &parent] {
            mkdir(dir)?;
            let ctrl = dir.join("cgroup.subtree_control");
            fs::write(&ctrl, "+cpu +cpuset").with_context(|| {
                format!(
                    "enabling the cpu and cpuset controllers in {} (is the kernel built with cgroup v2 cpusets?)",
                    ctrl.display()
                )
            })?;
        }
        Ok(CgroupTree { parent })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.parent.join(name)
    }

    pub fn add(&self, name: &str) -> Result<()> {
        anyhow::ensure!(
            !name.is_empty() && !name.contains('/') && !name.starts_with('.'),
            "cgroup name `{name}` is not a plain directory name"
        );
        mkdir(&self.path(name))
    }

    pub(crate) fn set_cpus(&self, name: &str, cpus: &[u32]) -> Result<()> {
        let list = crate::wire::topology::format_cpu_list(cpus.iter().copied());
        self.write(name, "cpuset.cpus", &list)
    }

    pub(crate) fn set_weight(&self, name: &str, weight: u32) -> Result<()> {
        self.write(name, "cpu.weight", &weight.to_string())
    }

    pub(crate) fn move_pid(&self, name: &str, pid: u32) -> Result<()> {
        self.write(name, "cgroup.procs", &pid.to_string())
    }

    /// Removes an empty group (its workers already reaped).
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.path(name);
        fs::remove_dir(&path).with_context(|| format!("removing cgroup {}", path.display()))
    }

    fn write(&self, name: &str, file: &str, value: &str) -> Result<()> {
        let path = self.path(name).join(file);
        fs::write(&path, value).with_context(|| format!("writing `{value}` to {}", path.display()))
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        // Best effort: children first, then the parent. A group that still
        // has a process stays; the VM powers off anyway.
        if let Ok(rd) = fs::read_dir(&self.parent) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        let _ = fs::remove_dir(&self.parent);
    }
}

fn mkdir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating cgroup {}", dir.display()))
        }
        _ => Ok(()),
    }
}
