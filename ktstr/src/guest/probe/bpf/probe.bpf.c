/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Auto-repro's probes: one generic program per attach kind, told what to
 * read by the `specs` map that the guest fills from BTF before attaching.
 *
 * - kprobe: kernel function entry; the function is the attach cookie.
 * - fentry_N / fexit_N: entry and return of a BPF struct_ops callback or a
 *   kernel function. fentry/fexit need their target at load time, so the
 *   object is loaded once per batch of SLOTS targets, each slot's function
 *   id in `slot_func`; later batches reuse the first one's maps.
 * - trigger (tp_btf/sched_ext_exit): fires once, when the kernel claims the
 *   scheduler's exit, in the context of the task current at that moment.
 *
 * Every firing reads its arguments, then the fields its spec names
 * (an offset into one argument, optionally through one pointer, as for
 * `p->cpus_ptr`), and sends one event through the ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "probe.h"

/* guest/probe/event.rs reads this layout. */
_Static_assert(sizeof(struct ktstr_probe_event) == 224, "probe event layout");

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KTSTR_PROBE_MAX_FUNCS);
	__type(key, u32);
	__type(value, struct ktstr_func_spec);
} specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Shared counters (a map, not .bss: every batch reuses the same one). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KTSTR_PROBE_NR_STATS);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

/* The function id of each fentry/fexit slot of this batch. */
const volatile u32 slot_func[KTSTR_PROBE_SLOTS];

/*
 * Never read: it makes the skeleton generate `struct ktstr_probe_event`
 * for the loader (a ring buffer's records have no type of their own), so
 * a change here breaks the Rust build instead of the decoding.
 */
const volatile struct ktstr_probe_event ktstr_probe_event_layout;

static __always_inline void count(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline void emit(u32 func, u32 kind, u64 *args, u32 via_ctx_ok)
{
	struct ktstr_func_spec *s = bpf_map_lookup_elem(&specs, &func);
	struct ktstr_probe_event *e;
	int i;

	if (!s || !s->live) {
		count(KTSTR_STAT_UNMATCHED);
		return;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KTSTR_STAT_LOST);
		return;
	}
	count(KTSTR_STAT_EVENTS);
	e->ts = bpf_ktime_get_ns();
	e->task = bpf_get_current_task();
	e->func = func;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->pid = bpf_get_current_pid_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	/*
	 * A struct_ops callback is compiled as `f(u64 *ctx)`: its real
	 * arguments are the array the kernel passed in.
	 */
	if (s->args_via_ctx && via_ctx_ok) {
		u64 ctx = args[0];

		for (i = 0; i < KTSTR_PROBE_MAX_ARGS; i++) {
			e->args[i] = 0;
			if (i < s->nargs)
				bpf_probe_read_kernel(&e->args[i], 8, (void *)(ctx + 8 * i));
		}
	} else {
		for (i = 0; i < KTSTR_PROBE_MAX_ARGS; i++)
			e->args[i] = args[i];
	}
	for (i = 0; i < KTSTR_PROBE_MAX_FIELDS; i++) {
		struct ktstr_field_spec *f = &s->fields[i];
		u32 arg = f->arg, size = f->size;
		u64 base, v = 0;

		e->fields[i] = 0;
		if (i >= s->nfields || arg >= KTSTR_PROBE_MAX_ARGS)
			continue;
		base = e->args[arg];
		if (!base)
			continue;
		if (f->deref) {
			u64 p = 0;

			bpf_probe_read_kernel(&p, 8, (void *)(base + f->off));
			base = p;
			if (!base)
				continue;
			bpf_probe_read_kernel(&v, 8, (void *)base);
		} else {
			if (size > 8)
				size = 8;
			bpf_probe_read_kernel(&v, size, (void *)(base + f->off));
		}
		e->fields[i] = v;
	}
	bpf_ringbuf_submit(e, 0);
}

SEC("kprobe")
int kprobe_entry(struct pt_regs *ctx)
{
	u64 args[KTSTR_PROBE_MAX_ARGS] = {
		PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx),
		PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx), PT_REGS_PARM6(ctx),
	};

	emit(bpf_get_attach_cookie(ctx), KTSTR_EV_ENTRY, args, 0);
	return 0;
}

static __always_inline void tracing(void *ctx, u32 slot, u32 kind)
{
	u64 args[KTSTR_PROBE_MAX_ARGS] = {};
	int i;

	for (i = 0; i < KTSTR_PROBE_MAX_ARGS; i++)
		bpf_get_func_arg(ctx, i, &args[i]);
	emit(slot_func[slot], kind, args, 1);
}

#define SLOT(n)								\
	SEC("fentry") int fentry_##n(void *ctx)				\
	{ tracing(ctx, n, KTSTR_EV_ENTRY); return 0; }			\
	SEC("fexit") int fexit_##n(void *ctx)				\
	{ tracing(ctx, n, KTSTR_EV_EXIT); return 0; }

SLOT(0)
SLOT(1)
SLOT(2)
SLOT(3)
SLOT(4)
SLOT(5)
SLOT(6)
SLOT(7)
SLOT(8)
SLOT(9)
SLOT(10)
SLOT(11)
SLOT(12)
SLOT(13)
SLOT(14)
SLOT(15)

SEC("tp_btf")
int trigger(void *ctx)
{
	u32 key = KTSTR_STAT_TRIGGERED;
	u64 *fired = bpf_map_lookup_elem(&stats, &key);
	struct ktstr_probe_event *e;

	/* One-shot: only the first exit claimed is the crash. */
	if (!fired || __sync_val_compare_and_swap(fired, 0, 1) != 0)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KTSTR_STAT_LOST);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->task = bpf_get_current_task();
	e->cpu = bpf_get_smp_processor_id();
	e->kind = KTSTR_EV_TRIGGER;
	e->pid = bpf_get_current_pid_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
