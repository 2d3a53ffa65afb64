#include "grtmp/url.h"

#include <gtest/gtest.h>

#include "grtmp/error.h"

using grtmp::parse_url;
using grtmp::Url;

namespace {

Url ok(const char* text) {
  Url u;
  GError* err = nullptr;
  bool r = parse_url(text, u, &err);
  EXPECT_TRUE(r) << text << ": " << (err ? err->message : "");
  g_clear_error(&err);
  return u;
}

// Returns the error message (empty if it parsed).
std::string bad(const char* text) {
  Url u;
  GError* err = nullptr;
  bool r = parse_url(text, u, &err);
  EXPECT_FALSE(r) << text << " parsed";
  if (r) return {};
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_MALFORMED)) << text;
  std::string m = err->message;
  g_error_free(err);
  return m;
}

}  // namespace

TEST(Url, Basic) {
  Url u = ok("rtmp://example.com/live/stream");
  EXPECT_EQ(u.scheme, "rtmp");
  EXPECT_EQ(u.host, "example.com");
  EXPECT_EQ(u.port, 1935);
  EXPECT_EQ(u.app, "live");
  EXPECT_EQ(u.stream, "stream");
  EXPECT_EQ(u.query, "");
  EXPECT_FALSE(u.tls());
  EXPECT_EQ(u.tc_url(), "rtmp://example.com/live");
  EXPECT_EQ(u.stream_with_query(), "stream");
  EXPECT_EQ(u.key(), "live/stream");
  EXPECT_EQ(u.to_string(), "rtmp://example.com/live/stream");
}

TEST(Url, PortAndDefaults) {
  Url u = ok("rtmp://127.0.0.1:19350/app/s");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 19350);
  EXPECT_EQ(u.tc_url(), "rtmp://127.0.0.1:19350/app");

  // Explicit default port: not repeated in tcUrl.
  u = ok("rtmp://h:1935/app/s");
  EXPECT_EQ(u.port, 1935);
  EXPECT_EQ(u.tc_url(), "rtmp://h/app");

  u = ok("rtmps://h/app/s");
  EXPECT_TRUE(u.tls());
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.tc_url(), "rtmps://h/app");

  u = ok("rtmps://h:1935/app/s");
  EXPECT_EQ(u.port, 1935);
  EXPECT_EQ(u.tc_url(), "rtmps://h:1935/app");

  u = ok("rtmp://h:443/app");
  EXPECT_EQ(u.tc_url(), "rtmp://h:443/app");

  u = ok("rtmp://h:65535/a");
  EXPECT_EQ(u.port, 65535);
  u = ok("rtmp://h:1/a");
  EXPECT_EQ(u.port, 1);
}

TEST(Url, SchemeCaseInsensitive) {
  Url u = ok("RTMP://Host/App/Key");
  EXPECT_EQ(u.scheme, "rtmp");
  EXPECT_EQ(u.host, "Host");  // host and path keep their case
  EXPECT_EQ(u.app, "App");
  EXPECT_EQ(u.stream, "Key");
  u = ok("RtMpS://h/a");
  EXPECT_EQ(u.scheme, "rtmps");
  EXPECT_EQ(u.port, 443);
}

TEST(Url, IPv6) {
  Url u = ok("rtmp://[::1]:1936/live/x");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 1936);
  EXPECT_EQ(u.tc_url(), "rtmp://[::1]:1936/live");
  EXPECT_EQ(u.to_string(), "rtmp://[::1]:1936/live/x");

  u = ok("rtmp://[2001:db8::1]/live");
  EXPECT_EQ(u.host, "2001:db8::1");
  EXPECT_EQ(u.port, 1935);
  EXPECT_EQ(u.tc_url(), "rtmp://[2001:db8::1]/live");

  EXPECT_NE(bad("rtmp://::1/live/x").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://[::1/live/x").find("IPv6"), std::string::npos);
  EXPECT_NE(bad("rtmp://[]/live/x").find("host"), std::string::npos);
  EXPECT_NE(bad("rtmp://[not-an-ip]/live/x").find("IPv6"), std::string::npos);
  EXPECT_NE(bad("rtmp://[127.0.0.1]/live/x").find("IPv6"), std::string::npos);
  EXPECT_NE(bad("rtmp://[::1]x/live/x").find("IPv6"), std::string::npos);
  EXPECT_NE(bad("rtmp://[::1]:/live/x").find("port"), std::string::npos);
}

