/* main.c: the zhv command line ("zhv run [options] KERNEL"), process-wide
 * setup (log, signals, terminal) and the wait for the run to end. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "board.h"
#include "console.h"
#include "control.h"
#include "gdb/server.h"
#include "devices.h"
#include "exit_status.h"
#include "sandbox.h"
#include "snapshot_dir.h"
#include "vcpu_thread.h"
#include "zhv.h"

#define MAX_CPUS 255
#define DEFAULT_MEMORY (512ull << 20)
#define MAX_LIST 64 /* --module, --disk, --net each */

static const char usage_text[] =
	"Usage: zhv run [options] KERNEL\n"
	"       zhv run --restore DIR [--control SOCKET] [--serial MODE] [--no-sandbox]\n"
	"                             [--gdb tcp:[HOST]:PORT [--gdb-wait]]\n"
	"       zhv ctl SOCKET pause|resume|info|stop|snapshot [--paused] DIR\n"
	"       zhv --help | --version\n"
	"\n"
	"Boot KERNEL (multiboot v1, Linux bzImage, PVH or ELF64 vmlinux; a flat\n"
	"binary with --format flat) in a new virtual machine with COM1 on the\n"
	"terminal.\n"
	"\n"
	"Options:\n"
	"  -c, --cpus N             number of vCPUs, 1..255 (default 1)\n"
	"  -m, --memory SIZE        guest RAM in bytes, or with a K, M or G suffix\n"
	"                           (default 512M, at least 2M)\n"
	"      --format FMT         KERNEL's format: auto (default: multiboot,\n"
	"                           linux, pvh or elf, from its contents), multiboot,\n"
	"                           linux (bzImage), pvh, elf (ELF64 at e_entry) or\n"
	"                           flat (the file at 1 MiB, 64-bit mode)\n"
	"      --cmdline STR        kernel command line\n"
	"      --initrd FILE        initial ramdisk\n"
	"      --module FILE[,ARGS] multiboot module with its command line (repeatable)\n"
	"      --disk FILE[,ro]     virtio-blk disk, read-only with ,ro (repeatable);\n"
	"                           FILE is a regular file or a block device, locked:\n"
	"                           shared with ,ro, else for this disk alone\n"
	"      --net tap=NAME       virtio-net on host tap device NAME (repeatable)\n"
	"      --serial MODE        COM1 output: stdio (default), file:PATH or none\n"
	"      --console DEV        where the terminal's input goes: serial (COM1,\n"
	"                           the default) or virtio (a virtio console, Linux's\n"
	"                           hvc0, its output on stdout)\n"
	"      --debug-exit         isa-debug-exit at port 0xf4: the guest writing V\n"
	"                           there ends the run with status (V << 1) | 1\n"
	"      --test-device NAME   one of QEMU's test devices (repeatable):\n"
	"                           pc-testdev (ports 0xe0-0xeb, IRQ lines at\n"
	"                           0x2000+n, 64K MMIO at 0xff000000) or pci-testdev\n"
	"                           (PCI 1b36:0005)\n"
	"      --debug-io           log unclaimed port I/O and MMIO, and exit counts\n"
	"      --control SOCKET     serve zhv ctl's requests (pause, resume, info,\n"
	"                           stop, snapshot) on Unix socket SOCKET\n"
	"      --gdb tcp:[HOST]:PORT  serve GDB's remote protocol on HOST (default\n"
	"                           127.0.0.1, loopback only) and PORT (0: any; the\n"
	"                           port is printed): one GDB thread per vCPU\n"
	"      --gdb-wait           with --gdb: stop the guest before its first\n"
	"                           instruction until GDB attaches\n"
	"      --restore DIR        resume the machine saved in snapshot DIR (zhv ctl\n"
	"                           snapshot) instead of booting a KERNEL: its vCPUs,\n"
	"                           memory, devices and disks come from DIR\n"
	"      --no-sandbox         run without the seccomp sandbox (for debugging); by\n"
	"                           default a forbidden system call ends the run (10)\n"
	"  -h, --help               show this help\n"
	"  -V, --version            print the version and the KVM found\n"
	"\n"
	"On a terminal, Ctrl-A x quits (exit status 0); Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"\n"
	"Exit status (zhv's own are even; a guest's, with --debug-exit, odd):\n"
	"  0               the guest powered off (ACPI S5) or reset (i8042); Ctrl-A x\n"
	"  (V << 1) | 1    the guest wrote V to port 0xf4 (with --debug-exit)\n"
	"  2               usage error\n"
	"  4               a kernel, initrd, module, disk or serial file could not\n"
	"                  be opened or loaded, or a snapshot is bad (--restore)\n"
	"  6               guest crash (triple fault, emulation failure)\n"
	"  8               host-side runtime error (KVM, memory, a device)\n"
	"  10              the seccomp sandbox stopped a forbidden system call\n"
	"Killed by SIGTERM, SIGINT or SIGHUP, zhv cleans up and dies of that signal.\n";

