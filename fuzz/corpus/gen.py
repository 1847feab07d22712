#!/usr/bin/env python3
"""fuzz/corpus/gen.py: writes the seed corpora of the fuzz targets
(fuzz/corpus/<target>/<name>): small valid inputs for each parser, in the
input formats the targets' headers describe. Deterministic: running it
again rewrites the same files. Regression seeds of fixed bugs are kept
beside them as plain files (named after the bug) and not generated here."""
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def le16(v): return struct.pack("<H", v & 0xFFFF)
def le32(v): return struct.pack("<I", v & 0xFFFFFFFF)
def le64(v): return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def at(buf, off, data):
    if len(buf) < off + len(data):
        buf.extend(b"\0" * (off + len(data) - len(buf)))
    buf[off:off + len(data)] = data


# ---- loader: one option byte, then the kernel file ---------------------------
# Option bits: 0 initrd, 1 one module, 2 two modules, 3 cmdline, 4-5 RAM size.

def elf(cls, machine, entry, phdrs, extra=b""):
    """An ELF with (phdrs) = [(type, offset, paddr, vaddr, filesz, memsz)]."""
    b = bytearray()
    is64 = cls == 2
    ehsize, phsize = (64, 56) if is64 else (52, 32)
    at(b, 0, b"\x7fELF" + bytes([cls, 1, 1]))
    at(b, 16, le16(2) + le16(machine) + le32(1))
    if is64:
        at(b, 24, le64(entry) + le64(ehsize) + le64(0) + le32(0) + le16(ehsize) +
           le16(phsize) + le16(len(phdrs)))
    else:
        at(b, 24, le32(entry) + le32(ehsize) + le32(0) + le32(0) + le16(ehsize) +
           le16(phsize) + le16(len(phdrs)))
    for i, (t, off, pa, va, fsz, msz) in enumerate(phdrs):
        o = ehsize + i * phsize
        if is64:
            at(b, o, le32(t) + le32(5) + le64(off) + le64(va) + le64(pa) + le64(fsz) +
               le64(msz) + le64(0x1000))
        else:
            at(b, o, le32(t) + le32(off) + le32(va) + le32(pa) + le32(fsz) + le32(msz) +
               le32(5) + le32(0x1000))
    return b


def mb_header(flags, extra=b""):
    return le32(0x1BADB002) + le32(flags) + le32(-(0x1BADB002 + flags)) + extra


code = bytes([0xF4, 0xEB, 0xFD]) * 8  # hlt; jmp hlt

# multiboot ELF32: the header right after the program headers, code at 1 MiB.
k = elf(1, 3, 0x100000, [(1, 0x100, 0x100000, 0x100000, len(code), 0x1000)])
at(k, 0x80, mb_header(3))
at(k, 0x100, code)
for opt, name in ((0, "multiboot-elf32"), (0x0E, "multiboot-elf32-mods-cmdline"),
                  (0x09, "multiboot-elf32-initrd"), (0x30, "multiboot-elf32-1mib")):
    put("loader", name, bytes([opt]) + k)

# multiboot ELF64 (still 32-bit entry).
k = elf(2, 62, 0x100000, [(1, 0x100, 0x100000, 0xFFFFFFFF80100000, len(code), 0x80)])
at(k, 0xC0, mb_header(2))
at(k, 0x100, code)
put("loader", "multiboot-elf64", bytes([0x08]) + k)

# multiboot a.out kludge: header at 0, loaded at 1 MiB from offset 0.
hdr_addr = 0x100000
k = bytearray(mb_header(0x10003, le32(hdr_addr) + le32(0x100000) + le32(0x100040) +
                        le32(0x101000) + le32(0x100030)))
at(k, 0x30, code)
put("loader", "multiboot-aout", bytes([0x02]) + k)

# plain ELF64 and PVH (a Xen PHYS32_ENTRY note in a PT_NOTE).
k = elf(2, 62, 0x100000, [(1, 0x200, 0x100000, 0x100000, len(code), 0x2000)])
at(k, 0x200, code)
put("loader", "elf64", bytes([0]) + k)
note = le32(4) + le32(4) + le32(18) + b"Xen\0" + le32(0x100000)
k = elf(2, 62, 0x100000, [(1, 0x200, 0x100000, 0x100000, len(code), 0x40),
                          (4, 0x180, 0, 0, len(note), len(note))])
