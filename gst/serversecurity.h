// Secure ingest for the server elements (rtmpserversrc, rtmpserversink):
// the TLS properties they share, the certificate check, the element
// authorization hub behind rtmpserversrc's "authorize" signal, and the
// acquisition of the (shared) server with all of it. See docs/elements.md.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "grtmp/server.h"

namespace grtmp::gst {

// ---------------------------------------------------------------- TLS properties

// "tls", "tls-cert-file", "tls-key-file", "tls-address", "tls-port" and the
// read-only "current-tls-port", in this order. An element installs them
// under consecutive property ids (first + int(TlsProp)).
enum class TlsProp { Tls, CertFile, KeyFile, Address, Port, CurrentPort, Count };
constexpr guint kTlsPropCount = guint(TlsProp::Count);

struct TlsSettings {
  bool enabled = false;
  std::string cert_file;
  std::string key_file;
  std::string address;  // empty: the element's address
  guint port = ServerConfig().tls_port;
};

GParamSpec* tls_param_spec(TlsProp which);
// CurrentPort is the element's own (it is not a setting).
void tls_set_property(TlsSettings& settings, TlsProp which, const GValue* value);
void tls_get_property(const TlsSettings& settings, TlsProp which, GValue* value);

// Loads the certificate chain and the key, then runs one TLS handshake
// with them over a socket pair in memory: GLib 2.74 loads a key that does
// not belong to the certificate without complaint (every client handshake
// would fail later). Errors name the files and the cause.
bool check_tls_files(const std::string& cert_file, const std::string& key_file, GError** error);

// ---------------------------------------------------------------- acquiring the server

struct ServerRequest {
  ServerConfig config;          // host, port and policies from the element's properties
  TlsSettings tls;
  guint authorize_signal = 0;   // rtmpserversrc's "authorize" signal id; 0: none (rtmpserversink)
  bool writing = false;         // error code OPEN_WRITE (sink) or OPEN_READ (source)
};

// Server::acquire() with the element's TLS settings (checked first) and
// the element authorization hub as the server's authorizer. When the
// server for host:port is already running (another element, or the
// application) its configuration stays; then:
//  - tls=true on a server without RTMPS is an error (never plain instead),
//  - other TLS settings than the running server's are a warning,
//  - so are policies (chunk-size, gop-cache, timeouts, limits) this element
//    set away from their defaults that the running server does not have,
//  - the element joins the running server's hub if it has one; if it does
//    not (the application's or launcher's own authorizer, or none), connected
//    "authorize" handlers are an error (they would never be asked).
// Posts an element error and returns null on failure.
std::shared_ptr<Server> acquire_server(GstElement* element, const ServerRequest& request);

// The element's "authorize" handlers are no longer asked (state change to READY).
void release_server(GstElement* element, const std::shared_ptr<Server>& server);

}  // namespace grtmp::gst
