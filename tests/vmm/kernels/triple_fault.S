/* triple_fault.S: load an empty IDT and execute ud2: #UD cannot be
 * delivered, nor #DF after it, so the CPU shuts down (a triple fault).
 * zhv must exit with status 1 and dump the registers and the instruction. */
	.text
	.code32
	.globl test_main
test_main:
	lidt empty_idt
	mov $0x7afe7afe, %eax /* a marker the register dump must show */
	ud2
1:	cli
	hlt
	jmp 1b

	.data
	.balign 4
	.word 0
empty_idt:
	.word 0
	.long 0