/* ---- command line ------------------------------------------------------- */

struct options {
	struct board_config board;
	const char *serial;
	bool virtio_console; /* --console virtio */
	struct boot_module modules[MAX_LIST];
	struct board_disk disks[MAX_LIST];
	const char *nets[MAX_LIST];
	bool no_sandbox;
	const char *control;
	const char *restore;
	const char *gdb;   /* --gdb SPEC */
	bool gdb_wait;
};

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("zhv run: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'zhv run --help' for more information.\n", stderr);
	exit(ZHV_EXIT_USAGE);
}

/* "512M", "4G", "65536": bytes, with an optional binary K/M/G/T suffix. */
static bool parse_size(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static uint64_t host_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	return pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : UINT64_MAX;
}

static void parse_run(int argc, char **argv, struct options *o)
{
	enum { OPT_CMDLINE = 256, OPT_INITRD, OPT_MODULE, OPT_DISK, OPT_NET, OPT_SERIAL, OPT_CONSOLE,
	       OPT_DEBUG_IO, OPT_DEBUG_EXIT, OPT_FORMAT, OPT_NO_SANDBOX, OPT_TEST_DEVICE,
	       OPT_CONTROL, OPT_RESTORE, OPT_GDB, OPT_GDB_WAIT };
	static const struct option longopts[] = {
		{"cpus", required_argument, NULL, 'c'},
		{"memory", required_argument, NULL, 'm'},
		{"cmdline", required_argument, NULL, OPT_CMDLINE},
		{"initrd", required_argument, NULL, OPT_INITRD},
		{"module", required_argument, NULL, OPT_MODULE},
		{"disk", required_argument, NULL, OPT_DISK},
		{"net", required_argument, NULL, OPT_NET},
		{"serial", required_argument, NULL, OPT_SERIAL},
		{"console", required_argument, NULL, OPT_CONSOLE},
		{"debug-io", no_argument, NULL, OPT_DEBUG_IO},
		{"debug-exit", no_argument, NULL, OPT_DEBUG_EXIT},
		{"test-device", required_argument, NULL, OPT_TEST_DEVICE},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"no-sandbox", no_argument, NULL, OPT_NO_SANDBOX},
		{"control", required_argument, NULL, OPT_CONTROL},
		{"restore", required_argument, NULL, OPT_RESTORE},
		{"gdb", required_argument, NULL, OPT_GDB},
		{"gdb-wait", no_argument, NULL, OPT_GDB_WAIT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct board_config *b = &o->board;
	b->ncpus = 1;
	b->mem_size = DEFAULT_MEMORY;
	o->serial = "stdio";
	b->disks = o->disks;
	b->net_taps = o->nets;
	b->boot.modules = o->modules;

	int c;
	unsigned long n;
	const char *machine_opt = NULL; /* an option --restore takes from the snapshot */
	while ((c = getopt_long(argc, argv, "c:m:hV", longopts, NULL)) != -1) {
		if (c != OPT_SERIAL && c != OPT_DEBUG_IO && c != OPT_NO_SANDBOX && c != OPT_CONTROL &&
		    c != OPT_RESTORE && c != OPT_GDB && c != OPT_GDB_WAIT && c != 'h' && c != 'V' && c != '?' && c != ':' && !machine_opt)
			machine_opt = argv[optind - 1];
		switch (c) {
		case OPT_CONTROL:
			o->control = optarg;
			break;
		case OPT_RESTORE:
			o->restore = optarg;
			break;
		case 'c':
			if (!parse_uint(optarg, MAX_CPUS, &n) || n == 0)
				usage_error("--cpus '%s': expected a number from 1 to %d", optarg,
				            MAX_CPUS);
			b->ncpus = (unsigned)n;
			break;
		case 'm': {
			uint64_t size;
			if (!parse_size(optarg, &size))
				usage_error("--memory '%s': expected a size such as 512M, 4G or "
				            "1048576", optarg);
			if (size < BOARD_MIN_MEMORY)
				usage_error("--memory '%s': at least 2M is needed", optarg);
			uint64_t max = host_ram();
			if (size > max)
				usage_error("--memory '%s': more than the host's RAM (%" PRIu64 " MiB)",
				            optarg, max >> 20);
			b->mem_size = size & ~(ZHV_PAGE_SIZE - 1);
			break;
		}
		case OPT_CMDLINE:
			b->boot.cmdline = optarg;
			break;
		case OPT_INITRD:
			b->boot.initrd_path = optarg;
			break;
		case OPT_MODULE: {
			if (b->boot.nmodules >= MAX_LIST)
				usage_error("too many --module options (at most %d)", MAX_LIST);
			struct boot_module *m = &o->modules[b->boot.nmodules++];
			char *comma = strchr(optarg, ',');
			if (comma)
				*comma = '\0';
			m->path = optarg;
			m->args = comma ? comma + 1 : NULL;
			if (!*m->path)
				usage_error("--module: missing file name");
			break;
		}
		case OPT_DISK: {
			if (b->ndisks >= MAX_LIST)
				usage_error("too many --disk options (at most %d)", MAX_LIST);
			struct board_disk *d = &o->disks[b->ndisks++];
			char *comma = strrchr(optarg, ',');
			d->path = optarg;
			d->read_only = false;
			if (comma) {
				if (strcmp(comma + 1, "ro") == 0)
					d->read_only = true;
				else if (strcmp(comma + 1, "rw") != 0)
					usage_error("--disk '%s': unknown flag '%s' (expected ro)", optarg,
					            comma + 1);
				*comma = '\0';
			}
			if (!*d->path)
				usage_error("--disk: missing file name");
			break;
		}
		case OPT_NET:
			if (b->nnets >= MAX_LIST)
				usage_error("too many --net options (at most %d)", MAX_LIST);
			if (strncmp(optarg, "tap=", 4) != 0 || !optarg[4])
				usage_error("--net '%s': expected tap=NAME", optarg);
			o->nets[b->nnets++] = optarg + 4;
			break;
		case OPT_SERIAL:
			if (strcmp(optarg, "stdio") && strcmp(optarg, "none") &&
			    (strncmp(optarg, "file:", 5) || !optarg[5]))
				usage_error("--serial '%s': expected stdio, file:PATH or none", optarg);
			o->serial = optarg;
			break;
		case OPT_CONSOLE:
			if (strcmp(optarg, "serial") == 0)
				o->virtio_console = false;
			else if (strcmp(optarg, "virtio") == 0)
				o->virtio_console = true;
			else
				usage_error("--console '%s': expected serial or virtio", optarg);
			break;
		case OPT_DEBUG_IO:
			b->debug_io = true;
			break;
		case OPT_DEBUG_EXIT:
			b->debug_exit = true;
			break;
		case OPT_TEST_DEVICE: {
			bool *which = !strcmp(optarg, "pc-testdev")  ? &b->pc_testdev :
			              !strcmp(optarg, "pci-testdev") ? &b->pci_testdev : NULL;
			if (!which)
				usage_error("--test-device '%s': expected pc-testdev or pci-testdev", optarg);
			if (*which)
				usage_error("--test-device %s: given twice", optarg);
			*which = true;
			break;
		}
		case OPT_FORMAT: {
			int f = loader_format_parse(optarg);
			if (f < 0)
				usage_error("--format '%s': expected " LOADER_FORMAT_NAMES, optarg);
			b->boot.format = (enum kernel_format)f;
			break;
		}
		case OPT_NO_SANDBOX:
			o->no_sandbox = true;
			break;
		case OPT_GDB:
			o->gdb = optarg;
			break;
		case OPT_GDB_WAIT:
			o->gdb_wait = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("zhv %s\n", ZHV_VERSION_STRING);
			exit(0);
		default: /* getopt_long said what was wrong */
			fputs("Try 'zhv run --help' for more information.\n", stderr);
			exit(ZHV_EXIT_USAGE);
		}
	}
	if (o->gdb_wait && !o->gdb)
		usage_error("--gdb-wait needs --gdb");
	if (o->restore) {
		if (machine_opt)
			usage_error("--restore: the machine comes from the snapshot: no machine or "
			            "kernel option (--cpus, --memory, --disk, ...) may be given (got "
			            "'%s')", machine_opt);
		if (optind < argc)
			usage_error("--restore: no KERNEL is taken ('%s')", argv[optind]);
		return;
	}
	if (optind >= argc)
		usage_error("missing KERNEL");
	if (optind + 1 < argc)
		usage_error("more than one KERNEL: '%s' and '%s'", argv[optind], argv[optind + 1]);
	b->boot.kernel_path = argv[optind];
}

/* The machine as a snapshot's manifest describes it (--control): disk
 * paths made absolute now, as zhv ctl snapshot may come from elsewhere
 * and the sandbox allows no path look-up later. */
static int machine_describe(struct options *o, struct snapshot_machine *m, char *err,
                            size_t errlen)
{
	const struct board_config *b = &o->board;
	memset(m, 0, sizeof(*m));
	m->ncpus = b->ncpus;
	m->mem_size = b->mem_size;
	m->debug_exit = b->debug_exit;
	m->pc_testdev = b->pc_testdev;
	m->pci_testdev = b->pci_testdev;
	m->virtio_console = o->virtio_console;
	if (b->ndisks > SNAPSHOT_MAX_DISKS) {
		snprintf(err, errlen, "--control: at most %d disks", SNAPSHOT_MAX_DISKS);
		return -1;
	}
	m->ndisks = b->ndisks;
	for (size_t i = 0; i < b->ndisks; i++) {
		static char paths[SNAPSHOT_MAX_DISKS][PATH_MAX];
		/* Absolute, but not resolved (symlinks stay): the disk's id
		 * (its file name, virtio-blk GET_ID) stays the same. */
		const char *p = b->disks[i].path;
		char cwd[PATH_MAX];
		int n = p[0] == '/' ? snprintf(paths[i], sizeof(paths[i]), "%s", p) :
		        getcwd(cwd, sizeof(cwd)) ? snprintf(paths[i], sizeof(paths[i]), "%s/%s", cwd, p) : -1;
		if (n < 0 || (size_t)n >= sizeof(paths[i])) {
			snprintf(err, errlen, "--control: disk %s: cannot make its path absolute", p);
			return -1;
		}
		m->disks[i].path = paths[i];
		m->disks[i].read_only = b->disks[i].read_only;
	}
	m->nnets = b->nnets;
	return 0;
}

/* ---- process-wide plumbing ------------------------------------------------- */

static void log_to_stderr(void *opaque, zhv_log_level_t level, const char *msg)
{
	(void)opaque;
	flockfile(stderr);
	fprintf(stderr, "zhv: %s%s\n", level == ZHV_LOG_WARN ? "warning: " : "", msg);
	funlockfile(stderr);
}

/* The main thread sleeps on this pipe: a 0 byte means the run ended, any
 * other byte is a termination signal's number (written by the handler). */
static int wake_pipe[2] = {-1, -1};
static volatile sig_atomic_t signal_seen;
static struct vcpus *g_vcpus;

static void wake_main(uint8_t what)
{
	int saved = errno;
	ssize_t r = write(wake_pipe[1], &what, 1);
	(void)r;
	errno = saved;
}

static void on_termination_signal(int sig)
{
	console_restore();
	if (signal_seen) { /* a second signal: the user means it; die of it */
		signal(sig, SIG_DFL);
		raise(sig); /* delivered as the handler returns */
		return;
	}
	signal_seen = sig;
	wake_main((uint8_t)sig);
}

/* Fatal signals: give the terminal back, then die of the signal as before. */
static void on_crash_signal(int sig)
{
	console_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signal_handlers(bool tty)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_termination_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL); /* a closed serial pipe must not kill the VMM */
	if (tty) { /* (sanitizer builds keep their own SEGV handler off a tty) */
		sa.sa_handler = on_crash_signal;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGABRT, &sa, NULL);
		sigaction(SIGFPE, &sa, NULL);
		sigaction(SIGILL, &sa, NULL);
	}
}

