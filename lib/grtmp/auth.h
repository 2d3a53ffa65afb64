// Authorization of connect, publish and play, and the access rules the
// library ships: static tokens from a file and IP allow/deny lists.
//
// An Authorizer answers asynchronously (an HTTP callback may take a
// while): the session holds the request, buffers what the client sends
// meanwhile, and resumes when `done` is called (from any thread).
#pragma once

#include <glib.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace grtmp {

struct AuthRequest {
  enum class Action { Connect, Publish, Play, Done };
  Action action = Action::Publish;
  std::string app;
  std::string name;      // stream name without the query
  std::string query;     // "token=...&..." without '?'
  std::string tc_url;
  std::string remote_ip; // without port
  std::string conn_id;
  std::string key() const { return app + "/" + name; }
};

struct AuthDecision {
  bool allow = false;
  std::string reason;     // logged and sent in the onStatus description
  std::string rename;     // non-empty: use this stream name instead (redirect)
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  using Done = std::function<void(AuthDecision)>;
  // Called on the connection's loop thread; `done` must be called exactly
  // once, on any thread. Action::Done is a notification (publish/play
  // ended): `done` is still called, its decision ignored.
  virtual void authorize(const AuthRequest& request, Done done) = 0;
};

// Constant-time comparison (no early exit on the first differing byte).
bool secure_equals(const std::string& a, const std::string& b);

// Value of `name` in a URL query string ("a=1&token=x"), percent-decoded.
std::string query_value(const std::string& query, const std::string& name);

// Tokens per stream key from a text file, one rule per line:
//   publish live/cam s3cret
//   play    live/*   viewer-token
//   # comments and blank lines ignored; "*" as the name matches any stream of the app
// A request carries its token as ?token=... on the stream name. Actions
// without any rule for their key are allowed (rules opt keys in).
class TokenAuthorizer : public Authorizer {
 public:
  // Loads the file; false + error (with the line number) when it cannot.
  bool load(const std::string& path, GError** error);
  bool reload(GError** error);  // same path (SIGHUP)
  void authorize(const AuthRequest& request, Done done) override;
  size_t rule_count() const;

 private:
  struct Rule { std::string action, app, name, token; };
  mutable std::mutex mutex_;
  std::string path_;
  std::vector<Rule> rules_;
};

// IP rules, nginx-rtmp style, evaluated in order, first match wins:
//   allow publish 127.0.0.1
//   deny  publish all
//   allow play    10.0.0.0/8
// Unmatched requests are allowed.
class IpRulesAuthorizer : public Authorizer {
 public:
  bool add_rule(const std::string& line, GError** error);  // "allow|deny publish|play ADDR[/BITS]|all"
  void authorize(const AuthRequest& request, Done done) override;

 private:
  struct Rule { bool allow; std::string action; std::vector<uint8_t> net; int bits; bool all; };
  std::vector<Rule> rules_;
};

// Asks each authorizer in turn; the first denial wins.
class ChainAuthorizer : public Authorizer {
 public:
  void add(std::shared_ptr<Authorizer> a) { chain_.push_back(std::move(a)); }
  bool empty() const { return chain_.empty(); }
  void authorize(const AuthRequest& request, Done done) override;

 private:
  void step(size_t i, AuthRequest request, Done done);
  std::vector<std::shared_ptr<Authorizer>> chain_;
};

}  // namespace grtmp