at(k, 0x180, note)
at(k, 0x200, code)
put("loader", "pvh", bytes([0]) + k)
put("loader", "pvh-initrd-mods-cmdline", bytes([0x0F]) + k)

# bzImage: boot protocol 2.15, one setup sector, relocatable, 64-bit entry.
k = bytearray(2 * 512)
at(k, 0x1F1, bytes([1]))
at(k, 0x1FE, le16(0xAA55))
at(k, 0x200, bytes([0xEB, 0x66]))  # header ends at 0x268
at(k, 0x202, b"HdrS" + le16(0x020F))
at(k, 0x211, bytes([0x01]))
at(k, 0x22C, le32(0x37FFFFFF))
at(k, 0x230, le32(0x200000))
at(k, 0x234, bytes([1]))
at(k, 0x236, le16(0x1))
at(k, 0x238, le32(2048))
at(k, 0x258, le64(0x200000))
at(k, 0x260, le32(0x10000))
k.extend(code)
put("loader", "bzimage", bytes([0x08]) + k)
put("loader", "bzimage-initrd", bytes([0x09]) + k)

put("loader", "flat", bytes([0]) + code)

# ---- virtqueue: le16 size, le32 desc/avail/used, actions, guest RAM ------------

def desc(addr, length, flags, nxt):
    return le64(addr) + le32(length) + le16(flags) + le16(nxt)


NEXT, WRITE, INDIRECT = 1, 2, 4


def ring(size, descs, heads, base=0):
    """Ring memory of (size) entries at (base): descriptor table, driver
    area, device area (as fuzz/virtio_dev.h's queue set-up lays them)."""
    m = bytearray()
    avail = base + 16 * size
    used = (avail + 6 + 2 * size + 3) & ~3
    for i, d in enumerate(descs):
        at(m, base + 16 * i, d)
    at(m, avail, le16(0) + le16(len(heads)) + b"".join(le16(h) for h in heads))
    at(m, used + 6 + 8 * size - 1, b"\0")
    return m, avail, used


m, avail, used = ring(8, [desc(0x200, 16, NEXT, 1), desc(0x300, 64, NEXT | WRITE, 2),
                          desc(0x400, 1, WRITE, 0),
                          desc(0x500, 48, INDIRECT, 0)], [0, 3])
at(m, 0x500, desc(0x200, 8, NEXT, 2) + desc(0, 0, 0, 0) + desc(0x380, 32, WRITE, 0))
at(m, 0x5FF, b"\0")
put("virtqueue", "direct-and-indirect", le16(8) + le32(0) + le32(avail) + le32(used) +
    bytes([0x03]) + m)
m, avail, used = ring(4, [desc(0x100, 4, 0, 0)], [0, 0, 0, 0])
at(m, 0x1FF, b"\0")
put("virtqueue", "full-ring", le16(4) + le32(0) + le32(avail) + le32(used) + bytes([0]) + m)

# ---- virtio devices: nops, flags, 8-byte operations, guest RAM ------------------

def op(kind, size, off, value):
    return bytes([kind, size]) + le16(off) + le32(value)


def setup(features, queues, before_ok=()):
    """Driver set-up (the features the device offers among (features)),
    queues [(q, log2 size, base)], (before_ok), DRIVER_OK."""
    ops = [op(5, 0, 0, features)]
    for q, lg, base in queues:
        ops.append(op(6, q | lg << 3, base, 0))
    ops += list(before_ok)
    ops.append(op(0, 0, 0x14, 0x0F))  # status: ACK | DRIVER | FEATURES_OK | DRIVER_OK
    return ops


def msix(vectors):
    """Enable MSI-X, unmask (vectors), config vector 0, queue q -> vector q + 1."""
    ops = [op(2, 1, 0x86, 0x8000)]
    for v in range(vectors):
        ops.append(op(0, 2, 0x3000 + 16 * v, 0xFEE00000))
        ops.append(op(0, 2, 0x3000 + 16 * v + 8, 0x30 + v))
        ops.append(op(0, 2, 0x3000 + 16 * v + 12, 0))
    ops.append(op(0, 1, 0x10, 0))
    for q in range(vectors - 1):
        ops.append(op(0, 1, 0x16, q))
        ops.append(op(0, 1, 0x1A, q + 1))
    return ops


def dev_input(ops, flags, mem):
    return bytes([len(ops), flags]) + b"".join(ops) + bytes(mem)