/* vm->on_exit: runs once, on the thread that ended the run. */
static void on_vm_exit(struct vm *vm)
{
	(void)vm;
	if (g_vcpus)
		vcpus_kick_all(g_vcpus);
	wake_main(0);
}

static void print_stats(struct vm *vm)
{
	zhv_guest_stats_t s;
	if (zhv_guest_get_stats(vm->guest, &s) != ZHV_OK)
		return;
	fprintf(stderr,
	        "zhv: exits %" PRIu64 " (io %" PRIu64 ", mmio %" PRIu64 ", rdmsr %" PRIu64
	        ", wrmsr %" PRIu64 ", hlt %" PRIu64 ", shutdown %" PRIu64 ", emulation failures %" PRIu64
	        ", emulated by libzhv %" PRIu64 ", other %" PRIu64 "), kicks %" PRIu64 ", signal exits %" PRIu64
	        ", interrupts %" PRIu64 ", bell packets %" PRIu64 "\n",
	        s.vm_exits, s.io_exits, s.mmio_exits, s.rdmsr_exits, s.wrmsr_exits, s.hlt_exits,
	        s.shutdown_exits, s.emulation_failures, s.emulated_by_libzhv, s.other_exits, s.kicks, s.signal_exits,
	        s.interrupts, s.bell_packets);
}

