/* status.c: names of libzhv's status codes. */
#include "zhv.h"

const char *zhv_status_string(zhv_status_t status)
{
	switch (status) {
	case ZHV_OK:
		return "ZHV_OK";
	case ZHV_ERR_INTERNAL:
		return "ZHV_ERR_INTERNAL";
	case ZHV_ERR_NOT_SUPPORTED:
		return "ZHV_ERR_NOT_SUPPORTED";
	case ZHV_ERR_NO_RESOURCES:
		return "ZHV_ERR_NO_RESOURCES";
	case ZHV_ERR_NO_MEMORY:
		return "ZHV_ERR_NO_MEMORY";
	case ZHV_ERR_INVALID_ARGS:
		return "ZHV_ERR_INVALID_ARGS";
	case ZHV_ERR_WRONG_TYPE:
		return "ZHV_ERR_WRONG_TYPE";
	case ZHV_ERR_OUT_OF_RANGE:
		return "ZHV_ERR_OUT_OF_RANGE";
	case ZHV_ERR_BAD_STATE:
		return "ZHV_ERR_BAD_STATE";
	case ZHV_ERR_TIMED_OUT:
		return "ZHV_ERR_TIMED_OUT";
	case ZHV_ERR_SHOULD_WAIT:
		return "ZHV_ERR_SHOULD_WAIT";
	case ZHV_ERR_CANCELED:
		return "ZHV_ERR_CANCELED";
	case ZHV_ERR_NOT_FOUND:
		return "ZHV_ERR_NOT_FOUND";
	case ZHV_ERR_ALREADY_EXISTS:
		return "ZHV_ERR_ALREADY_EXISTS";
	case ZHV_ERR_ACCESS_DENIED:
		return "ZHV_ERR_ACCESS_DENIED";
	case ZHV_ERR_IO:
		return "ZHV_ERR_IO";
	case ZHV_ERR_BUFFER_TOO_SMALL:
		return "ZHV_ERR_BUFFER_TOO_SMALL";
	case ZHV_ERR_IO_DATA_INTEGRITY:
		return "ZHV_ERR_IO_DATA_INTEGRITY";
	default:
		return "ZHV_ERR_<unknown>";
	}
}