# virtio-blk: queue 0 of 8 at 0; header 0x200, data 0x400 (2 sectors), status 0x800.
def blk_req(t, sector, data_len, data_flags):
    hdr = le32(t) + le32(0) + le64(sector)
    ds = [desc(0x200, 16, NEXT, 1)]
    if data_len:
        ds.append(desc(0x400, data_len, NEXT | data_flags, 2))
    else:
        ds[0] = desc(0x200, 16, NEXT, 2)
        ds.append(desc(0, 0, 0, 0))
    ds.append(desc(0x800, 1, WRITE, 0))
    m, _, _ = ring(8, ds, [0])
    at(m, 0x200, hdr)
    at(m, 0x400, bytes((i * 3) & 0xFF for i in range(1024)))
    at(m, 0x800, b"\xee")
    return m


for name, t, sector, n, fl, flags in (("read", 0, 0, 1024, WRITE, 0),
                                      ("write", 1, 2, 512, 0, 0),
                                      ("write-readonly", 1, 2, 512, 0, 1),
                                      ("flush", 4, 0, 0, 0, 0),
                                      ("get-id", 8, 0, 20, WRITE, 0),
                                      ("past-end", 0, 31, 1024, WRITE, 0)):
    ops = setup(0xFFFFFFFF, [(0, 3, 0)]) + [op(4, 0, 0, 0), op(1, 0, 0x800, 0)]
    put("virtio_blk", name, dev_input(ops, flags, blk_req(t, sector, n, fl)))
# An indirect request with MSI-X.
m, _, _ = ring(8, [desc(0x100, 48, INDIRECT, 0)], [0])
at(m, 0x100, desc(0x200, 16, NEXT, 1) + desc(0x400, 512, NEXT | WRITE, 2) +
   desc(0x800, 1, WRITE, 0))
at(m, 0x200, le32(0) + le32(0) + le64(1))
at(m, 0x800, b"\xee")
ops = setup(0xFFFFFFFF, [(0, 3, 0)], msix(2)) + [op(4, 0, 0, 0), op(1, 0, 0x3800, 0)]
put("virtio_blk", "indirect-msix", dev_input(ops, 0, m))

# virtio-net: receive queue 0 at 0, transmit queue 1 at 0x200 (8 entries each).
m, _, _ = ring(8, [desc(0x400, 0x100, WRITE, 0), desc(0x500, 0x100, WRITE, 0)], [0, 1])
t, _, _ = ring(8, [desc(0x600, 12, NEXT, 1), desc(0x700, 60, 0, 0)], [0], base=0x200)
at(m, 0x200, t[0x200:])
at(m, 0x7FF, b"\0")
for name, feats in (("mrg-rxbuf", 1 << 15 | 1 << 5 | 1 << 16), ("plain", 1 << 5)):
    ops = setup(feats, [(0, 3, 0), (1, 3, 0x200)]) + [op(4, 0, 0, 1), op(3, 0, 0x41, 0x180),
                                                      op(3, 0, 0x42, 60)]
    put("virtio_net", name, dev_input(ops, 0, m))
ops = setup(1 << 15, [(0, 3, 0), (1, 3, 0x200)], msix(3)) + [op(4, 0, 0, 1),
                                                              op(3, 0, 0, 0x1000)]
put("virtio_net", "msix-large-frame", dev_input(ops, 0, m))

# virtio-console: receive queue 0 at 0, transmit queue 1 at 0x200.
m, _, _ = ring(8, [desc(0x400, 0x40, WRITE, 1), desc(0x480, 0x40, WRITE, 0)], [0])
t, _, _ = ring(8, [desc(0x600, 14, NEXT, 1), desc(0x700, 3, 0, 0)], [0, 1], base=0x200)
at(m, 0x200, t[0x200:])
at(m, 0x600, b"hello, console")
at(m, 0x7FF, b"\0")
ops = setup(0, [(0, 3, 0), (1, 3, 0x200)]) + [op(3, 0, 0x61, 100), op(4, 0, 0, 1),
                                              op(4, 0, 0, 0)]
put("virtio_console", "input-output", dev_input(ops, 0, m))
ops = setup(0, [(0, 3, 0), (1, 3, 0x200)], msix(3)) + [op(3, 0, 0x61, 10), op(4, 0, 0, 1)]
put("virtio_console", "msix", dev_input(ops, 0, m))

