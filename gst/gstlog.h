// Routes the library's log records (grtmp::log) into GStreamer debug
// categories, and declares the per-element categories. GST_DEBUG=grtmp*:5
// shows everything the plugin and the library say.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

// "grtmp": the protocol library (server, sessions, registry, client).
GST_DEBUG_CATEGORY_EXTERN(grtmp_lib_debug);
// One category per element: grtmpserversrc, grtmpserversink, ...
GST_DEBUG_CATEGORY_EXTERN(grtmp_serversrc_debug);
GST_DEBUG_CATEGORY_EXTERN(grtmp_serversink_debug);
GST_DEBUG_CATEGORY_EXTERN(grtmp_clientsink_debug);
GST_DEBUG_CATEGORY_EXTERN(grtmp_clientsrc_debug);

G_END_DECLS

namespace grtmp::gst {

// Registers the debug categories and installs the library log sink. Safe to
// call more than once (every element's registration calls it).
void log_init();

}  // namespace grtmp::gst
