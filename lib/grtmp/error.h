// The library's GError domain. I/O failures keep G_IO_ERROR codes; protocol
// and policy failures use GRTMP_ERROR with the codes below.
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GRTMP_ERROR (grtmp_error_quark())
GQuark grtmp_error_quark(void);

typedef enum {
  GRTMP_ERROR_MALFORMED,        // bytes that do not parse (AMF, chunk, FLV, handshake)
  GRTMP_ERROR_LIMIT,            // a configured limit was exceeded (depth, size, count)
  GRTMP_ERROR_UNSUPPORTED,      // valid but not supported (e.g. RTMPE handshake version)
  GRTMP_ERROR_PROTOCOL,         // valid bytes, invalid at this point of the session
  GRTMP_ERROR_TIMEOUT,          // handshake / idle / publisher timeout
  GRTMP_ERROR_REFUSED,          // the peer refused (onStatus error, _error)
  GRTMP_ERROR_NOT_FOUND,        // stream not found
  GRTMP_ERROR_UNAUTHORIZED,     // authorization denied
  GRTMP_ERROR_BAD_NAME,         // stream key busy or invalid
  GRTMP_ERROR_CLOSED,           // peer closed the connection
  GRTMP_ERROR_SLOW_CONSUMER,    // a player fell too far behind
} GrtmpError;

G_END_DECLS
