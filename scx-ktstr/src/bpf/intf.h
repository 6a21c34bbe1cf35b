/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Definitions shared by the BPF scheduler (main.bpf.c) and its Rust loader
 * (bindgen turns this header into $OUT_DIR/bpf_intf.rs).
 */
#ifndef __KTSTR_INTF_H
#define __KTSTR_INTF_H

enum ktstr_consts {
	KTSTR_NSEC_PER_USEC	= 1000,
	/* Default time slice; the loader's --slice-us default. */
	KTSTR_SLICE_US_DFL	= 20000,
	/* Id of the single shared DSQ all queued tasks wait in. */
	KTSTR_SHARED_DSQ	= 0,
};

#endif /* __KTSTR_INTF_H */
