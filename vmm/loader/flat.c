/* flat.c: flat binaries: the whole file at 1 MiB, entered there in 64-bit
 * long mode on the loader's identity page tables (loader.h). */
#include <errno.h>

#include "loader_priv.h"

#define FLAT_BASE LOADER_FLAT_BASE

int flat_load(struct loader *l)
{
	const char *path = l->kernel.path;

	if (l->req->initrd_path || l->req->nmodules)
		return loader_error(l, -EINVAL, "%s: a flat binary takes no initrd or modules (no "
		                    "boot protocol to pass them)", path);
	int ret = loader_claim(l, path, FLAT_BASE, l->kernel.size, REGION_SEGMENT,
	                       "the flat binary", NULL);
	if (ret == 0)
		ret = loader_file_to_guest(l, &l->kernel, 0, FLAT_BASE, l->kernel.size,
		                           "flat binary");
	if (ret == 0)
		ret = loader_place_boot(l, true);
	if (ret == 0)
		ret = loader_enter_long(l, FLAT_BASE, LONG_PLAIN);
	return ret;
}
