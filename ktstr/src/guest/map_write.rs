//! Writes a value into a loaded scheduler's global variable, from inside
//! the guest, without the scheduler's cooperation.
//!
//! A BPF object's globals live in libbpf's internal maps, one per section
//! (`<obj prefix>.bss`, `.data`, `.rodata`): single-element array maps whose
//! value is the whole section. The map's BTF value type is that section's
//! DATASEC, which lists every variable with its offset and size; that is
//! how a name becomes a byte range.

use anyhow::{bail, ensure, Context, Result};
use libbpf_rs::btf::types::DataSec;
use libbpf_rs::btf::{BtfType, TypeId};
use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo, MapInfo, MapInfoIter, ProgInfoIter};
use libbpf_rs::{Btf, MapCore, MapFlags, MapHandle, MapType};

/// The write to make (the plan's type: the host says what, the guest does it).
pub use crate::wire::plan::MapWrite;

/// Does the write and returns what was written where, in one line.
pub fn apply(w: &MapWrite) -> Result<String> {
    let t = Target::find(&w.map, &w.var)?;
    // A frozen map (libbpf freezes .rodata once loaded) refuses writes
    // with a bare EPERM; say why before trying.
    ensure!(
        t.map.query_fdinfo().ok().and_then(|f| f.frozen) != Some(true),
        "map {} (id {}) is read-only after load (frozen, as libbpf does with .rodata): its variables \
         can only be set by the loader before load, e.g. through a command-line flag",
        t.name,
        t.info.id
    );
    let bits = t.size * 8;
    ensure!(
        t.size == 8 || w.value >> bits == 0,
        "value {} does not fit variable {} (u{bits}): the largest it takes is {}",
        w.value,
        w.var,
        (1u64 << bits) - 1
    );
    // Read-modify-write of the whole section: the kernel only updates
    // whole values. Whatever the BPF side changes between the two calls
    // (its own counters) is overwritten with what was read.
    let mut bytes = t.section()?;
    bytes[t.offset..t.offset + t.size].copy_from_slice(&w.value.to_le_bytes()[..t.size]);
    t.map.update(&KEY, &bytes, MapFlags::ANY).with_context(|| format!("writing map {} (id {})", t.name, t.info.id))?;
    Ok(format!(
        "wrote {} = {} (u{bits} at offset {}) into map {} (id {}){}",
        w.var, w.value, t.offset, t.name, t.info.id, t.why
    ))
}

/// The current value of `var` in the map whose name ends with `map`,
/// found the same way [`apply`] finds it.
pub fn read(map: &str, var: &str) -> Result<u64> {
    let t = Target::find(map, var)?;
    let mut le = [0u8; 8];
    le[..t.size].copy_from_slice(&t.section()?[t.offset..t.offset + t.size]);
    Ok(u64::from_le_bytes(le))
}

/// The one element of a section's array map.
const KEY: [u8; 4] = 0u32.to_ne_bytes();

/// A variable located: its map, opened, and its byte range in the value.
struct Target {
    map: MapHandle,
    info: MapInfo,
    name: String,
    /// Which of several matching maps was taken, and why ("" if one).
    why: String,
    offset: usize,
    size: usize,
}

impl Target {
    fn find(map_suffix: &str, var: &str) -> Result<Target> {
        let (info, why) = pick_map(map_suffix)?;
        let name = info.name.to_string_lossy().into_owned();
        let map = MapHandle::from_map_id(info.id).with_context(|| format!("opening map {name} (id {})", info.id))?;
        ensure!(
            map.map_type() == MapType::Array && map.key_size() == 4,
            "map {name} (id {}) is a {:?} map, not a section's array map: name one ending in .bss or .data",
            info.id,
            map.map_type()
        );
        let (offset, size) = find_var(&info, &name, var)?;
        ensure!(
            matches!(size, 1 | 2 | 4 | 8),
            "variable {var} in map {name} is {size} bytes: only 1-, 2-, 4- and 8-byte integers can be read or written"
        );
        ensure!(
            offset + size <= map.value_size() as usize,
            "variable {var} at offset {offset} (+{size}) lies beyond map {name}'s {}-byte value: its BTF does not match",
            map.value_size()
        );
        Ok(Target { map, info, name, why, offset, size })
    }

