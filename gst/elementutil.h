// Small helpers shared by the elements: running time, server stats as a
// GstStructure, GError -> GStreamer error mapping.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "grtmp/server.h"

namespace grtmp::gst {

// The element's running time now (clock time - base time), or
// GST_CLOCK_TIME_NONE when it has no clock (not in a playing pipeline).
GstClockTime running_time_now(GstElement* element);

// "grtmp-server-stats": connections, connections-total, publishers,
// players, bytes-in, bytes-out, dropped-messages, protocol-errors and
// streams (an array of "stream" structures: key, video-codec,
// audio-codec, width, height, subscribers, bytes-in, live).
GstStructure* server_stats_structure(const std::shared_ptr<Server>& server);

// GStreamer resource error code for a library error (NOT_FOUND,
// NOT_AUTHORIZED, BUSY, OPEN_READ/OPEN_WRITE for the rest).
GstResourceError resource_error_for(const GError* error, bool writing);

// Posts a GST_RESOURCE_ERROR with a code chosen at run time.
void post_resource_error(GstElement* element, GstResourceError code, const std::string& text,
                         const std::string& debug, const char* file, const char* function, int line);
#define GRTMP_POST_RESOURCE_ERROR(el, code, text, debug) \
  ::grtmp::gst::post_resource_error(GST_ELEMENT(el), code, text, debug, __FILE__, GST_FUNCTION, __LINE__)

// "Could not listen on host:port: Address already in use" (the library's
// own wording trimmed of repetitions).
std::string listen_error_text(const std::string& host, unsigned port, const GError* error);

// A human-readable reason, for messages: "NetStream.Publish.BadName: ..."
std::string error_text(const GError* error);

}  // namespace grtmp::gst
