#include "options.h"

#include "grtmp/auth.h"
#include "grtmp/url.h"

#include <glib.h>
#include <gst/gst.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#ifndef GRTMP_VERSION
#define GRTMP_VERSION "dev"
#endif

namespace grtmp::launcher {
namespace {

enum class Kind { String, Bool, Uint, Duration, List };

struct Flag {
  const char* name;
  Kind kind;
  const char* value_name;  // for the usage text
  const char* help;
  std::function<std::string(const Options&)> default_text;
  // Stores a value; returns false with an error message.
  std::function<bool(Options&, const std::string&, std::string&)> set;
};

bool parse_bool(const std::string& s, bool& out) {
  std::string v = s;
  for (auto& c : v) c = g_ascii_tolower(c);
  if (v == "1" || v == "t" || v == "true" || v == "yes" || v == "on") {
    out = true;
    return true;
  }
  if (v == "0" || v == "f" || v == "false" || v == "no" || v == "off") {
    out = false;
    return true;
  }
  return false;
}

bool parse_uint(const std::string& s, uint64_t max, uint64_t& out, std::string& err) {
  if (s.empty()) {
    err = "empty number";
    return false;
  }
  guint64 v = 0;
  GError* e = nullptr;
  if (!g_ascii_string_to_unsigned(s.c_str(), 10, 0, max, &v, &e)) {
    err = e ? e->message : "bad number";
    g_clear_error(&e);
    return false;
  }
  out = v;
  return true;
}

template <typename T>
std::function<bool(Options&, const std::string&, std::string&)> set_uint(T Options::*field, uint64_t min,
                                                                        uint64_t max) {
  return [field, min, max](Options& o, const std::string& v, std::string& err) {
    uint64_t n;
    if (!parse_uint(v, max, n, err)) return false;
    if (n < min) {
      err = "must be at least " + std::to_string(min);
      return false;
    }
    o.*field = static_cast<T>(n);
    return true;
  };
}

std::function<bool(Options&, const std::string&, std::string&)> set_duration(uint32_t Options::*field) {
  return [field](Options& o, const std::string& v, std::string& err) {
    return parse_duration_ms(v, o.*field, err);
  };
}

std::function<bool(Options&, const std::string&, std::string&)> set_bool(bool Options::*field) {
  return [field](Options& o, const std::string& v, std::string& err) {
    if (!parse_bool(v, o.*field)) {
      err = "expected true or false";
      return false;
    }
    return true;
  };
}

std::function<bool(Options&, const std::string&, std::string&)> set_file(std::string Options::*field) {
  return [field](Options& o, const std::string& v, std::string& err) {
    if (v.empty()) {
      err = "empty file name";
      return false;
    }
    o.*field = v;
    return true;
  };
}

// An HTTP callback URL: http:// or https:// with a host.
std::function<bool(Options&, const std::string&, std::string&)> set_callback(std::string Options::*field) {
  return [field](Options& o, const std::string& v, std::string& err) {
    if (v.empty()) {  // "-on-publish ''" switches the callback off
      (o.*field).clear();
      return true;
    }
    GError* e = nullptr;
    GUri* uri = g_uri_parse(v.c_str(), G_URI_FLAGS_NONE, &e);
    if (!uri) {
      err = std::string("expected http://host[:port]/path: ") + (e ? e->message : "bad URL");
      g_clear_error(&e);
      return false;
    }
    std::string scheme = g_uri_get_scheme(uri) ? g_uri_get_scheme(uri) : "";
    const char* host = g_uri_get_host(uri);
    bool ok = (g_ascii_strcasecmp(scheme.c_str(), "http") == 0 || g_ascii_strcasecmp(scheme.c_str(), "https") == 0) &&
              host && *host;
    g_uri_unref(uri);
    if (!ok) {
      err = "expected http://host[:port]/path or https://...";
      return false;
    }
    o.*field = v;
    return true;
  };
}

// -allow-publish / -deny-play ...: one IpRulesAuthorizer rule, checked now
// so that a bad address is a command-line error (exit 2).
std::function<bool(Options&, const std::string&, std::string&)> add_ip_rule(const char* verb, const char* action) {
  return [verb, action](Options& o, const std::string& v, std::string& err) {
    std::string addr = v;
    if (g_ascii_strcasecmp(addr.c_str(), "all") == 0) addr = "all";
    if (addr.empty() || addr.find_first_of(" \t") != std::string::npos) {
      err = "expected an address, ADDR/BITS or all";
      return false;
    }
    std::string rule = std::string(verb) + " " + action + " " + addr;
    grtmp::IpRulesAuthorizer scratch;
    GError* e = nullptr;
    if (!scratch.add_rule(rule, &e)) {
      err = std::string("expected an address, ADDR/BITS or all: ") + (e ? e->message : "bad address");
      g_clear_error(&e);
      return false;
    }
    o.ip_rules.push_back(rule);
    return true;
  };
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"listen", Kind::String, "host:port", "RTMP listen address and port (localhost means 127.0.0.1, :port all interfaces)",
       [](const Options& o) { return o.listen; },
       [](Options& o, const std::string& v, std::string& err) {
         o.listen = v;
         return split_host_port(v, 1935, o.listen_host, o.listen_port, err);
       }},
      {"log-level", Kind::String, "level", "log verbosity: debug, info, warn, error",
       [](const Options& o) { return o.log_level; },
       [](Options& o, const std::string& v, std::string& err) {
         grtmp::log::Level l;
         std::string lv = v;
         for (auto& c : lv) c = g_ascii_tolower(c);
         if ((lv != "debug" && lv != "info" && lv != "warn" && lv != "error") ||
             !grtmp::log::parse_level(lv, l)) {
           err = "expected debug, info, warn or error";
           return false;
         }
         o.log_level = lv;
         o.level = l;
         return true;
       }},
      {"record-all", Kind::Bool, "", "record every published stream to an FLV file in -record-dir",
       [](const Options& o) { return std::string(o.record_all ? "true" : "false"); }, set_bool(&Options::record_all)},
      {"record-dir", Kind::String, "dir", "directory for recordings (created if missing)",
       [](const Options& o) { return o.record_dir; },
       [](Options& o, const std::string& v, std::string& err) {
         if (v.empty()) {
           err = "empty directory";
           return false;
         }
         o.record_dir = v;
         return true;
       }},
      {"relay-to", Kind::List, "url",
       "relay every published stream to rtmp://host[:port]/app (stream name appended; repeatable)",
       [](const Options&) { return std::string(); },
       [](Options& o, const std::string& v, std::string& err) {
         grtmp::Url url;
         GError* e = nullptr;
         if (!grtmp::parse_url(v, url, &e)) {
           err = std::string("expected rtmp://host[:port]/app[/stream]: ") + (e ? e->message : "bad URL");
           g_clear_error(&e);
           return false;
         }
         if (url.app.empty()) {
           err = "the URL needs an application: rtmp://host[:port]/app";
           return false;
         }
         o.relay_to.push_back(v);
         return true;
       }},
      {"chunk-size", Kind::Uint, "bytes", "outbound RTMP chunk size announced to every peer (128..65536)",
       [](const Options& o) { return std::to_string(o.chunk_size); }, set_uint(&Options::chunk_size, 128, 65536)},
      {"metrics-addr", Kind::String, "host:port", "serve GET /stats (JSON) and /metrics (Prometheus) here; empty = off",
       [](const Options& o) { return o.metrics_addr; },
       [](Options& o, const std::string& v, std::string& err) {
         if (!v.empty()) {
           std::string h;
           uint16_t p;
           if (!split_host_port(v, 0, h, p, err)) return false;
         }
         o.metrics_addr = v;
         return true;
       }},
      {"gop-cache", Kind::Bool, "", "keep the last GOP for instant start of late players",
       [](const Options& o) { return std::string(o.gop_cache ? "true" : "false"); }, set_bool(&Options::gop_cache)},
      {"handshake-timeout", Kind::Duration, "duration", "time allowed from TCP accept to handshake done (0 = none)",
       [](const Options& o) { return format_duration_ms(o.handshake_timeout_ms); },
       set_duration(&Options::handshake_timeout_ms)},
      {"idle-timeout", Kind::Duration, "duration", "close a connection that sent nothing for this long (0 = never)",
       [](const Options& o) { return format_duration_ms(o.idle_timeout_ms); }, set_duration(&Options::idle_timeout_ms)},
      {"publisher-timeout", Kind::Duration, "duration", "drop a publisher that sends no media for this long (0 = never)",
       [](const Options& o) { return format_duration_ms(o.publisher_timeout_ms); },
       set_duration(&Options::publisher_timeout_ms)},
      {"max-lag", Kind::Duration, "duration",
       "close a player that stays behind live this long (its queue never drains; 0 = never)",
       [](const Options& o) { return format_duration_ms(o.max_lag_ms); }, set_duration(&Options::max_lag_ms)},
      {"max-connections", Kind::Uint, "n", "refuse connections beyond this many",
       [](const Options& o) { return std::to_string(o.max_connections); },
       set_uint(&Options::max_connections, 1, G_MAXUINT32)},
      {"max-message-size", Kind::Uint, "bytes", "close connections announcing a larger RTMP message",
       [](const Options& o) { return std::to_string(o.max_message_size); },
       set_uint(&Options::max_message_size, 1024, G_MAXUINT32)},
      {"tls-listen", Kind::String, "host:port",
       "also accept RTMPS (RTMP over TLS 1.2+) here; needs -tls-cert and -tls-key; port 0 picks a free port",
       [](const Options& o) { return o.tls_listen; },
       [](Options& o, const std::string& v, std::string& err) {
         if (v.empty()) {
           o.tls_listen.clear();
           return true;
         }
         o.tls_listen = v;
         return split_host_port(v, 1936, o.tls_listen_host, o.tls_listen_port, err);
       }},
      {"tls-cert", Kind::String, "file", "PEM certificate (chain) for -tls-listen",
       [](const Options& o) { return o.tls_cert; }, set_file(&Options::tls_cert)},
      {"tls-key", Kind::String, "file", "PEM private key for -tls-listen",
       [](const Options& o) { return o.tls_key; }, set_file(&Options::tls_key)},
      {"auth-tokens", Kind::String, "file",
       "token file (\"publish|play app/name TOKEN\" per line; clients add ?token=...); reloaded on SIGHUP",
       [](const Options& o) { return o.auth_tokens; }, set_file(&Options::auth_tokens)},
      {"on-connect", Kind::String, "url", "HTTP callback (POST) on connect; 2xx allows, anything else refuses",
       [](const Options& o) { return o.on_connect; }, set_callback(&Options::on_connect)},
      {"on-publish", Kind::String, "url",
       "HTTP callback (POST) on publish; 2xx allows, 3xx with Location renames, anything else refuses",
       [](const Options& o) { return o.on_publish; }, set_callback(&Options::on_publish)},
      {"on-play", Kind::String, "url",
       "HTTP callback (POST) on play; 2xx allows, 3xx with Location renames, anything else refuses",
       [](const Options& o) { return o.on_play; }, set_callback(&Options::on_play)},
      {"on-done", Kind::String, "url", "HTTP notification (POST) when a publisher or player leaves",
       [](const Options& o) { return o.on_done; }, set_callback(&Options::on_done)},
      {"auth-timeout", Kind::Duration, "duration",
       "time an HTTP callback may take; past it the request is refused",
       [](const Options& o) { return format_duration_ms(o.auth_timeout_ms); },
       [](Options& o, const std::string& v, std::string& err) {
         uint32_t ms;
         if (!parse_duration_ms(v, ms, err)) return false;
         if (ms == 0) {
           err = "must be more than 0";
           return false;
         }
         o.auth_timeout_ms = ms;
         return true;
       }},
      {"allow-publish", Kind::List, "addr", "allow publishing from ADDR, ADDR/BITS or all (repeatable; first match wins)",
       [](const Options&) { return std::string(); }, add_ip_rule("allow", "publish")},
      {"deny-publish", Kind::List, "addr", "refuse publishing from ADDR, ADDR/BITS or all (repeatable)",
       [](const Options&) { return std::string(); }, add_ip_rule("deny", "publish")},
      {"allow-play", Kind::List, "addr", "allow playing from ADDR, ADDR/BITS or all (repeatable)",
       [](const Options&) { return std::string(); }, add_ip_rule("allow", "play")},
      {"deny-play", Kind::List, "addr", "refuse playing from ADDR, ADDR/BITS or all (repeatable)",
       [](const Options&) { return std::string(); }, add_ip_rule("deny", "play")},
      {"max-connections-per-ip", Kind::Uint, "n", "connections from one IP address beyond this are closed at accept (0 = unlimited)",
       [](const Options& o) { return std::to_string(o.max_connections_per_ip); },
       set_uint(&Options::max_connections_per_ip, 0, G_MAXUINT32)},
      {"max-streams", Kind::Uint, "n", "refuse publishing beyond this many live streams (0 = unlimited)",
       [](const Options& o) { return std::to_string(o.max_streams); }, set_uint(&Options::max_streams, 0, G_MAXUINT32)},
      {"max-players", Kind::Uint, "n", "refuse players beyond this many per stream (0 = unlimited)",
       [](const Options& o) { return std::to_string(o.max_players); }, set_uint(&Options::max_players, 0, G_MAXUINT32)},
      {"version", Kind::Bool, "", "print the version and exit",
       [](const Options&) { return std::string("false"); }, set_bool(&Options::version)},
      {"help", Kind::Bool, "", "print this help and exit",
       [](const Options&) { return std::string("false"); }, set_bool(&Options::help)},
  };
  return table;
}

