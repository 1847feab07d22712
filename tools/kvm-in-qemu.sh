#!/bin/bash
# kvm-in-qemu.sh - run a command on a machine that has a real /dev/kvm, even
# when this one has none.
#
# zhv's guest tests need /dev/kvm. On a machine without it (no KVM, or a
# kernel that is itself a guest and cannot nest), this script boots a Debian
# Linux kernel under QEMU's software emulation (TCG) with the emulated CPU's
# AMD-V (SVM, with nested paging when offered) turned on, loads kvm and
# kvm-amd inside it, shares this machine's whole root filesystem with it over
# virtio-9p, and runs COMMAND there, chrooted into that share, in the
# directory the script was started from. Everything is slow (every guest
# instruction is emulated), but it is a real KVM.
#
# Usage: tools/kvm-in-qemu.sh [--cpus N] [--mem SIZE] [--timeout SECS]
#                             [--keep] [--verbose] -- COMMAND [ARGS...]
#   --cpus N       virtual CPUs (default: this machine's CPU count)
#   --mem SIZE     guest memory, QEMU syntax (default: 4G)
#   --timeout SECS kill QEMU after SECS seconds and exit 124 (default: 1800)
#   --cpu MODEL    QEMU CPU model (default: max,phys-bits=48: SVM and NPT,
#                  and guest-physical addresses up to 2^48 as on AMD hosts)
#   --keep         keep the per-run directory (guest dmesg, the command script)
#                  While it runs, that directory's `monitor` is QEMU's monitor
#                  socket (e.g. `info registers -a`, `sendkey alt-sysrq-l`).
#   --verbose      show the whole serial console (kernel boot, /init's steps)
#   --mttcg        one host thread per virtual CPU (multi-threaded TCG). Off by
#                  default: with it the guest kernel wedges now and then when
#                  KVM patches kernel text (a static key flipped at VM destroy)
#                  while another CPU runs it; the default single-threaded TCG
#                  runs the virtual CPUs in turn on one host thread.
#
# COMMAND's stdout arrives on this script's stdout (first serial port) and its
# stderr on this script's stderr (second serial port), line for line; the
# script exits with COMMAND's exit status, 124 on timeout, 125 when the
# machine could not be set up. The environment passed into the guest is PATH,
# HOME, BUILD, LANG, LC_ALL, TSAN_OPTIONS, ASAN_OPTIONS, UBSAN_OPTIONS,
# LSAN_OPTIONS, MSAN_OPTIONS and every ZHV_* variable. Inside, /tmp is a fresh
# tmpfs (unless the working directory is under /tmp), and /proc, /sys and /dev
# are the guest's own.
#
# The kernel (Debian's linux-image-amd64 dependency) and busybox-static are
# fetched with `apt-get download` and cached, with the initramfs built from
# them, under ~/.cache/zhv/kvm-in-qemu/; delete that directory to refetch.
# Needs: qemu-system-x86_64 (package qemu-system-x86), apt-get, dpkg, gzip.
# Runs as root (the 9p share uses security_model=passthrough).

set -euo pipefail

die() { echo "kvm-in-qemu: $*" >&2; exit 125; }
note() { echo "kvm-in-qemu: $*" >&2; }

cpus=$(nproc 2>/dev/null || echo 1)
mem=4G
timeout_secs=1800
keep=0
verbose=0
tcg_thread=single
cpu_model=max,phys-bits=48

while [[ $# -gt 0 ]]; do
    case $1 in
        --cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
        --mem) mem=${2:?--mem needs a value}; shift 2 ;;
        --timeout) timeout_secs=${2:?--timeout needs a value}; shift 2 ;;
        --keep) keep=1; shift ;;
        --verbose) verbose=1; shift ;;
        --mttcg) tcg_thread=multi; shift ;;
        --cpu) cpu_model=${2:?--cpu needs a value}; shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (usage: $0 [--cpus N] [--mem SIZE] [--timeout SECS] -- COMMAND [ARGS...])" ;;
    esac
