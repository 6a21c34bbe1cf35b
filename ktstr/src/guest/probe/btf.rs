//! Signatures and field offsets from BTF: what each probe reads and how
//! the host decodes it.
//!
//! Kernel functions take their signature from vmlinux BTF. A struct_ops
//! callback is compiled as `f(u64 *ctx)`, so its real signature is the
//! kernel's: the CFI stub `sched_ext_ops__<member>` has the parameter names
//! (the member's own function-pointer type has none).
//!
//! Known structs have curated fields, by path through nested and anonymous
//! members (`scx.ddsp_dsq_id`), resolved to byte offsets here so the BPF
//! side only reads `(argument, offset, size)`. Any other struct pointer gets
//! its top-level scalar, enum and cpumask-pointer fields.

use libbpf_rs::btf::types::{Composite, Enum, Enum64, FuncProto, Int, MemberAttr};
use libbpf_rs::btf::{BtfKind, BtfType, HasSize};
use libbpf_rs::Btf;

use crate::probe::{Field, Param, ValueKind};

/// Fields of one function, in the order of its params' fields.
pub(crate) const MAX_FIELDS: usize = 16;
/// Registers a kprobe reads and arguments a trampoline passes on.
pub(crate) const MAX_ARGS: usize = 6;
/// Fields discovered on a struct no table knows.
const DISCOVERED_MAX: usize = 6;

/// `(shown name, member path, kind)`; a path starting with `*` is a
/// pointer whose first 8 bytes are read (a cpumask's first word).
type Curated = (&'static str, &'static str, Curate);

#[derive(Clone, Copy)]
enum Curate {
    Int,
    Dsq,
    Enq,
    Flags,
    Mask,
}

const TASK_STRUCT: &[Curated] = &[
    ("pid", "pid", Curate::Int),
    ("cpus_ptr", "*cpus_ptr", Curate::Mask),
    ("dsq_id", "scx.ddsp_dsq_id", Curate::Dsq),
    ("enq_flags", "scx.ddsp_enq_flags", Curate::Enq),
    ("slice", "scx.slice", Curate::Int),
    ("vtime", "scx.dsq_vtime", Curate::Int),
    ("weight", "scx.weight", Curate::Int),
    ("sticky_cpu", "scx.sticky_cpu", Curate::Int),
    ("scx_flags", "scx.flags", Curate::Flags),
];
const RQ: &[Curated] = &[("cpu", "cpu", Curate::Int)];
const DSQ: &[Curated] = &[("id", "id", Curate::Dsq), ("nr", "nr", Curate::Int)];

fn curated(name: &str) -> Option<&'static [Curated]> {
    match name {
        "task_struct" => Some(TASK_STRUCT),
        "rq" => Some(RQ),
        "scx_dispatch_q" => Some(DSQ),
        _ => None,
    }
}

/// What the BPF side reads for one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldRead {
    pub arg: u8,
    pub off: u32,
    pub size: u8,
    pub deref: bool,
}

/// A function's decoded signature and the reads behind its fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signature {
    pub params: Vec<Param>,
    pub reads: Vec<FieldRead>,
}

pub(crate) struct Resolver {
    btf: Btf<'static>,
}

impl Resolver {
    pub fn vmlinux() -> anyhow::Result<Self> {
        let btf =
            Btf::from_vmlinux().map_err(|e| anyhow::anyhow!("reading vmlinux BTF (/sys/kernel/btf/vmlinux): {e}"))?;
        Ok(Resolver { btf })
    }

    /// A kernel function's signature.
    pub(crate) fn kernel_func(&self, name: &str) -> Option<Signature> {
        let func = self.btf.type_by_name::<libbpf_rs::btf::types::Func>(name)?;
        let proto = FuncProto::try_from(func.next_type()?).ok()?;
        Some(self.signature(proto))
    }

    /// The signature of the `sched_ext_ops` member a callback implements.
    pub(crate) fn ops_member(&self, member: &str) -> Option<Signature> {
        self.kernel_func(&format!("sched_ext_ops__{member}")).or_else(|| {
            let ops = Composite::try_from(self.btf.type_by_name::<BtfType>("sched_ext_ops")?).ok()?;
            let m = ops.iter().find(|m| m.name.is_some_and(|n| n == member))?;
            let ptr = self.btf.type_by_id::<BtfType>(m.ty)?.skip_mods_and_typedefs();
            let proto = FuncProto::try_from(ptr.next_type()?.skip_mods_and_typedefs()).ok()?;
            Some(self.signature(proto))
        })
    }