const Flag* find_flag(const std::string& name) {
  for (auto& f : flags())
    if (name == f.name) return &f;
  if (name == "h") return find_flag("help");
  return nullptr;
}

bool is_bool_literal(const char* s) {
  bool b;
  return parse_bool(s, b);
}

}  // namespace

std::string version_string() { return GRTMP_VERSION; }

bool split_host_port(const std::string& s, uint16_t default_port, std::string& host, uint16_t& port,
                     std::string& error) {
  std::string h, p;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) {
      error = "missing ']' in address";
      return false;
    }
    h = s.substr(1, close - 1);
    std::string rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        error = "expected :port after ]";
        return false;
      }
      p = rest.substr(1);
    }
  } else {
    auto colon = s.rfind(':');
    if (colon != std::string::npos && s.find(':') != colon) {
      // A bare IPv6 address without brackets: no port.
      h = s;
    } else if (colon != std::string::npos) {
      h = s.substr(0, colon);
      p = s.substr(colon + 1);
    } else {
      h = s;
    }
  }
  if (h.empty()) h = "0.0.0.0";
  if (g_ascii_strcasecmp(h.c_str(), "localhost") == 0) h = "127.0.0.1";
  if (p.empty()) {
    if (s.find(':') != std::string::npos && s.back() == ':') {
      error = "missing port after ':'";
      return false;
    }
    port = default_port;
  } else {
    uint64_t n;
    std::string e;
    if (!parse_uint(p, 65535, n, e)) {
      error = "bad port \"" + p + "\"";
      return false;
    }
    port = static_cast<uint16_t>(n);
  }
  host = h;
  return true;
}

