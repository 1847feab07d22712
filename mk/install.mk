# mk/install.mk: the shared library, the pkg-config file and make
# install / uninstall (included by the top Makefile).
#
#   make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=$(PREFIX)/lib]
#
# installs bin/zhv (linked against the shared library), the bundled guest
# (lib/zhv/guest.elf), lib/libzhv.so.MAJOR.MINOR.PATCH with its SONAME
# link libzhv.so.MAJOR and the development link libzhv.so, lib/libzhv.a,
# include/zhv.h, lib/pkgconfig/zhv.pc and the man pages zhv.1 and
# libzhv.3. `make uninstall` with the same variables removes them.

ZHV_VERSION := $(shell sed -n 's/^\#define ZHV_VERSION_STRING "\(.*\)"/\1/p' include/zhv.h)
ZHV_MAJOR   := $(firstword $(subst ., ,$(ZHV_VERSION)))

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The bundled guest: a 32-bit multiboot kernel, not a host program.
GUESTDIR    ?= $(PREFIX)/lib/zhv
INSTALL     ?= install

# ---- the shared library ----------------------------------------------------
# The same sources built -fPIC. lib/libzhv.map exports the functions of zhv.h and
# makes everything else local; the ABI version is the SONAME's MAJOR.
LIBZHV_SONAME := libzhv.so.$(ZHV_MAJOR)
LIBZHV_SO     := $(BUILD)/libzhv.so.$(ZHV_VERSION)
LIB_PIC_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/pic/%.o)

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DZHV_ZYDIS_DLOPEN=1 $(CFLAGS) -fPIC -c -o $@ $<

$(LIBZHV_SO): $(LIB_PIC_OBJS) lib/libzhv.map
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(LIBZHV_SONAME) -Wl,--version-script=lib/libzhv.map \
		-Wl,-z,defs -o $@ $(LIB_PIC_OBJS) $(LDLIBS)
	ln -sf $(notdir $@) $(BUILD)/$(LIBZHV_SONAME)
	ln -sf $(notdir $@) $(BUILD)/libzhv.so

# zhv as installed: the VMM's objects against the shared library (the
# build tree's $(VMM_BIN) links libzhv.a, for the tests).
VMM_SHARED_BIN := $(BUILD)/shared/zhv
$(VMM_SHARED_BIN): $(VMM_OBJS) $(LIBZHV_SO)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(VMM_OBJS) -L$(BUILD) -lzhv -luring $(LDLIBS)

# ---- pkg-config ------------------------------------------------------------
# libzhv needs only the C library and threads; libZydis is opened with
# dlopen when an instruction must be decoded, so it is no link dependency
# (-ldl: dlopen, for C libraries that keep it apart). Written at install
# time, for the PREFIX and LIBDIR of that install.
ZHV_PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(ZHV_VERSION)|g' lib/zhv.pc.in

.PHONY: shared installables install uninstall install-test
shared: $(LIBZHV_SO) $(VMM_SHARED_BIN)
# Everything make install copies (what debian/rules builds).
installables: $(LIBZHV) $(LIBZHV_SO) $(VMM_SHARED_BIN) $(GUEST_ELF)

install: installables
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(GUESTDIR)
	$(INSTALL) -m 755 $(VMM_SHARED_BIN) $(DESTDIR)$(BINDIR)/zhv
	$(INSTALL) -m 644 $(GUEST_ELF) $(DESTDIR)$(GUESTDIR)/guest.elf
	$(INSTALL) -m 644 $(LIBZHV_SO) $(DESTDIR)$(LIBDIR)/libzhv.so.$(ZHV_VERSION)
	ln -sf libzhv.so.$(ZHV_VERSION) $(DESTDIR)$(LIBDIR)/$(LIBZHV_SONAME)
	ln -sf $(LIBZHV_SONAME) $(DESTDIR)$(LIBDIR)/libzhv.so
	$(INSTALL) -m 644 $(LIBZHV) $(DESTDIR)$(LIBDIR)/libzhv.a
	$(INSTALL) -m 644 include/zhv.h $(DESTDIR)$(INCLUDEDIR)/zhv.h
	$(ZHV_PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/zhv.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/zhv.pc
	$(INSTALL) -m 644 man/zhv.1 $(DESTDIR)$(MANDIR)/man1/zhv.1
	$(INSTALL) -m 644 man/libzhv.3 $(DESTDIR)$(MANDIR)/man3/libzhv.3
	@# Straight into the system (no DESTDIR), as root: the dynamic linker's
	@# cache learns of libzhv.so.$(ZHV_MAJOR), so that bin/zhv runs at once.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
		echo ldconfig; ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/zhv $(DESTDIR)$(GUESTDIR)/guest.elf \
		$(DESTDIR)$(LIBDIR)/libzhv.so.$(ZHV_VERSION) $(DESTDIR)$(LIBDIR)/$(LIBZHV_SONAME) \
		$(DESTDIR)$(LIBDIR)/libzhv.so $(DESTDIR)$(LIBDIR)/libzhv.a \
		$(DESTDIR)$(INCLUDEDIR)/zhv.h $(DESTDIR)$(PKGCONFIGDIR)/zhv.pc \
		$(DESTDIR)$(MANDIR)/man1/zhv.1 $(DESTDIR)$(MANDIR)/man3/libzhv.3
	-rmdir $(DESTDIR)$(GUESTDIR) 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then \
		echo ldconfig; ldconfig; fi

# The install test (tests/pkg/install.sh): make install into a temporary
# DESTDIR, the header as C11 and C++, examples/hello_guest.c built out of
# the tree with pkg-config (shared and static), the exported symbols, the
# SONAME, make uninstall, and zhv run --help against man/zhv.1.
install-test: all shared
	BUILD=$(BUILD) tests/pkg/install.sh

# The packaging test (tests/pkg/package.sh): dpkg-buildpackage from a copy
# of the tree, lintian, then the packages installed into this system (as
# root or with sudo), used, and purged again.
.PHONY: package-test
package-test:
	BUILD=$(BUILD) tests/pkg/package.sh