# virtio-rng: queue 0 at 0.
m, _, _ = ring(8, [desc(0x200, 16, NEXT, 1), desc(0x300, 0x40, WRITE, 0),
                   desc(0x400, 0x100, WRITE, 0)], [0, 2])
at(m, 0x4FF, b"\0")
put("virtio_rng", "requests", dev_input(setup(0, [(0, 3, 0)]) + [op(4, 0, 0, 0)], 0, m))
# Features beyond the offer (size bit 1: not masked): FEATURES_OK refused.
put("virtio_rng", "features-refused", dev_input([op(5, 2, 0, 0xFFFFFFFF), op(6, 3 << 3, 0, 0),
                                                 op(0, 0, 0x14, 0x0F), op(4, 0, 0, 0)], 0, m))
ops = setup(0, [(0, 3, 0)], msix(2)) + [op(4, 0, 0, 0), op(1, 0, 0x800, 0),
                                         op(0, 0, 0x14, 0)]
put("virtio_rng", "msix-reset", dev_input(ops, 0, m))
# Device config, feature words and queue fields read back.
ops = [op(1, 2, off, 0) for off in (0, 4, 0x12, 0x14, 0x18, 0x1c, 0x1e, 0x20, 0x1000, 0x3000)]
put("virtio_rng", "reads", dev_input(ops, 0, b""))

# ---- pci: 8-byte operations (kind % 4: port write/read, MMIO write/read) ------------

def cfg_addr(slot, reg):
    return 0x80000000 | slot << 11 | reg


ops = []
for slot in (0, 1, 2, 3):
    ops += [op(0, 2, 0, cfg_addr(slot, 0)), op(1, 2, 4, 0)]
ops += [op(0, 2, 0, cfg_addr(1, 0x10)), op(0, 2, 4, 0xFFFFFFFF), op(1, 2, 4, 0),
        op(0, 2, 4, 0xC0000000), op(0, 2, 0, cfg_addr(1, 0x04)), op(0, 1, 4, 0x0006),
        op(3, 2, 0x0000, 0), op(3, 0, 0x0014, 0), op(2, 0, 0x0014, 1),
        op(3, 2, 0x4000, 0)]  # the second device's BAR0 follows the first's 16 KiB
put("pci", "config-and-bars", b"".join(ops))
put("pci", "reset-control", op(1, 0, 1, 0) + op(0, 0, 1, 0x06))
ops = [op(0, 2, 0, cfg_addr(2, 0x84)), op(0, 1, 6, 0xC000), op(1, 2, 4, 0),
       op(2, 2, 0x3000 + 12, 0)]
put("pci", "msix-enable", b"".join(ops))
# pci-testdev (slot 3): BAR0 at window offset 0x8000, BAR1 at port 0xc000
# (kind | 0x80): select a test, write its hits, read the count and name.
ops = [op(2, 0, 0x8000, 1)] + [op(2, 0, 0x8000 + 2049, 0xCE)] * 4 + \
      [op(3, 2, 0x8000 + 12, 0), op(3, 2, 0x8000 + 16, 0),
       op(0x80, 0, 0, 2)] + [op(0x80, 0, 133, 0xFA)] * 4 + \
      [op(0x81, 2, 12, 0), op(0x81, 2, 0x80, 0), op(0x80, 0, 0, 7), op(0x81, 2, 0, 0)]
put("pci", "testdev", b"".join(ops))

# ---- fw_cfg: 4-byte port accesses -----------------------------------------------

def fw(write, width_log, port, data=0):
    return bytes([int(write) | width_log << 1 | port << 3]) + le16(data) + b"\0"


put("fw_cfg", "signature", fw(1, 1, 0, 0) + b"".join(fw(0, 0, 1) for _ in range(5)))
put("fw_cfg", "ram-and-cpus", fw(1, 1, 0, 3) + fw(0, 2, 1) + fw(0, 2, 1) +
    fw(1, 1, 0, 5) + fw(0, 1, 1) + fw(1, 0, 0, 0xF) + fw(0, 0, 0))

# ---- decode: flags, access size, code length, code, le64 GPA, registers -------------

def dec(mode, access, codeb, gpa, regs=()):
    r = b"".join(le64(v) for v in regs)
    return bytes([mode, access, len(codeb)]) + bytes(codeb) + le64(gpa) + r