done
[[ $# -gt 0 ]] || die "no COMMAND given (usage: $0 [options] -- COMMAND [ARGS...])"
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus: not a number: $cpus"
[[ $timeout_secs =~ ^[1-9][0-9]*$ ]] || die "--timeout: not a number: $timeout_secs"
command -v qemu-system-x86_64 >/dev/null ||
    die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

cache=${HOME:?}/.cache/zhv/kvm-in-qemu
mkdir -p "$cache"
[[ $cache != *[[:space:]]* ]] || die "cache path has white space: $cache"

# Modules /init loads, in this order (each after the ones it depends on).
modules=(
    virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
    9pnet 9pnet_virtio netfs fscache 9p
    irqbypass kvm ccp kvm-amd
    tun veth
)

# ---------------------------------------------------------------------------
# The guest's /init (busybox sh). The serial ports: ttyS0 is the console and
# carries COMMAND's stdout; ttyS1 carries its stderr and /init's complaints.
# The host keeps what comes on ttyS0 between the two marker lines.
# ---------------------------------------------------------------------------
read -r -d '' init_script <<'EOF' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/ttyS0 2>/dev/ttyS1
stty -F /dev/ttyS0 -opost 2>/dev/null
stty -F /dev/ttyS1 -opost 2>/dev/null

run= verbose=0
for arg in $(cat /proc/cmdline); do
    case $arg in
        zhv.run=*) run=${arg#zhv.run=} ;;
        zhv.verbose=1) verbose=1 ;;
    esac
done
say() { [ $verbose = 1 ] && echo "init: $*"; }
fail() {
    echo "kvm-in-qemu (guest): $*" >&2
    dmesg | tail -n 30 >&2
    exec >/dev/null 2>&1
    poweroff -f
}

for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
         9pnet 9pnet_virtio netfs fscache 9p irqbypass kvm ccp tun veth; do
    insmod /lib/modules/$m.ko || fail "insmod $m failed"
done
if ! insmod /lib/modules/kvm-amd.ko npt=1; then
    echo "kvm-in-qemu (guest): kvm-amd refused npt=1; trying npt=0" >&2
    insmod /lib/modules/kvm-amd.ko npt=0 || fail "insmod kvm-amd failed"
fi
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm-amd"
say "kvm_amd npt=$(cat /sys/module/kvm_amd/parameters/npt) nested=$(cat /sys/module/kvm_amd/parameters/nested)"
say "cpu flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(svm|npt|nrip_save|lbrv|vgif|avic)$' | tr '\n' ' ')"

# The loopback interface, up as on any host: tests talk TCP on 127.0.0.1
# (tests/vmm/gdb.sh: zhv run --gdb).
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up || fail "cannot bring lo up"

mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /host ||
    fail "cannot mount the host's root over 9p"
[ -n "$run" ] && [ -f "/host$run/cmd.sh" ] || fail "no command script at /host$run/cmd.sh"

mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in proc sys dev; do mount -o bind /$d /host/$d || fail "cannot bind /$d"; done
mount -o bind /dev/pts /host/dev/pts
mount -o bind /dev/shm /host/dev/shm
if [ ! -e "/host$run/keep-tmp" ]; then
    mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "cannot mount tmpfs on /tmp"
fi
mount -t tmpfs -o mode=755 tmpfs /host/run 2>/dev/null

echo "@@kvm-in-qemu: command starts@@"
chroot /host /bin/bash "$run/cmd.sh" </dev/null >/dev/ttyS0 2>/dev/ttyS1
rc=$?
echo "@@kvm-in-qemu: command ended@@"
dmesg > "/host$run/dmesg" 2>/dev/null
echo $rc > "/host$run/status"
sync
umount /host/run /host/tmp /host/dev/shm /host/dev/pts /host/dev /host/sys /host/proc 2>/dev/null
umount /host 2>/dev/null
# The last close of a serial port waits until its output has gone out.
exec >/dev/null 2>&1
poweroff -f
EOF

# ---------------------------------------------------------------------------
# Fetch the kernel, its modules and busybox-static into the cache.
# ---------------------------------------------------------------------------
fetch_debs() {
    local kpkg work
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
    if [[ -z $kpkg ]]; then
        note "apt knows no linux-image-amd64; running apt-get update"
        apt-get update -qq >&2 || true
        kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
               sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
    fi
    [[ -n $kpkg ]] || die "cannot find the kernel package linux-image-amd64 depends on"
    note "fetching $kpkg and busybox-static into $cache"
    work=$(mktemp -d "$cache/fetch.XXXXXX")
    (cd "$work" && apt-get download -q "$kpkg" busybox-static >&2) ||
        { rm -rf "$work"; die "apt-get download $kpkg busybox-static failed"; }
    mkdir "$work/k" "$work/b"
    dpkg -x "$work/${kpkg}"_*.deb "$work/k"
    dpkg -x "$work"/busybox-static_*.deb "$work/b"

    rm -rf "$cache/linux"
    mkdir -p "$cache/linux/modules"
    local kver m f
    kver=$(cd "$work/k/lib/modules" && ls | head -n1)
    cp "$work/k/boot/vmlinuz-$kver" "$cache/linux/vmlinuz"
    for m in "${modules[@]}"; do
        f=$(find "$work/k/lib/modules/$kver/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -n1)
        [[ -n $f ]] || { rm -rf "$work"; die "module $m not in $kpkg"; }
        case $f in
            *.xz) xz -dc "$f" ;;
            *.zst) zstd -qdc "$f" ;;
            *) cat "$f" ;;
        esac > "$cache/linux/modules/$m.ko"
    done
    cp "$work/b/bin/busybox" "$cache/linux/busybox"
    echo "$kpkg $kver" > "$cache/linux/VERSION"
    rm -rf "$work"
}

