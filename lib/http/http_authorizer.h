// An Authorizer that asks an HTTP endpoint, with nginx-rtmp's semantics:
// a POST (application/x-www-form-urlencoded: call=connect|publish|play|done,
// app, name, addr, clientid, tcurl, plus the stream's query arguments)
// per event; a 2xx answer allows, a 3xx answer with a Location header
// allows and renames the stream to the last path segment of Location
// (publish/play), anything else — other codes, a timeout, a server that
// is down — denies.
//
// Requests run on a thread of their own with its own GMainContext and
// SoupSession (libsoup 3), so a slow endpoint never blocks a server loop.
#pragma once

#include <glib.h>

#include <memory>
#include <string>

#include "grtmp/auth.h"

namespace grtmp {

struct HttpAuthorizerOptions {
  std::string on_connect;  // URLs; empty = that event is not sent (allowed)
  std::string on_publish;
  std::string on_play;
  std::string on_done;
  uint32_t timeout_ms = 5000;  // past it: denied ("callback timed out")
};

class HttpAuthorizer : public Authorizer {
 public:
  explicit HttpAuthorizer(HttpAuthorizerOptions options);
  ~HttpAuthorizer() override;
  void authorize(const AuthRequest& request, Done done) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The form body sent for a request (exposed for tests).
std::string http_auth_form(const AuthRequest& request);

}  // namespace grtmp
