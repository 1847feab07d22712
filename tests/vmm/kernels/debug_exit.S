/* debug_exit.S: the smallest test kernel: write 0x2a to isa-debug-exit
 * (port 0xf4); zhv must exit with status (0x2a << 1) | 1 = 85. */
	.text
	.code32
	.globl test_main
test_main:
	mov $0x2a, %eax
	outl %eax, $0xf4
1:	cli
	hlt
	jmp 1b