/* ---- zhv run ----------------------------------------------------------------- */

/* --serial file:PATH: created or truncated, opened without blocking (a
 * FIFO with no reader is refused at once, not waited on; one with a reader
 * is used as a pipe). Writes then block as on stdout. */
static FILE *open_serial_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0666);
	if (fd < 0) {
		if (errno == ENXIO) /* open(2): a FIFO with no reader, or a socket */
			fprintf(stderr, "zhv: --serial file:%s: a FIFO with no reader (or a socket): "
			        "not waiting for one\n", path);
		else
			fprintf(stderr, "zhv: --serial file:%s: %s\n", path, strerror(errno));
		return NULL;
	}
	int fl = fcntl(fd, F_GETFL);
	FILE *f = NULL;
	if (fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0)
		f = fdopen(fd, "w");
	if (!f) {
		fprintf(stderr, "zhv: --serial file:%s: %s\n", path, strerror(errno));
		close(fd);
	}
	return f;
}

static int cmd_run(int argc, char **argv)
{
	static struct options o; /* large; lives for the whole run */
	parse_run(argc, argv, &o);
	struct board_config *cfg = &o.board;

	zhv_set_log(log_to_stderr, NULL, cfg->debug_io ? ZHV_LOG_WARN : ZHV_LOG_ERROR);
	static struct snapshot_image img;
	static struct snapshot_machine machine; /* the manifest of zhv ctl snapshot */
	char err[768] = "";
	if (o.restore) {
		if (snapshot_open(o.restore, &img, err, sizeof(err)) < 0) {
			fprintf(stderr, "zhv: %s\n", err);
			snapshot_close(&img);
			return ZHV_EXIT_LOAD;
		}
		cfg->ncpus = img.m.ncpus;
		cfg->mem_size = img.m.mem_size;
		cfg->debug_exit = img.m.debug_exit;
		cfg->pc_testdev = img.m.pc_testdev;
		cfg->pci_testdev = img.m.pci_testdev;
		o.virtio_console = img.m.virtio_console;
		cfg->ndisks = img.m.ndisks;
		for (size_t i = 0; i < img.m.ndisks; i++)
			o.disks[i] = img.m.disks[i];
		cfg->no_kernel = true;
	}
	if (o.control && machine_describe(&o, &machine, err, sizeof(err)) < 0) {
		fprintf(stderr, "zhv: %s\n", err);
		return ZHV_EXIT_USAGE;
	}
	struct control *control = NULL;
	if (o.control && !(control = control_create(o.control, err, sizeof(err)))) {
		fprintf(stderr, "zhv: %s\n", err);
		return ZHV_EXIT_FATAL;
	}
	struct gdb_server *gdb = NULL;
	if (o.gdb) {
		bool usage;
		if (!(gdb = gdb_server_create(o.gdb, &usage, err, sizeof(err)))) {
			fprintf(stderr, "zhv: %s\n", err);
			control_stop(control);
			return usage ? ZHV_EXIT_USAGE : ZHV_EXIT_FATAL;
		}
	}
	struct stat st;
	if (o.restore) {
		/* no kernel */
	} else if (stat(cfg->boot.kernel_path, &st) < 0 || access(cfg->boot.kernel_path, R_OK) < 0) {
		fprintf(stderr, "zhv: %s: %s\n", cfg->boot.kernel_path, strerror(errno));
		return ZHV_EXIT_LOAD;
	}
	if (!o.restore && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "zhv: %s: not a regular file\n", cfg->boot.kernel_path);
		return ZHV_EXIT_LOAD;
	}
	FILE *serial_file = NULL;
	bool serial_stdio = strcmp(o.serial, "stdio") == 0;
	if (serial_stdio) {
		cfg->serial = stdout;
	} else if (strncmp(o.serial, "file:", 5) == 0) {
		serial_file = open_serial_file(o.serial + 5);
		if (!serial_file)
			return ZHV_EXIT_LOAD;
		cfg->serial = serial_file;
	}
	if (o.virtio_console)
		cfg->virtio_console = stdout;
	if (pipe(wake_pipe) < 0) {
		perror("zhv: pipe");
		return ZHV_EXIT_FATAL;
	}

	static struct board board;
	int ret = board_create(&board, cfg, err, sizeof(err));
	if (ret == 0 && o.restore && snapshot_apply(&img, &board.vm, err, sizeof(err)) < 0) {
		ret = -EINVAL;
		board.load_error = true;
	}
	if (ret < 0) {
		fprintf(stderr, "zhv: %s\n", err);
		int status = board.load_error ? ZHV_EXIT_LOAD : ZHV_EXIT_FATAL;
		board_destroy(&board);
		snapshot_close(&img);
		control_stop(control);
		gdb_server_stop(gdb, status);
		return status;
	}
	struct vm *vm = &board.vm;
	g_vcpus = vcpus_create(vm);
	if (!g_vcpus) {
		fprintf(stderr, "zhv: out of memory\n");
		return ZHV_EXIT_FATAL;
	}
	if (o.restore)
		vcpus_set_restore(g_vcpus, img.vcpu_blobs, img.vcpu_lens, &img.clock);
	vm->on_exit = on_vm_exit;
	if (gdb && gdb_server_attach(gdb, vm, g_vcpus, o.gdb_wait) < 0) {
		fprintf(stderr, "zhv: out of memory\n");
		return ZHV_EXIT_FATAL;
	}

	/* The terminal is the guest's console: COM1's (--serial stdio) or
	 * the virtio console's (--console virtio). */
	bool term_console = serial_stdio || o.virtio_console;
	bool tty = term_console && console_init();
	install_signal_handlers(tty);

	ret = vcpus_start(g_vcpus, &board.boot, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "zhv: %s\n", err);
		/* A snapshot whose vCPU state KVM or libzhv refuses is a bad snapshot. */
		vm_request_exit(vm, VM_EXIT_ERROR, o.restore && ret == -EINVAL ? ZHV_EXIT_LOAD :
		                                                                 ZHV_EXIT_FATAL);
	}
	snapshot_close(&img); /* (the vCPUs hold their state now) */
	if (control && (ret = control_start(control, vm, g_vcpus, &machine)) < 0) {
		fprintf(stderr, "zhv: --control: %s\n", strerror(-ret));
		vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
	}
	if (control)
		sandbox_allow_control();
	if (gdb && (ret = gdb_server_start(gdb)) < 0) {
		fprintf(stderr, "zhv: --gdb: %s\n", strerror(-ret));
		vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
	}
	if (gdb)
		sandbox_allow_gdb();
	/* Input after the vCPUs: the guest starts a little sooner, and
	 * bytes typed meanwhile wait in the terminal or pipe. */
	console_to_virtio(o.virtio_console);
	if (term_console && (ret = console_start(vm, board.com1)) < 0)
		fprintf(stderr, "zhv: console input: %s (continuing without)\n", strerror(-ret));
	int killed_by = 0; /* the termination signal that ended the run */
	/* Set-up is done: the sandbox goes on, then the vCPUs run (vmm/sandbox.h). */
	if (sandbox_enable(!o.no_sandbox, console_restore, err, sizeof(err)) < 0) {
		fprintf(stderr, "zhv: %s\n", err);
		vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
	}
	while (atomic_load(&vm->exit_kind) == VM_EXIT_NONE) {
		uint8_t what;
		ssize_t r = read(wake_pipe[0], &what, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (what != 0) {
			console_message("\nzhv: terminated by signal %d (%s)\n", what, strsignal(what));
			killed_by = what;
			vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
		}
	}
	control_stop(control); /* before the vCPUs go */
	gdb_server_stop(gdb, atomic_load(&vm->exit_kind) == VM_EXIT_NONE ? ZHV_EXIT_FATAL
	                                                                  : vm->exit_status);
	vcpus_stop(g_vcpus);
	g_vcpus = NULL;
	console_stop();
	/* COM1's output: what a stalled reader does not take within 200 ms
	 * is dropped (and counted on stderr), never waited for. */
	uint64_t dropped = uart16550_stop_output(board.com1, 200);
	if (dropped)
		console_message("zhv: COM1: %" PRIu64 " bytes of output dropped (not read in time)\n",
		                dropped);
	if (cfg->debug_io)
		print_stats(vm);
	int status = atomic_load(&vm->exit_kind) == VM_EXIT_NONE ? ZHV_EXIT_FATAL : vm->exit_status;
	board_destroy(&board); /* every device thread joined: nothing writes any more */
	fflush(stdout);
	if (serial_file)
		fflush(serial_file);
	console_restore();
	if (killed_by) {
		/* Die of the signal, as without a handler: the parent sees
		 * WIFSIGNALED, which no exit status of a guest can forge. */
		signal(killed_by, SIG_DFL);
		raise(killed_by);
		return 128 + killed_by; /* not reached */
	}
	return status;
}