    /// The whole section as it is now.
    fn section(&self) -> Result<Vec<u8>> {
        self.map
            .lookup(&KEY, MapFlags::ANY)
            .with_context(|| format!("reading map {} (id {})", self.name, self.info.id))?
            .with_context(|| format!("map {} (id {}) has no element 0", self.name, self.info.id))
    }
}

/// The loaded map whose name ends with `suffix`, and, when several do, a
/// note on which was taken and why.
fn pick_map(suffix: &str) -> Result<(MapInfo, String)> {
    let all: Vec<MapInfo> = MapInfoIter::default().collect();
    let mut hits: Vec<&MapInfo> = all.iter().filter(|m| m.name.to_string_lossy().ends_with(suffix)).collect();
    if hits.is_empty() {
        let names: Vec<String> = all.iter().map(|m| format!("{} (id {})", m.name.to_string_lossy(), m.id)).collect();
        bail!(
            "no loaded BPF map's name ends with `{suffix}`; loaded maps: {}",
            if names.is_empty() { "none (is the scheduler running?)".into() } else { names.join(", ") }
        );
    }
    if hits.len() == 1 {
        return Ok((hits[0].clone(), String::new()));
    }
    // Maps of one object share its BTF, and so does the struct_ops map a
    // scheduler attaches through: that ties a section to a live scheduler.
    let attached_btf: Vec<u32> = LinkInfoIter::default()
        .filter_map(|l| match l.info {
            LinkTypeInfo::StructOps(s) => all.iter().find(|m| m.id == s.map_id).map(|m| m.btf_id),
            _ => None,
        })
        .filter(|&id| id != 0)
        .collect();
    let ids: Vec<String> = hits.iter().map(|m| m.id.to_string()).collect();
    hits.sort_by_key(|m| (attached_btf.contains(&m.btf_id), m.id));
    let pick = hits.last().unwrap();
    let reason = if attached_btf.contains(&pick.btf_id) {
        "the one of the attached struct_ops scheduler"
    } else {
        "none belongs to an attached struct_ops scheduler: the newest"
    };
    Ok(((*pick).clone(), format!("; {} maps matched `{suffix}` (ids {}), took {reason}", hits.len(), ids.join(", "))))
}

/// Offset and size of `var` in the DATASEC that is the map's value type.
fn find_var(info: &MapInfo, name: &str, var: &str) -> Result<(usize, usize)> {
    ensure!(
        info.btf_id != 0 && info.btf_value_type_id != 0,
        "map {name} (id {}) carries no BTF value type, so its variables have no names",
        info.id
    );
    // libbpf-rs loads an object's BTF through one of its programs; they
    // share the BTF object with the object's maps.
    let prog = ProgInfoIter::default().find(|p| p.btf_id == info.btf_id).with_context(|| {
        format!(
            "no loaded program shares map {name}'s BTF (id {}), and libbpf-rs loads an object's BTF only \
             through a program of it: is the scheduler's object still loaded?",
            info.btf_id
        )
    })?;
    let btf = Btf::from_prog_id(prog.id).with_context(|| format!("loading BTF id {}", info.btf_id))?;
    let sec: DataSec = btf.type_by_id(TypeId::from(info.btf_value_type_id)).with_context(|| {
        format!(
            "map {name}'s value type (BTF type {}) is not a DATASEC: not a global-variable section",
            info.btf_value_type_id
        )
    })?;
    let mut names = Vec::new();
    for v in sec.iter() {
        let vname = btf.type_by_id::<BtfType>(v.ty).and_then(|t| t.name()).map(|n| n.to_string_lossy().into_owned());
        let vname = vname.unwrap_or_default();
        if vname == var {
            return Ok((v.offset as usize, v.size));
        }
        names.push(vname);
    }
    bail!("map {name} (id {}) has no variable `{var}`; its variables: {}", info.id, names.join(", "))
}
