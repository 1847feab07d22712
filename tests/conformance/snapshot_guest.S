/* snapshot_guest.S: guest code of snapshot_test.c (vCPU save and restore,
 * reset-to-snapshot, issue 9). Same order as the drivers. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* Must match snapshot_test.c. */
#define SNAP_PVCLOCK   0x7000
#define SNAP_DATA      0x8000
#define SNAP_RESULT    (SNAP_DATA + 0x00)
#define SNAP_T1        (SNAP_DATA + 0x08)
#define SNAP_T2        (SNAP_DATA + 0x10)
#define SNAP_LSTAR_OUT (SNAP_DATA + 0x18)
#define SNAP_XMM_IN    (SNAP_DATA + 0x20)
#define SNAP_XMM_OUT   (SNAP_DATA + 0x30)
#define SNAP_COUNTER   (SNAP_DATA + 0x40)
#define SNAP_R12_OUT   (SNAP_DATA + 0x48)
#define SNAP_HOSTCELL  (SNAP_DATA + 0x50)
#define SNAP_HOST_OUT  (SNAP_DATA + 0x58)
#define SNAP_PAGE2     0x200000
#define SNAP_ITERS     700
#define SNAP_LSTAR     0x5a5a1234

/* snap_compute: turn kvmclock on, set LSTAR, load XMM3, then a chain of
 * multiply-adds in RAX; halfway, the clock's system time into SNAP_T1 and
 * an OUT to TRAP_PORT (the checkpoint); then the second half, the clock
 * again into SNAP_T2, XMM3, RAX and LSTAR into memory. */
FUNCTION snap_compute
	mov $0x4b564d01, %ecx
	mov $(SNAP_PVCLOCK | 1), %eax
	xor %edx, %edx
	wrmsr
	wrmsr_imm X86_MSR_IA32_LSTAR, SNAP_LSTAR
	movdqu (SNAP_XMM_IN), %xmm3
	mov $0x0123456789abcdef, %rax
	mov $6364136223846793005, %r9
	mov $1442695040888963407, %r10
	mov $SNAP_ITERS, %r11d
snap_loop1:
	imul %r9, %rax
	add %r10, %rax
	dec %r11
	jnz snap_loop1
	mov (SNAP_PVCLOCK + 16), %rbx
	mov %rbx, (SNAP_T1)
	out %al, $TRAP_PORT
	mov $SNAP_ITERS, %r11d
snap_loop2:
	imul %r9, %rax
	add %r10, %rax
	dec %r11
	jnz snap_loop2
	mov (SNAP_PVCLOCK + 16), %rbx
	mov %rbx, (SNAP_T2)
	movdqu %xmm3, (SNAP_XMM_OUT)
	mov %rax, (SNAP_RESULT)
	mov $X86_MSR_IA32_LSTAR, %ecx
	rdmsr
	mov %eax, (SNAP_LSTAR_OUT)
	exit_test
END_FUNCTION snap_compute

/* snap_dirty: count one up in SNAP_COUNTER and SNAP_PAGE2, report R12 and
 * clobber it, copy SNAP_HOSTCELL to SNAP_HOST_OUT. */
FUNCTION snap_dirty
	mov (SNAP_COUNTER), %rax
	inc %rax
	mov %rax, (SNAP_COUNTER)
	mov %rax, (SNAP_PAGE2)
	mov %r12, (SNAP_R12_OUT)
	mov $0xdead, %r12
	mov (SNAP_HOSTCELL), %rbx
	mov %rbx, (SNAP_HOST_OUT)
	exit_test
END_FUNCTION snap_dirty