put("decode", "mov-rax-ebx", dec(2, 4, [0x48, 0x89, 0x18][1:], 0x1000, [0x1000]))
put("decode", "mov-abs-imm", dec(2, 4, [0xC7, 0x04, 0x25, 0, 0x10, 0, 0, 1, 0, 0, 0],
                                 0x1000))
put("decode", "stosd", dec(2, 4, [0xAB], 0x2004, [0] * 7 + [0x2004]))
put("decode", "rep-movsb", dec(2, 1, [0xF3, 0xA4], 0x3000, [0] * 7 + [0x3001]))
put("decode", "real16-mov-bx-al", dec(0, 1, [0x88, 0x07], 0x10, [0, 0, 0, 0x10]))
put("decode", "prot32-mov-fs", dec(1, 2, [0x64, 0x66, 0x89, 0x03], 0x5000,
                                  [0, 0, 0, 0x1000] + [0] * 12 + [0, 0x4000]))
put("decode", "junk-before", dec(2, 8, [0x0F, 0x0F, 0x48, 0x89, 0x08], 0x0, [0] * 16))

# ---- pagewalk: flags, le32 CR3, le64 linear address, length / 64, RAM --------------

m = bytearray(0x4000)
at(m, 0x1000, le64(0x2003))           # PML4[0] -> PDPT
at(m, 0x2000, le64(0x3003))           # PDPT[0] -> PD
at(m, 0x3000, le64(0x0083))           # PD[0]: 2 MiB page at 0
at(m, 0x3008, le64(0x1003))           # PD[1] -> a page table (the PML4 page)
put("pagewalk", "long4-2mib", bytes([1 | 4 | 8]) + le32(0x1000) + le64(0x1F00) + bytes([4]) + m)
put("pagewalk", "long4-4k", bytes([1 | 4 | 8]) + le32(0x1000) + le64(0x200000) + bytes([1]) + m)
m = bytearray(0x3000)
at(m, 0x1000, le32(0x2003))           # PDE[0] -> page table
at(m, 0x1004, le32(0x00400083))       # PDE[1]: 4 MiB page (PSE)
at(m, 0x2000, le32(0x1003))
put("pagewalk", "legacy32-pse", bytes([1 | 2]) + le32(0x1000) + le64(0x400010) + bytes([1]) + m)
put("pagewalk", "legacy32-4k", bytes([1]) + le32(0x1000) + le64(0x0FF0) + bytes([2]) + m)
m = bytearray(0x3000)
at(m, 0x20, le64(0x1001))             # PDPTE[0] at CR3 0x20
at(m, 0x1000, le64(0x0083))
put("pagewalk", "pae", bytes([1 | 4]) + le32(0x20) + le64(0x10) + bytes([1]) + m)
put("pagewalk", "paging-off", bytes([0]) + le32(0) + le64(0x100) + bytes([1]) + bytes(0x200))

# ---- trap_map: 18-byte operations ---------------------------------------------------

def tm(opb, kind, addr, length):
    return bytes([opb, kind]) + le64(addr) + le64(length)


put("trap_map", "mem-io-bell",
    tm(0, 1, 0x1000, 0x1000) + tm(0, 1, 0x3000, 0x1000) + tm(0, 1, 0x1800, 0x2000) +
    tm(0, 0, 0x2000, 0x1000) + tm(0, 2, 0x3F8, 8) + tm(0, 2, 0xFFF8, 8) +
    tm(0x80, 0, 0x8000, 0x1000) + tm(1, 1, 0x1FFF, 0) + tm(1, 0, 0x2000, 0) +
    tm(1, 2, 0x3FF, 0) + tm(1, 2, 0x400, 0) + tm(1, 3, 0, 0))

# ---- snapshot: byte 0 picks the section (creation order in fuzz/snapshot.c), then -----
# ---- the section as a fresh device saves it ------------------------------------------

put("snapshot", "ioapic", bytes([0]) + le32(0) * 3 + le64(0x10000) * 24 + le32(0) * 24)
put("snapshot", "pic", bytes([1]) + b"".join(
    bytes([0, 0, 0xFF, vb, 0, 0, 0, 0]) + bytes(7) for vb in (0x08, 0x70)))
put("snapshot", "pit", bytes([2]) + b"".join(
    le32(0x10000) + bytes([0, 0, 0, gate, 0, 1]) + le64(0) * 2 + bytes(5) + le16(0) + bytes(2)
    for gate in (1, 1, 0)) + bytes([0, 0, 0]) + le64(0) * 2)
