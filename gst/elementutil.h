// Small helpers shared by the elements: running time, server stats as a
// GstStructure, GError -> GStreamer error mapping.
#pragma once

#include <gio/gio.h>
#include <gst/gst.h>

#include <memory>
#include <string>

#include "grtmp/server.h"
#include "grtmp/url.h"

namespace grtmp::gst {

// The element's running time now (clock time - base time), or
// GST_CLOCK_TIME_NONE when it has no clock (not in a playing pipeline).
GstClockTime running_time_now(GstElement* element);

// "grtmp-server-stats": connections, connections-total, publishers,
// players, bytes-in, bytes-out, dropped-messages, protocol-errors,
// rejected-connections, auth-denials, tls-failures and
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

// The URL for messages and logs: "rtmp[s]://host:port/app/stream?..." — the
// query's content (tokens, keys) left out. "" for a URL without a host.
std::string redacted_url(const Url& url);
// Every "?query" in a text (up to a space or quote) as "?...": for the
// library's URL parse errors, which quote the URL as given.
std::string redact_queries(const std::string& text);

// tls-validation-flags as gst-launch writes them: "validate-all",
// "unknown-ca+expired", "0".
std::string tls_flags_text(GTlsCertificateFlags flags);

// A human-readable reason, for messages: "NetStream.Publish.BadName: ..."
std::string error_text(const GError* error);

}  // namespace grtmp::gst