    /// `(member name, byte offset)` of each function pointer of
    /// `struct sched_ext_ops`, and the offset of the ops inside the value
    /// of a struct_ops map (`struct bpf_struct_ops_sched_ext_ops`'s `data`).
    pub(crate) fn ops_callbacks(&self) -> Option<(usize, Vec<(String, usize)>)> {
        let value = Composite::try_from(self.btf.type_by_name::<BtfType>("bpf_struct_ops_sched_ext_ops")?).ok()?;
        let data = value.iter().find(|m| m.name.is_some_and(|n| n == "data"))?;
        let data_off = byte_offset(data.attr)?;
        let ops = Composite::try_from(self.btf.type_by_name::<BtfType>("sched_ext_ops")?).ok()?;
        let members = ops
            .iter()
            .filter_map(|m| {
                let t = self.btf.type_by_id::<BtfType>(m.ty)?.skip_mods_and_typedefs();
                let is_fn =
                    t.kind() == BtfKind::Ptr && t.next_type()?.skip_mods_and_typedefs().kind() == BtfKind::FuncProto;
                is_fn.then(|| Some((m.name?.to_string_lossy().into_owned(), byte_offset(m.attr)?)))?
            })
            .collect();
        Some((data_off, members))
    }

    fn signature(&self, proto: FuncProto<'_>) -> Signature {
        let mut sig = Signature::default();
        for (i, p) in proto.iter().enumerate().take(MAX_ARGS) {
            // The CFI stubs carry the kernel's argument annotations
            // (`prev__nullable`): the name is what comes before.
            let name = p
                .name
                .map(|n| n.to_string_lossy().trim_end_matches("__nullable").to_string())
                .filter(|n| !n.is_empty());
            let Some(ty) = self.btf.type_by_id::<BtfType>(p.ty) else { continue };
            let mut param = Param {
                name: name.unwrap_or_else(|| format!("arg{i}")),
                type_name: type_name(ty),
                kind: scalar_kind(ty).unwrap_or(ValueKind::Ptr),
                fields: Vec::new(),
            };
            if let Some(target) = pointee_struct(ty) {
                let room = MAX_FIELDS - sig.reads.len();
                for (field, read) in self.fields(target, i as u8).into_iter().take(room) {
                    param.fields.push(field);
                    sig.reads.push(read);
                }
            }
            sig.params.push(param);
        }
        sig
    }

    fn fields(&self, st: Composite<'_>, arg: u8) -> Vec<(Field, FieldRead)> {
        let name = st.name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(table) = curated(&name) {
            return table
                .iter()
                .filter_map(|(shown, path, how)| {
                    let (deref, path) = path.strip_prefix('*').map_or((false, *path), |p| (true, p));
                    let (off, ty) = member_path(&self.btf, st, path)?;
                    let kind = match how {
                        Curate::Int => scalar_kind(ty)?,
                        Curate::Dsq => ValueKind::DsqId,
                        Curate::Enq => ValueKind::EnqFlags,
                        Curate::Flags => ValueKind::ScxFlags,
                        Curate::Mask => ValueKind::Cpumask,
                    };
                    let size = if deref { 8 } else { size_of(ty)? };
                    Some((Field { name: shown.to_string(), kind }, FieldRead { arg, off, size, deref }))
                })
                .collect();
        }
        // Unknown struct: its own scalars, enums and cpumask pointers.
        st.iter()
            .filter_map(|m| {
                let off = byte_offset(m.attr)?;
                let ty = self.btf.type_by_id::<BtfType>(m.ty)?;
                let mname = m.name?.to_string_lossy().into_owned();
                if pointee_name(ty).as_deref() == Some("cpumask") {
                    let read = FieldRead { arg, off: off as u32, size: 8, deref: true };
                    return Some((Field { name: mname, kind: ValueKind::Cpumask }, read));
                }
                let kind = scalar_kind(ty)?;
                let read = FieldRead { arg, off: off as u32, size: size_of(ty)?, deref: false };
                Some((Field { name: mname, kind }, read))
            })
            .take(DISCOVERED_MAX)
            .collect()
    }
}

