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
	/* Id of the DSQ stalled tasks are parked in; nothing consumes it. */
	KTSTR_STALL_DSQ		= 1,
	/* --slow caps the slice at this, so that dispatches are frequent. */
	KTSTR_SLOW_SLICE_US	= 200,
	/*
	 * --slow burns this long in every ops.dispatch. Slices only expire
	 * on a tick (4 ms at HZ=250), so a lone spinning task loses about
	 * burn/tick of its CPU: 3 ms of 4 ms is a 4x drop.
	 */
	KTSTR_SLOW_BURN_US	= 3000,
	/* The most a degrade_rt write makes each ops.dispatch burn. */
	KTSTR_DEGRADE_MAX_US	= 10000,
	/* The CPU whose local DSQ the pile knob queues ktstr workers on. */
	KTSTR_PILE_CPU		= 0,
};

#endif /* __KTSTR_INTF_H */