bool parse_duration_ms(const std::string& s, uint32_t& out_ms, std::string& error) {
  if (s.empty()) {
    error = "empty duration";
    return false;
  }
  // Plain number: seconds.
  {
    char* end = nullptr;
    double v = g_ascii_strtod(s.c_str(), &end);
    if (end && *end == '\0' && end != s.c_str()) {
      if (!(v >= 0) || v * 1000.0 > G_MAXUINT32) {
        error = "duration out of range";
        return false;
      }
      out_ms = static_cast<uint32_t>(std::llround(v * 1000.0));
      return true;
    }
  }
  double total_ms = 0;
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (g_ascii_isdigit(s[i]) || s[i] == '.')) i++;
    if (start == i) {
      error = "invalid duration \"" + s + "\" (use 10s, 500ms, 1m30s or seconds)";
      return false;
    }
    double v = g_ascii_strtod(s.substr(start, i - start).c_str(), nullptr);
    size_t ustart = i;
    while (i < s.size() && !g_ascii_isdigit(s[i]) && s[i] != '.') i++;
    std::string unit = s.substr(ustart, i - ustart);
    double mult;
    if (unit == "h") mult = 3600e3;
    else if (unit == "m") mult = 60e3;
    else if (unit == "s") mult = 1e3;
    else if (unit == "ms") mult = 1;
    else if (unit == "us" || unit == "\xC2\xB5s") mult = 1e-3;
    else if (unit == "ns") mult = 1e-6;
    else {
      error = "unknown unit \"" + unit + "\" in duration \"" + s + "\"";
      return false;
    }
    total_ms += v * mult;
    any = true;
  }
  if (!any || total_ms > G_MAXUINT32) {
    error = "duration out of range";
    return false;
  }
  out_ms = static_cast<uint32_t>(std::llround(total_ms));
  return true;
}

