#include "grtmp/auth.h"

#include <gio/gio.h>

#include <sstream>

#include "grtmp/error.h"
#include "grtmp/log.h"

namespace grtmp {

bool secure_equals(const std::string& a, const std::string& b) {
  // Length differences are not secret (tokens have public formats), but
  // the content comparison touches every byte either way.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::string query_value(const std::string& query, const std::string& name) {
  gchar** parts = g_strsplit(query.c_str(), "&", -1);
  std::string out;
  for (gchar** p = parts; *p; p++) {
    const char* eq = strchr(*p, '=');
    std::string k = eq ? std::string(*p, eq - *p) : std::string(*p);
    if (k != name) continue;
    if (eq) {
      gchar* v = g_uri_unescape_string(eq + 1, nullptr);
      out = v ? v : "";
      g_free(v);
    }
    break;
  }
  g_strfreev(parts);
  return out;
}

static const char* action_name(AuthRequest::Action a) {
  switch (a) {
    case AuthRequest::Action::Connect: return "connect";
    case AuthRequest::Action::Publish: return "publish";
    case AuthRequest::Action::Play: return "play";
    case AuthRequest::Action::Done: return "done";
  }
  return "?";
}

// ---- TokenAuthorizer ----

bool TokenAuthorizer::load(const std::string& path, GError** error) {
  gchar* text = nullptr;
  if (!g_file_get_contents(path.c_str(), &text, nullptr, error)) return false;
  std::vector<Rule> rules;
  std::istringstream in(text);
  g_free(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string action, key, token, extra;
    if (!(ls >> action)) continue;
    if (!(ls >> key >> token) || (ls >> extra) || (action != "publish" && action != "play") ||
        key.find('/') == std::string::npos) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                  "%s:%d: expected \"publish|play APP/NAME TOKEN\"", path.c_str(), lineno);
      return false;
    }
    auto slash = key.find('/');
    rules.push_back({action, key.substr(0, slash), key.substr(slash + 1), token});
  }
  std::lock_guard lock(mutex_);
  path_ = path;
  rules_ = std::move(rules);
  return true;
}

bool TokenAuthorizer::reload(GError** error) {
  std::string path;
  {
    std::lock_guard lock(mutex_);
    path = path_;
  }
  return load(path, error);
}

size_t TokenAuthorizer::rule_count() const {
  std::lock_guard lock(mutex_);
  return rules_.size();
}

void TokenAuthorizer::authorize(const AuthRequest& r, Done done) {
  if (r.action != AuthRequest::Action::Publish && r.action != AuthRequest::Action::Play) {
    done({true, "", ""});
    return;
  }
  std::string given = query_value(r.query, "token");
  bool any_rule = false, match = false;
  {
    std::lock_guard lock(mutex_);
    for (auto& rule : rules_) {
      if (rule.action != action_name(r.action) || rule.app != r.app) continue;
      if (rule.name != "*" && rule.name != r.name) continue;
      any_rule = true;
      // Compare against every rule (no early exit) so timing does not tell
      // how many rules there are before the matching one.
      if (secure_equals(given, rule.token)) match = true;
    }
  }
  if (!any_rule || match) done({true, "", ""});
  else done({false, given.empty() ? "token required" : "invalid token", ""});
}

// ---- IpRulesAuthorizer ----

bool IpRulesAuthorizer::add_rule(const std::string& line, GError** error) {
  std::istringstream ls(line);
  std::string verb, action, addr;
  if (!(ls >> verb >> action >> addr) || (verb != "allow" && verb != "deny") ||
      (action != "publish" && action != "play")) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "bad IP rule \"%s\": expected allow|deny publish|play ADDR[/BITS]|all",
                line.c_str());
    return false;
  }
  Rule r{verb == "allow", action, {}, 0, addr == "all"};
  if (!r.all) {
    GInetAddressMask* mask = g_inet_address_mask_new_from_string(addr.c_str(), error);
    if (!mask) return false;
    GInetAddress* a = g_inet_address_mask_get_address(mask);
    const guint8* bytes = g_inet_address_to_bytes(a);
    r.net.assign(bytes, bytes + g_inet_address_get_native_size(a));
    r.bits = static_cast<int>(g_inet_address_mask_get_length(mask));
    g_object_unref(mask);
  }
  rules_.push_back(std::move(r));
  return true;
}

void IpRulesAuthorizer::authorize(const AuthRequest& r, Done done) {
  if (r.action != AuthRequest::Action::Publish && r.action != AuthRequest::Action::Play) {
    done({true, "", ""});
    return;
  }
  std::string ip = r.remote_ip;
  if (ip.size() > 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  GInetAddress* addr = g_inet_address_new_from_string(ip.c_str());
  for (auto& rule : rules_) {
    if (rule.action != action_name(r.action)) continue;
    bool matches = rule.all;
    if (!matches && addr && g_inet_address_get_native_size(addr) == rule.net.size()) {
      const guint8* b = g_inet_address_to_bytes(addr);
      matches = true;
      for (int bit = 0; bit < rule.bits; bit++) {
        int byte = bit / 8, shift = 7 - bit % 8;
        if (((b[byte] >> shift) & 1) != ((rule.net[byte] >> shift) & 1)) {
          matches = false;
          break;
        }
      }
    }
    if (matches) {
      if (addr) g_object_unref(addr);
      done({rule.allow, rule.allow ? "" : "address not allowed", ""});
      return;
    }
  }
  if (addr) g_object_unref(addr);
  done({true, "", ""});
}

// ---- ChainAuthorizer ----

void ChainAuthorizer::authorize(const AuthRequest& request, Done done) { step(0, request, std::move(done)); }

void ChainAuthorizer::step(size_t i, AuthRequest request, Done done) {
  if (i >= chain_.size()) {
    done({true, "", request.name});
    return;
  }
  auto next = [this, i, request, done](AuthDecision d) mutable {
    if (request.action == AuthRequest::Action::Done) {
      step(i + 1, request, done);
      return;
    }
    if (!d.allow) {
      done(d);
      return;
    }
    if (!d.rename.empty()) request.name = d.rename;
    step(i + 1, request, done);
  };
  chain_[i]->authorize(request, next);
}

}  // namespace grtmp
