//! What to probe in the repro VM: the scheduler's struct_ops programs, the
//! kernel functions that call them, and the crash stack's functions, each
//! checked against what this kernel can trace.

use anyhow::{Context, Result};
use libbpf_rs::query::{MapInfoIter, ProgInfoIter};
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, ProgramType};

use super::btf::Resolver;

/// A struct_ops program of the running scheduler.
#[derive(Clone, Debug)]
pub(crate) struct Callback {
    pub prog_id: u32,
    /// The program's function name in its BTF (`ktstr_enqueue`), the
    /// fentry attach target; the kernel's own name is cut to 15 bytes.
    pub func: String,
    /// The `sched_ext_ops` member it implements (`enqueue`).
    pub member: String,
    /// `main.bpf.c:21`: the first line of its line info.
    pub source: Option<String>,
}

/// Kernel functions that call each callback on this kernel's sched_ext
/// (`kernel/sched/ext.c`), probed as bridges between the scheduler and
/// the kernel. Some are inlined on a given build: their kprobe fails to
/// attach, and the pipeline says so.
const CALLERS: &[(&str, &[&str])] = &[
    ("select_cpu", &["select_task_rq_scx"]),
    ("enqueue", &["do_enqueue_task", "enqueue_task_scx"]),
    ("dequeue", &["ops_dequeue", "dequeue_task_scx"]),
    ("dispatch", &["do_pick_task_scx", "balance_one"]),
    ("runnable", &["enqueue_task_scx"]),
    ("running", &["set_next_task_scx"]),
    ("stopping", &["put_prev_task_scx"]),
    ("quiescent", &["dequeue_task_scx"]),
    ("init_task", &["scx_init_task"]),
    ("exit_task", &["scx_exit_task"]),
    ("enable", &["scx_enable_task"]),
];

pub(crate) fn callers(member: &str) -> &'static [&'static str] {
    CALLERS.iter().find(|(m, _)| *m == member).map_or(&[], |(_, c)| c)
}

/// The loaded sched_ext scheduler's callbacks, from its struct_ops map:
/// a lookup of that map returns the ops with each callback's program id
/// in its function-pointer slot.
pub fn callbacks(btf: &Resolver) -> Result<Vec<Callback>> {
    let (data_off, members) =
        btf.ops_callbacks().context("vmlinux BTF has no struct bpf_struct_ops_sched_ext_ops / sched_ext_ops")?;
    let map = MapInfoIter::default()
        .find(|m| m.ty == MapType::StructOps)
        .context("no struct_ops map is loaded (is the scheduler attached?)")?;
    let handle = MapHandle::from_map_id(map.id).with_context(|| format!("opening struct_ops map id {}", map.id))?;
    let value = handle
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .with_context(|| format!("reading struct_ops map id {}", map.id))?
        .context("the struct_ops map is empty")?;
    let by_id: Vec<(u32, String)> = members
        .into_iter()
        .filter_map(|(member, off)| {
            let at = data_off + off;
            let id = u64::from_ne_bytes(value.get(at..at + 8)?.try_into().ok()?);
            (id != 0 && id <= u64::from(u32::MAX)).then_some((id as u32, member))
        })
        .collect();
    let opts = libbpf_rs::query::ProgInfoQueryOptions::default().include_func_info(true).include_line_info(true);
    let mut found = Vec::new();
    for info in ProgInfoIter::with_query_opts(opts) {
        if info.ty != ProgramType::StructOps {
            continue;
        }
        let Some((_, member)) = by_id.iter().find(|(id, _)| *id == info.id) else { continue };
        let (func, source) = prog_btf_names(&info).unwrap_or_else(|| (info.name.to_string_lossy().into_owned(), None));
        found.push(Callback { prog_id: info.id, func, member: member.clone(), source });
    }
    Ok(found)
}

/// The program's function name (its first func_info) and the file:line of
/// its first line info, from the program's BTF.
fn prog_btf_names(info: &libbpf_rs::query::ProgramInfo) -> Option<(String, Option<String>)> {
    let btf = libbpf_rs::Btf::from_prog_id(info.id).ok()?;
    let fi = info.func_info.first()?;
    let func = btf.type_by_id::<libbpf_rs::btf::BtfType>(fi.type_id.into())?.name()?.to_string_lossy().into_owned();
    let source = info.line_info.first().and_then(|li| {
        let file = btf_str(&btf, li.file_name_off)?;
        let base = file.rsplit('/').next().unwrap_or(&file).to_string();
        Some(format!("{base}:{}", li.line_num))
    });
    Some((func, source))
}

fn btf_str(btf: &libbpf_rs::Btf<'_>, off: u32) -> Option<String> {
    use libbpf_rs::AsRawLibbpf;
    // SAFETY: the btf pointer is valid for the borrow; libbpf returns a
    // pointer into its own string section (or null) for any offset.
    let p = unsafe { libbpf_sys::btf__name_by_offset(btf.as_libbpf_object().as_ptr(), off) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, owned by the BTF object.
    Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned())
}