std::string format_duration_ms(uint32_t ms) {
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) {
    if (ms < 1000) return std::to_string(ms) + "ms";
    char buf[32];
    g_snprintf(buf, sizeof buf, "%.3gs", ms / 1000.0);
    return buf;
  }
  uint32_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  uint32_t m = s / 60;
  s %= 60;
  if (m < 60) return std::to_string(m) + "m" + std::to_string(s) + "s";
  return std::to_string(m / 60) + "h" + std::to_string(m % 60) + "m" + std::to_string(s) + "s";
}

std::string usage_text(const char* prog) {
  Options defaults;
  std::string u = "Usage of ";
  u += prog;
  u += ":\n";
  u += "  RTMP server: publishers and players connect to -listen; streams can be recorded and relayed.\n";
  u += "  Flags take one or two dashes, and \"-flag value\" or \"-flag=value\".\n\n";
  for (auto& f : flags()) {
    u += "  -";
    u += f.name;
    if (f.kind != Kind::Bool) {
      u += " ";
      u += f.value_name;
    } else if (std::string(f.name) != "version" && std::string(f.name) != "help") {
      u += " [true|false]";
    }
    u += "\n    \t";
    u += f.help;
    std::string d = f.default_text(defaults);
    if (f.kind == Kind::List) {
      u += " (default: none)";
    } else if (std::string(f.name) == "version" || std::string(f.name) == "help") {
    } else if (f.kind == Kind::String) {
      u += " (default \"" + d + "\")";
    } else {
      u += " (default " + d + ")";
    }
    u += "\n";
  }
  u += "\n  Durations: 10s, 500ms, 1m30s, or a plain number of seconds.\n";
  u += "  Example: ";
  u += prog;
  u += " -listen localhost:1935 -log-level info -record-all true -record-dir ./recordings\n";
  return u;
}