cmos = bytearray(128)
cmos[0x0A], cmos[0x0B], cmos[0x0D] = 0x26, 0x02, 0x80
put("snapshot", "rtc", bytes([3]) + bytes(cmos) + bytes([0]) + le64(0) * 2 + le32(0) * 7 + le64(0))
put("snapshot", "i8042", bytes([4, 0x65, 0x03, 0x00, 1, 0, 2, 0x55, 0, 0x42, 1]))
put("snapshot", "fw_cfg", bytes([5]) + le16(0x0003) + le32(2))
put("snapshot", "pc-testdev", bytes([6]) + le32(0x12345678) + le32(1 << 4) + bytes(0x10000))
put("snapshot", "pci-testdev", bytes([8, 4]) + le32(3) * 6)
put("snapshot", "acpi", bytes([9]) + le16(0x0400) + le16(0x0400) + le16(0x0003) + le64(10**9))
put("snapshot", "uart", bytes([10, 0x0F, 0x03, 0x1F, 0x5A, 0x0C, 0, 0xC1, 0x03, 1, 1]) +
    le16(3) + b"abc")


def virtio_section(nq, qs, config, ready_at=None):
    """A virtio device's transport as a fresh device saves it; with
    ready_at, its queues enabled (DRIVER_OK) with rings from that GPA."""
    s = le64((1 << 32) | (1 << 28))                     # offered: VERSION_1, INDIRECT_DESC
    s += le64((1 << 32) if ready_at is not None else 0)  # accepted
    s += le32(0) + le32(0) + le16(0xFFFF) + le16(0)
    s += bytes([0x0F if ready_at is not None else 0, 0, 0, 0, 0]) + le32(0) + bytes([nq])
    for q in range(nq):
        if ready_at is None:
            s += le16(qs) + le64(0) * 3 + bytes([0, 0]) + le16(0) + le16(0)
        else:
            base = ready_at + q * 0x4000
            s += le16(qs) + le64(base) + le64(base + 0x1000) + le64(base + 0x2000)
            s += bytes([1, 0]) + le16(3) + le16(3)
        s += le16(0xFFFF)
    s += bytes([nq + 1]) + (le32(0) * 3 + le32(1)) * (nq + 1)
    return s + le16(len(config)) + bytes(config)


put("snapshot", "virtio-rng", bytes([14]) + virtio_section(1, 64, b""))
put("snapshot", "virtio-rng-running", bytes([14]) + virtio_section(1, 64, b"", 0x100000))
put("snapshot", "virtio-console", bytes([15]) + virtio_section(2, 64, bytes(12)) + le16(2) + b"hi")


# gdb_rsp: byte 0 picks the session's mode (bit 0: 64-bit), then what a
# GDB client sends.
def rsp(payload):
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xFF)


put("gdb_rsp", "handshake", b"\x00+" + rsp(b"qSupported:swbreak+;hwbreak+") +
    rsp(b"qXfer:features:read:target.xml:0,7ff") + rsp(b"?") + rsp(b"qfThreadInfo") +
    rsp(b"qsThreadInfo") + rsp(b"Hg2") + rsp(b"g") + rsp(b"p8") + rsp(b"D"))
put("gdb_rsp", "handshake64", b"\x01" + rsp(b"qXfer:features:read:target.xml:100,200") +
    rsp(b"g") + rsp(b"P10=0000100000000000") + rsp(b"qC"))
put("gdb_rsp", "memory", b"\x00" + rsp(b"m100000,40") + rsp(b"M100010,2:abcd") +
    rsp(b"X100020,3:a}\x03z") + rsp(b"m0,ffffffff") + rsp(b"X100020,0:"))
put("gdb_rsp", "break-run", b"\x00" + rsp(b"Z0,100040,1") + rsp(b"vCont;c") +
    rsp(b"vCont;s:1;c") + rsp(b"c") + b"\x03" + rsp(b"z0,100040,1") + rsp(b"Z2,100800,4") +
    rsp(b"Z4,100808,8") + rsp(b"Z1,100010,1") + rsp(b"s") + rsp(b"k"))
put("gdb_rsp", "hostile", b"\x00garbage$g#00$g#zz-" + rsp(b"G00") + rsp(b"vCont;s:ff") +
    rsp(b"Hgzz") + rsp(b"m10000000000000000000,1") + rsp(b"qXfer:features:read:x:0,1"))