/// A member's byte offset; bitfields are not read.
fn byte_offset(attr: MemberAttr) -> Option<usize> {
    match attr {
        MemberAttr::Normal { offset } if offset % 8 == 0 => Some(offset as usize / 8),
        _ => None,
    }
}

/// `a.b.c` through nested (and anonymous) members: byte offset and type.
fn member_path<'b>(btf: &'b Btf<'static>, st: Composite<'b>, path: &str) -> Option<(u32, BtfType<'b>)> {
    let mut cur = st;
    let mut off = 0usize;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (o, ty) = find_member(btf, cur, part, 0)?;
        off += o;
        if parts.peek().is_none() {
            return Some((off as u32, ty));
        }
        cur = Composite::try_from(ty.skip_mods_and_typedefs()).ok()?;
    }
    None
}

/// A named member, looking inside anonymous structs and unions.
fn find_member<'b>(btf: &'b Btf<'static>, st: Composite<'b>, name: &str, depth: u8) -> Option<(usize, BtfType<'b>)> {
    for m in st.iter() {
        let ty = btf.type_by_id::<BtfType>(m.ty)?;
        match m.name {
            Some(n) if n == name => return Some((byte_offset(m.attr)?, ty)),
            None if depth < 4 => {
                if let Ok(inner) = Composite::try_from(ty.skip_mods_and_typedefs()) {
                    if let Some((o, t)) = find_member(btf, inner, name, depth + 1) {
                        return Some((byte_offset(m.attr)? + o, t));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn size_of(ty: BtfType<'_>) -> Option<u8> {
    let t = ty.skip_mods_and_typedefs();
    let size = match t.kind() {
        BtfKind::Int => Int::try_from(t).ok()?.size(),
        BtfKind::Enum => Enum::try_from(t).ok()?.size(),
        BtfKind::Enum64 => Enum64::try_from(t).ok()?.size(),
        BtfKind::Ptr => 8,
        _ => return None,
    };
    (1..=8).contains(&size).then_some(size as u8)
}

/// How a scalar reads; `None` for anything else.
fn scalar_kind(ty: BtfType<'_>) -> Option<ValueKind> {
    let t = ty.skip_mods_and_typedefs();
    match t.kind() {
        BtfKind::Int => {
            let int = Int::try_from(t).ok()?;
            let signed = matches!(int.encoding, libbpf_rs::btf::types::IntEncoding::Signed);
            Some(ValueKind::Int { signed, size: size_of(t)? })
        }
        BtfKind::Enum => {
            let e = Enum::try_from(t).ok()?;
            let variants = e.iter().filter_map(|v| Some((v.name?.to_string_lossy().into_owned(), v.value))).collect();
            Some(ValueKind::Enum { variants })
        }
        BtfKind::Enum64 => Some(ValueKind::Int { signed: false, size: 8 }),
        _ => None,
    }
}

fn pointee<'b>(ty: BtfType<'b>) -> Option<BtfType<'b>> {
    let t = ty.skip_mods_and_typedefs();
    (t.kind() == BtfKind::Ptr).then(|| t.next_type().map(|p| p.skip_mods_and_typedefs()))?
}

fn pointee_struct(ty: BtfType<'_>) -> Option<Composite<'_>> {
    Composite::try_from(pointee(ty)?).ok().filter(|c| c.is_struct)
}

fn pointee_name(ty: BtfType<'_>) -> Option<String> {
    pointee(ty)?.name().map(|n| n.to_string_lossy().into_owned())
}

/// As C spells it: `task_struct *`, `u64` (a typedef keeps its name).
fn type_name(ty: BtfType<'_>) -> String {
    if let Some(p) = pointee(ty) {
        return match p.name() {
            Some(n) => format!("{} *", n.to_string_lossy()),
            None => "void *".into(),
        };
    }
    let mut t = ty;
    // `const u64` reads as `u64`: skip qualifiers, not typedefs.
    while matches!(t.kind(), BtfKind::Const | BtfKind::Volatile | BtfKind::Restrict | BtfKind::TypeTag) {
        match t.next_type() {
            Some(n) => t = n,
            None => break,
        }
    }
    t.name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "?".into())
}
