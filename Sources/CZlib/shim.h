// zlib, for reading gzip-compressed corpora (inflateInit2 is a macro; this wraps it for Swift).
#ifndef NGPT_ZLIB_SHIM_H
#define NGPT_ZLIB_SHIM_H
#include <zlib.h>

// A z_stream set up to read gzip (windowBits 15 + 16: gzip header and trailer, CRC-32 checked).
static inline int ngpt_inflate_init_gzip(z_stream *stream) { return inflateInit2(stream, 15 + 16); }

#endif
