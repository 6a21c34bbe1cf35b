/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The monitor's symbol lookup: the kernel's own kallsyms_lookup_name()
 * for a handful of names, through bpf_kallsyms_lookup_name() in a syscall
 * program run once with BPF_PROG_TEST_RUN.
 *
 * Why not /proc/kallsyms: it formats every one of the kernel's ~200k
 * symbols to find six, which costs seconds of a vCPU under TCG; the
 * kernel's lookup is a binary search over the same table.
 *
 * User space fills names[] and name_lens[] (with the NUL) in .bss after
 * load, runs the program, and reads addrs[] and errs[].
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define KSYM_MAX 16
#define KSYM_NAME_LEN 64

char _license[] SEC("license") = "GPL";

char names[KSYM_MAX][KSYM_NAME_LEN];
u32 name_lens[KSYM_MAX];
u32 nr_names;
u64 addrs[KSYM_MAX];
s64 errs[KSYM_MAX];

SEC("syscall")
int lookup(void *ctx)
{
	u32 i;

	for (i = 0; i < KSYM_MAX; i++) {
		u32 len;

		if (i >= nr_names)
			break;
		len = name_lens[i];
		/* The helper wants the exact size, NUL included. */
		if (len < 2 || len > KSYM_NAME_LEN) {
			errs[i] = -22; /* EINVAL */
			continue;
		}
		errs[i] = bpf_kallsyms_lookup_name(names[i], len, 0, &addrs[i]);
	}
	return 0;
}
