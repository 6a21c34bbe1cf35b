//! The scheduler's BPF objects, held from the moment it attaches so that
//! a post-mortem can still read them after it died: a crashed scheduler's
//! process exits, and with its last file descriptor its maps and programs
//! would be freed. The guest opens its own descriptor to each (found in
//! the scheduler process's fdinfo), and on a failure reads them into a
//! [`FailureDump`].

use std::os::fd::{FromRawFd, OwnedFd};

use libbpf_rs::query::{MapInfo, MapInfoIter, ProgInfoIter, ProgramInfo};
use libbpf_rs::{Btf, MapCore, MapFlags, MapHandle, MapType};

use crate::dump::{value, FailureDump, MapDump, MapEntry, ProgStats};

/// Entries read per map: enough for a scheduler's tables, bounded for
/// the channel and the JSON file.
const ENTRIES_MAX: usize = 256;
/// Keys of a hash map walked to count what was not read.
const COUNT_MAX: usize = 16 * ENTRIES_MAX;

/// What a run's post-mortem can read.
pub(crate) struct Held {
    maps: Vec<(MapInfo, MapHandle)>,
    /// Program ids with a descriptor that keeps each alive.
    progs: Vec<(u32, OwnedFd)>,
    problems: Vec<String>,
}

/// Opens the maps and programs the scheduler process `pid` has open.
pub fn hold(pid: u32) -> Held {
    let (prog_ids, map_ids, mut problems) = owned_ids(pid);
    let mut progs = Vec::new();
    for id in prog_ids {
        // SAFETY: a plain syscall wrapper; a non-negative return is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
        if fd < 0 {
            problems.push(format!("program id {id}: cannot open ({})", std::io::Error::from_raw_os_error(-fd)));
            continue;
        }
        progs.push((id, unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    // Not the struct_ops map: for a scheduler registered without a link,
    // holding it would keep the scheduler registered after its process died.
    let infos: Vec<MapInfo> =
        MapInfoIter::default().filter(|m| map_ids.contains(&m.id) && m.ty != MapType::StructOps).collect();
    let mut maps = Vec::new();
    for info in infos {
        match MapHandle::from_map_id(info.id) {
            Ok(h) => maps.push((info, h)),
            Err(e) => problems.push(format!("map id {} ({}): cannot open: {e}", info.id, info.name.to_string_lossy())),
        }
    }
    Held { maps, progs, problems }
}

/// `prog_id:` and `map_id:` of the process's BPF descriptors.
fn owned_ids(pid: u32) -> (Vec<u32>, Vec<u32>, Vec<String>) {
    let (mut progs, mut maps) = (Vec::new(), Vec::new());
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => return (progs, maps, vec![format!("cannot list {dir}: {e}")]),
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        for line in text.lines() {
            let (list, rest) = if let Some(r) = line.strip_prefix("prog_id:") {
                (&mut progs, r)
            } else if let Some(r) = line.strip_prefix("map_id:") {
                (&mut maps, r)
            } else {
                continue;
            };
            if let Ok(id) = rest.trim().parse::<u32>() {
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
    }
    progs.sort_unstable();
    maps.sort_unstable();
    (progs, maps, Vec::new())
}

impl Held {
    /// Reads everything held, now.
    pub fn dump(&self, taken: &str, at_ms: u64) -> FailureDump {
        // All of one scheduler's maps and programs share its object's BTF.
        let btf = self.progs.first().and_then(|(id, _)| Btf::from_prog_id(*id).ok());
        let mut problems = self.problems.clone();
        if btf.is_none() && !self.maps.is_empty() {
            problems.push("the scheduler's BTF could not be loaded: map contents are shown as hex".into());
        }
        FailureDump {
            taken: taken.to_string(),
            at_ms,
            maps: self.maps.iter().map(|(info, h)| read_map(info, h, btf.as_ref())).collect(),
            progs: self.prog_stats(),
            problems,
        }
    }

    /// The held programs' counters, in id order.
    pub(crate) fn prog_stats(&self) -> Vec<ProgStats> {
        read_prog_stats(|p| self.progs.iter().any(|(id, _)| *id == p.id))
    }
}

/// The counters of the loaded programs `keep` picks, in id order.
pub(crate) fn read_prog_stats(keep: impl Fn(&ProgramInfo) -> bool) -> Vec<ProgStats> {
    ProgInfoIter::default()
        .filter(|p| keep(p))
        .map(|p| ProgStats {
            id: p.id,
            name: p.name.to_string_lossy().into_owned(),
            prog_type: format!("{:?}", p.ty),
            run_cnt: p.run_cnt,
            run_time_ns: p.run_time_ns,
            recursion_misses: p.recursion_misses,
            verified_insns: p.verified_insns,
        })
        .collect()
}

fn read_map(info: &MapInfo, h: &MapHandle, btf: Option<&Btf>) -> MapDump {
    let mut d = MapDump {
        id: info.id,
        name: info.name.to_string_lossy().into_owned(),
        map_type: format!("{:?}", info.ty),
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        typed: btf.is_some() && info.btf_value_type_id != 0,
        ..Default::default()
    };
    let percpu = matches!(info.ty, MapType::PercpuArray | MapType::PercpuHash | MapType::LruPercpuHash);
    if !matches!(info.ty, MapType::Array | MapType::Hash | MapType::LruHash) && !percpu {
        d.note = Some(format!("{:?} maps are not read by key: contents not captured", info.ty));
        return d;
    }
    let typed = |ty: u32, b: &[u8]| value::decode(btf, ty, b);
    let is_array = matches!(info.ty, MapType::Array | MapType::PercpuArray);
    for (n, key) in h.keys().enumerate() {
        if n >= ENTRIES_MAX {
            // An array has all its slots; a hash's rest is counted, to a point.
            d.omitted = if is_array { u64::from(info.max_entries) - ENTRIES_MAX as u64 } else { d.omitted + 1 };
            if is_array || n >= COUNT_MAX {
                break;
            }
            continue;
        }
        let v = if percpu {
            h.lookup_percpu(&key, MapFlags::ANY)
                .map(|v| v.map(|cpus| cpus.iter().map(|b| typed(info.btf_value_type_id, b)).collect()))
        } else {
            h.lookup(&key, MapFlags::ANY).map(|v| v.map(|b| typed(info.btf_value_type_id, &b)))
        };
        match v {
            Ok(Some(value)) => d.entries.push(MapEntry { key: typed(info.btf_key_type_id, &key), value }),
            // Deleted between the key walk and the lookup.
            Ok(None) => {}
            Err(e) => {
                d.note = Some(format!("lookup failed: {e}"));
                break;
            }
        }
    }
    if d.omitted > 0 {
        let more = if !is_array && d.omitted as usize + ENTRIES_MAX > COUNT_MAX { " at least" } else { "" };
        d.note = Some(format!("first {ENTRIES_MAX} entries read;{more} {} more not read", d.omitted));
    }
    d
}
