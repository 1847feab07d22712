/* spawn_floor.S: a host program with no libc and one page of code: it
 * writes 'Z' to stdout and exits with status 33, like the tiny guest's
 * VMMs. bench/vmm_startup.sh times it with the other contenders: its first
 * byte is the cost of posix_spawn + execve alone, and its ru_maxrss is
 * the floor the harness adds to every child's ru_maxrss (see
 * first_byte_timer.c), since its own RSS is a few KiB. x86-64 Linux. */
	.section .rodata
byte:	.ascii "Z"

	.text
	.globl _start
_start:
	mov $1, %eax          /* write(1, &byte, 1) */
	mov $1, %edi
	lea byte(%rip), %rsi
	mov $1, %edx
	syscall
	mov $60, %eax         /* exit(33) */
	mov $33, %edi
	syscall
	hlt
	.section .note.GNU-stack, "", @progbits