/* zhv --version: the version, then the KVM this host offers. Status 0
 * whether or not there is one. */
static int print_version(void)
{
	printf("zhv %s\n", ZHV_VERSION_STRING);
	zhv_host_info_t h;
	if (zhv_host_query(&h) != ZHV_OK) {
		printf("KVM: unknown\n");
		return 0;
	}
	if (h.kvm_usable)
		printf("KVM: /dev/kvm, API version %d, %s\n", h.kvm_api_version,
		       zhv_host_virt_string(h.virt));
	else if (h.kvm_api_version >= 0)
		printf("KVM: /dev/kvm has API version %d, not %d: not usable\n", h.kvm_api_version, 12);
	else
		printf("KVM: none (/dev/kvm: %s)\n", strerror(h.kvm_errno));
	printf("CPU vendor: %s\n", h.cpu_vendor);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return ZHV_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version"))
		return print_version();
	if (!strcmp(cmd, "ctl")) {
		argv[1] = "zhv ctl";
		return control_client(argc - 1, argv + 1);
	}
	if (strcmp(cmd, "run") != 0) {
		fprintf(stderr, "zhv: unknown command '%s'\nTry 'zhv --help' for more information.\n",
		        cmd);
		return ZHV_EXIT_USAGE;
	}
	/* getopt_long names the program after argv[0] in its messages. */
	argv[1] = "zhv run";
	return cmd_run(argc - 1, argv + 1);
}