ParseResult parse_options(int argc, char** argv, Options& out) {
  const char* prog = argc > 0 ? argv[0] : "gst-rtmp-server";
  if (const char* slash = strrchr(prog, '/')) prog = slash + 1;
  auto fail = [&](const std::string& msg) {
    fprintf(stderr, "%s\n%s", msg.c_str(), usage_text(prog).c_str());
    return ParseResult::Exit2;
  };
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) return fail(std::string("unexpected argument: ") + argv[i + 1]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') return fail("unexpected argument: " + arg);
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* f = find_flag(name);
    if (!f || name.empty()) return fail("flag provided but not defined: -" + name);
    if (!has_value) {
      if (f->kind == Kind::Bool) {
        // Bare boolean flag, or followed by true/false.
        if (i + 1 < argc && is_bool_literal(argv[i + 1])) {
          value = argv[++i];
        } else {
          value = "true";
        }
      } else {
        if (i + 1 >= argc) return fail("flag needs an argument: -" + name);
        value = argv[++i];
      }
    }
    std::string err;
    if (!f->set(out, value, err))
      return fail("invalid value \"" + value + "\" for flag -" + name + ": " + err);
  }
  if (!out.help && !out.version) {
    if (!out.tls_listen.empty() && (out.tls_cert.empty() || out.tls_key.empty()))
      return fail("-tls-listen needs -tls-cert and -tls-key");
    if (out.tls_listen.empty() && (!out.tls_cert.empty() || !out.tls_key.empty()))
      return fail("-tls-cert and -tls-key need -tls-listen");
    if (!out.tls_listen.empty() && out.tls_listen_port != 0 && out.tls_listen_port == out.listen_port &&
        (out.tls_listen_host == out.listen_host || out.tls_listen_host == "0.0.0.0" || out.listen_host == "0.0.0.0"))
      return fail("-tls-listen and -listen use the same port");
  }
  if (out.help) {
    fputs(usage_text(prog).c_str(), stdout);
    return ParseResult::Exit0;
  }
  if (out.version) {
    guint maj, min, mic, nano;
    gst_version(&maj, &min, &mic, &nano);
    printf("gst-rtmp-server version %s (GStreamer %u.%u.%u)\n", version_string().c_str(), maj, min, mic);
    return ParseResult::Exit0;
  }
  return ParseResult::Ok;
}

}  // namespace grtmp::launcher
