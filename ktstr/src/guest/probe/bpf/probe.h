/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between probe.bpf.c and its loader (guest/probe/attach.rs,
 * event.rs), which reads these structs as the skeleton generates them. */
#ifndef KTSTR_PROBE_H
#define KTSTR_PROBE_H

#define KTSTR_PROBE_MAX_FUNCS 256
#define KTSTR_PROBE_MAX_ARGS 6
#define KTSTR_PROBE_MAX_FIELDS 16
#define KTSTR_PROBE_SLOTS 16

enum ktstr_probe_kind {
	KTSTR_EV_ENTRY = 0,
	KTSTR_EV_EXIT = 1,
	KTSTR_EV_TRIGGER = 2,
};

enum ktstr_probe_stat {
	KTSTR_STAT_EVENTS = 0,
	KTSTR_STAT_LOST = 1,
	KTSTR_STAT_UNMATCHED = 2,
	KTSTR_STAT_TRIGGERED = 3,
	KTSTR_PROBE_NR_STATS = 4,
};

struct ktstr_field_spec {
	unsigned int off;
	unsigned char arg;
	unsigned char size;
	/* Read a pointer at `off`, then 8 bytes where it points. */
	unsigned char deref;
	unsigned char pad;
};

struct ktstr_func_spec {
	unsigned int live;
	unsigned int nargs;
	unsigned int nfields;
	/* The function is `f(u64 *ctx)` (a struct_ops program). */
	unsigned int args_via_ctx;
	struct ktstr_field_spec fields[KTSTR_PROBE_MAX_FIELDS];
};

struct ktstr_probe_event {
	unsigned long long ts;
	unsigned long long task;
	unsigned int func;
	unsigned int cpu;
	unsigned int kind;
	unsigned int pid;
	unsigned long long args[KTSTR_PROBE_MAX_ARGS];
	unsigned long long fields[KTSTR_PROBE_MAX_FIELDS];
	char comm[16];
};

#endif
