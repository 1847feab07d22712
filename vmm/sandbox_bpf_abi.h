/* sandbox_bpf_abi.h: what vmm/gen/sandbox_gen.c (the build-time compiler
 * of the sandbox's seccomp filters) and vmm/sandbox.c agree on. */
#ifndef ZHV_VMM_SANDBOX_BPF_ABI_H
#define ZHV_VMM_SANDBOX_BPF_ABI_H

/* Compiled in place of zhv's pid (tgkill's first argument), patched at run
 * time. Not a pid Linux hands out (pid_max is at most 2^22). */
#define SANDBOX_BPF_PID_PLACEHOLDER 0x7a68765fu

/* The SIGSYS message's table of system call names: numbers below
 * SANDBOX_NAMES_MAX, names shorter than SANDBOX_NAME_LEN. */
#define SANDBOX_NAMES_MAX 512
#define SANDBOX_NAME_LEN 24

/* What a filter allows beyond the base set, as a bit mask: a program is
 * compiled for each combination. */
#define SANDBOX_FEAT_CONTROL 1u /* zhv run --control */
#define SANDBOX_FEAT_GDB 2u     /* zhv run --gdb */
#define SANDBOX_FEATS 4u        /* combinations */

/* One compiled program: (pid_at) is the instruction whose constant is
 * zhv's pid, -1 when the program compares none. */
struct sandbox_bpf_prog {
	const struct sock_filter *insns;
	unsigned short len;
	long pid_at;
};

#endif