TEST(Url, StreamWithSlashesAndQuery) {
  Url u = ok("rtmp://h/live/a/b/c");
  EXPECT_EQ(u.app, "live");
  EXPECT_EQ(u.stream, "a/b/c");
  EXPECT_EQ(u.key(), "live/a/b/c");

  u = ok("rtmp://h/live/key?token=abc&x=1");
  EXPECT_EQ(u.stream, "key");
  EXPECT_EQ(u.query, "token=abc&x=1");
  EXPECT_EQ(u.stream_with_query(), "key?token=abc&x=1");
  EXPECT_EQ(u.to_string(), "rtmp://h/live/key?token=abc&x=1");
  EXPECT_EQ(u.tc_url(), "rtmp://h/live");

  // A '?' inside the query stays there; '/' after '?' belongs to the query.
  u = ok("rtmp://h/live/key?a=1?b=/c");
  EXPECT_EQ(u.stream, "key");
  EXPECT_EQ(u.query, "a=1?b=/c");

  // An empty query.
  u = ok("rtmp://h/live/key?");
  EXPECT_EQ(u.stream, "key");
  EXPECT_EQ(u.query, "");
  EXPECT_EQ(u.stream_with_query(), "key");
}

TEST(Url, NoStream) {
  Url u = ok("rtmp://h/live");
  EXPECT_EQ(u.app, "live");
  EXPECT_EQ(u.stream, "");
  EXPECT_EQ(u.to_string(), "rtmp://h/live");

  u = ok("rtmp://h/live/");
  EXPECT_EQ(u.app, "live");
  EXPECT_EQ(u.stream, "");

  u = ok("rtmp://h:2000/live?x=1");
  EXPECT_EQ(u.app, "live");
  EXPECT_EQ(u.stream, "");
  EXPECT_EQ(u.query, "x=1");
  EXPECT_EQ(u.to_string(), "rtmp://h:2000/live?x=1");
}

TEST(Url, RoundTrip) {
  for (const char* s : {"rtmp://h/live/s", "rtmps://h:8443/app/a/b?c=d", "rtmp://[::1]:1/x/y",
                        "rtmp://10.0.0.1/app", "rtmps://host.example/app/k"}) {
    Url u = ok(s);
    EXPECT_EQ(u.to_string(), s);
    Url v = ok(u.to_string().c_str());
    EXPECT_EQ(v.host, u.host);
    EXPECT_EQ(v.port, u.port);
    EXPECT_EQ(v.app, u.app);
    EXPECT_EQ(v.stream, u.stream);
    EXPECT_EQ(v.query, u.query);
  }
}

TEST(Url, OverwritesOutput) {
  Url u = ok("rtmp://h/live/s?q=1");
  ASSERT_TRUE(parse_url("rtmp://g:99/app", u, nullptr));
  EXPECT_EQ(u.host, "g");
  EXPECT_EQ(u.port, 99);
  EXPECT_EQ(u.stream, "");
  EXPECT_EQ(u.query, "");
}

TEST(Url, FailureLeavesOutputUntouched) {
  Url u = ok("rtmp://h/live/s");
  EXPECT_FALSE(parse_url("rtmp://h:0/x/y", u, nullptr));
  EXPECT_EQ(u.host, "h");
  EXPECT_EQ(u.app, "live");
}

TEST(Url, Errors) {
  EXPECT_NE(bad("").find("empty"), std::string::npos);
  EXPECT_NE(bad("example.com/live/s").find("scheme"), std::string::npos);
  EXPECT_NE(bad("http://h/live/s").find("scheme"), std::string::npos);
  EXPECT_NE(bad("rtmpe://h/live/s").find("scheme"), std::string::npos);
  EXPECT_NE(bad("rtmpt://h/live/s").find("scheme"), std::string::npos);
  EXPECT_NE(bad("://h/live/s").find("scheme"), std::string::npos);
  EXPECT_NE(bad("rtmp:/h/live/s").find("scheme"), std::string::npos);

  EXPECT_NE(bad("rtmp:///live/s").find("host"), std::string::npos);
  EXPECT_NE(bad("rtmp://:1935/live/s").find("host"), std::string::npos);
  EXPECT_NE(bad("rtmp://").find("host"), std::string::npos);

  EXPECT_NE(bad("rtmp://h:/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:0/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:65536/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:99999999/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:12a/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:-1/live/s").find("port"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:+80/live/s").find("port"), std::string::npos);

  EXPECT_NE(bad("rtmp://h").find("app"), std::string::npos);
  EXPECT_NE(bad("rtmp://h/").find("app"), std::string::npos);
  EXPECT_NE(bad("rtmp://h//stream").find("app"), std::string::npos);
  EXPECT_NE(bad("rtmp://h:1935").find("app"), std::string::npos);
  EXPECT_NE(bad("rtmp://h?x=1").find("app"), std::string::npos);
  EXPECT_NE(bad("rtmp://h/?x=1").find("app"), std::string::npos);

  EXPECT_NE(bad("rtmp://user:pw@h/live/s").find("credentials"), std::string::npos);
  EXPECT_NE(bad("rtmp://h/live/my stream").find("whitespace"), std::string::npos);
  EXPECT_NE(bad("rtmp://h/live/s\n").find("whitespace"), std::string::npos);
}

TEST(Url, ErrorMessageQuotesTheUrl) {
  std::string m = bad("rtmp://h:bad/live");
  EXPECT_NE(m.find("rtmp://h:bad/live"), std::string::npos) << m;
}