build_initramfs() {  # $1: output file
    local root
    root=$(mktemp -d "$cache/initramfs.XXXXXX")
    mkdir -p "$root"/{bin,lib/modules,proc,sys,dev,host,tmp}
    cp "$cache/linux/busybox" "$root/bin/busybox"
    chmod 755 "$root/bin/busybox"
    cp "$cache"/linux/modules/*.ko "$root/lib/modules/"
    printf '%s\n' "$init_script" > "$root/init"
    chmod 755 "$root/init"
    (cd "$root" && find . | "$cache/linux/busybox" cpio -o -H newc 2>/dev/null) |
        gzip -1 > "$1.tmp"
    mv "$1.tmp" "$1"
    rm -rf "$root"
}

# Several runs may start at once: one prepares the cache, the others wait.
exec 9>"$cache/lock"
flock 9
need_fetch=0
[[ -s $cache/linux/VERSION ]] || need_fetch=1
for m in "${modules[@]}"; do [[ -s $cache/linux/modules/$m.ko ]] || need_fetch=1; done
[[ $need_fetch == 0 ]] || fetch_debs
# The initramfs's name carries a hash of /init, so a changed /init rebuilds it.
initrd=$cache/initramfs-$( { printf '%s' "$init_script"; cat "$cache/linux/VERSION"; } |
                           sha256sum | cut -c1-12).cpio.gz
if [[ ! -s $initrd ]]; then
    rm -f "$cache"/initramfs-*.cpio.gz   # QEMU reads its -initrd at start
    build_initramfs "$initrd"
fi
exec 9>&-

# ---------------------------------------------------------------------------
# The per-run directory, seen by the guest through the share at the same path.
# ---------------------------------------------------------------------------
mkdir -p "$cache/runs"
run=$(mktemp -d "$cache/runs/run.XXXXXX")
cleanup() { [[ $keep == 1 ]] || rm -rf "$run"; }
trap cleanup EXIT

cwd=$(pwd -P)
case $cwd/ in /tmp/*) touch "$run/keep-tmp" ;; esac
{
    echo '#!/bin/bash'
    echo '# generated by tools/kvm-in-qemu.sh: the command to run in the guest'
    for name in $(compgen -e); do
        case $name in
            PATH|HOME|BUILD|LANG|LC_ALL|TSAN_OPTIONS|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS|MSAN_OPTIONS|ZHV_*)
                printf 'export %s=%q\n' "$name" "${!name}" ;;
        esac
    done
    printf 'cd -- %q || exit 125\n' "$cwd"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} > "$run/cmd.sh"

# ---------------------------------------------------------------------------
# Boot. ttyS0 (console) -> filter -> stdout; ttyS1 -> stderr.
# ---------------------------------------------------------------------------
append="console=ttyS0 panic=-1 mitigations=off nokaslr tsc=reliable sysrq_always_enabled zhv.run=$run"
if [[ $verbose == 1 ]]; then
    append+=" zhv.verbose=1"
else
    append+=" quiet loglevel=0"
fi

qemu=(
    qemu-system-x86_64
    -nodefaults -no-user-config -display none -no-reboot
    -machine pc -accel tcg,thread=$tcg_thread,tb-size=512
    -cpu "$cpu_model" -smp "$cpus" -m "$mem"
    -kernel "$cache/linux/vmlinuz" -initrd "$initrd" -append "$append"
    -chardev stdio,id=ser0,signal=off -serial chardev:ser0
    -chardev pipe,id=ser1,path="$run/stderr" -serial chardev:ser1
    -fsdev local,id=hostroot,path=/,security_model=passthrough,multidevs=remap
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -monitor unix:"$run/monitor",server=on,wait=off
)

# Keep only what lies between the two markers /init prints; with --verbose,
# everything. The end marker may follow a last line that has no newline.
filter() {
    local line on=$verbose start='@@kvm-in-qemu: command starts@@' end='@@kvm-in-qemu: command ended@@'
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        if [[ $line == *"$end" ]]; then
            [[ $verbose == 1 ]] && { printf '%s\n' "$line"; continue; }
            printf '%s' "${line%"$end"}"
            on=0
            continue
        fi
        if [[ $line == "$start" ]]; then
            [[ $verbose == 1 ]] && printf '%s\n' "$line"
            on=1
            continue
        fi
        [[ $on == 1 ]] && printf '%s\n' "$line"
    done
    return 0
}

# ttyS1 goes through a FIFO to a cat that writes on our own stderr (QEMU's
# pipe chardev writes PATH.out and reads PATH.in; nothing comes in).
mkfifo "$run/stderr.out"
ln -s /dev/null "$run/stderr.in"
cat "$run/stderr.out" >&2 &
cat_pid=$!
set +e
timeout -k 10 "$timeout_secs" "${qemu[@]}" </dev/null | filter
qemu_rc=${PIPESTATUS[0]}
set -e
# If QEMU never opened the FIFO, open it once so the cat sees its end.
if kill -0 "$cat_pid" 2>/dev/null; then
    timeout 5 bash -c ': > "$1"' _ "$run/stderr.out" || kill "$cat_pid" 2>/dev/null
fi
wait "$cat_pid" 2>/dev/null || true

if [[ $qemu_rc == 124 || $qemu_rc == 137 ]]; then
    note "timed out after $timeout_secs s; QEMU killed"
    exit 124
fi
[[ $qemu_rc == 0 ]] || note "qemu-system-x86_64 exited with status $qemu_rc"
if [[ ! -s $run/status ]]; then
    keep=1
    die "the guest recorded no exit status (see --verbose; run directory kept: $run)"
fi
[[ $keep == 1 ]] && note "run directory kept: $run"
exit "$(cat "$run/status")"
