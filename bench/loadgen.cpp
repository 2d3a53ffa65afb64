// grtmp-loadgen: a lean RTMP load generator (one thread, one epoll set).
//
// K publishers loop an FLV file in real time (timestamps rebased on every
// loop so they keep increasing) and N players, connecting at a controlled
// rate, each do handshake / connect / createStream / play and parse the
// chunk stream with the library's ChunkReader (Set Chunk Size honoured),
// answer the server's Window Acknowledgement Size and pings, and count
// media messages and bytes. Players all watch publisher 0's stream.
//
// Phases: publishers start and warm up (--warmup s); the server's RSS is
// sampled ("publisher alone"); players connect at --rate per second; when
// every player has received its first video keyframe (or --join-timeout
// passed) the measured window of --duration seconds starts; after it a
// short drain lets in-flight messages arrive.
//
// Delivered bytes are counted by RTMP timestamp: the window is the range
// [ts0, ts1) of publisher 0's (rebased) timestamps sent during the window;
// "expected" is the media payload the publisher sent in that range and a
// player's "received" is the media payload it got with a timestamp in that
// range (players see the publisher's timestamps on both servers), so the
// figure does not depend on transit delay. Arrival-time counts over the
// same wall-clock window are reported too.
//
// With --server-pid the server process is measured over the window: CPU
// seconds (utime + stime from /proc/PID/stat), VmRSS sampled every 100 ms
// (peak and "publisher alone" baseline) and VmHWM.
//
// Output: one JSON object on stdout; progress on stderr.
//
//   grtmp-loadgen --port P --flv FILE [--players N] [--publishers K] [--rate R]
//                 [--duration S] [--warmup S] [--drain S] [--join-timeout S]
//                 [--app live] [--stream bench] [--server-pid PID] [--no-ack]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/chunk.h"
#include "grtmp/command.h"
#include "grtmp/control.h"
#include "grtmp/flv.h"
#include "grtmp/handshake.h"

using namespace grtmp;

namespace {

int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

struct Options {
  std::string host = "127.0.0.1";
  int port = 1935;
  std::string app = "live";
  std::string stream = "bench";
  std::string flv;
  int players = 100;
  int publishers = 1;
  double rate = 200;           // player connections started per second
  double duration = 20;        // measured window, seconds
  double warmup = 2;           // publishers alone before players connect
  double drain = 1.5;          // after the window, for in-flight messages
  double join_timeout = 15;    // after the last player started connecting
  int server_pid = 0;
  bool ack = true;
};

// ---- the FLV file, loaded once ----

struct Tag {
  Message msg;      // type 8/9/18, timestamp from the file, payload
  bool header;      // metadata or a sequence header: sent on the first loop only
};

struct Clip {
  std::vector<Tag> tags;
  uint32_t period_ms = 0;  // loop length: last timestamp + one frame
};

bool load_clip(const std::string& path, Clip& clip) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  flv::TagParser parser;
  std::vector<Message> msgs;
  GError* err = nullptr;
  if (!parser.feed(data.data(), data.size(), msgs, &err)) {
    fprintf(stderr, "loadgen: %s: %s\n", path.c_str(), err->message);
    g_error_free(err);
    return false;
  }
  uint32_t first = UINT32_MAX, last = 0, last_video = 0, prev_video = 0;
  for (auto& m : msgs) {
    Tag t;
    t.msg = m;
    const uint8_t* p = m.payload.data();
    size_t n = m.payload.size();
    if (m.type == flv::kTagScript) {
      t.header = true;
    } else if (m.type == flv::kTagVideo) {
      t.header = n >= 2 && (p[0] & 0x0f) == 7 && p[1] == 0;
      if (!t.header) { prev_video = last_video; last_video = m.timestamp; }
    } else if (m.type == flv::kTagAudio) {
      t.header = n >= 2 && (p[0] >> 4) == 10 && p[1] == 0;
    } else {
      continue;
    }
    if (!t.header) {
      first = std::min(first, m.timestamp);
      last = std::max(last, m.timestamp);
    }
    clip.tags.push_back(std::move(t));
  }
  if (clip.tags.empty() || first == UINT32_MAX) return false;
  // Rebase the file to start at 0.
  for (auto& t : clip.tags) t.msg.timestamp = t.msg.timestamp >= first ? t.msg.timestamp - first : 0;
  uint32_t frame = last_video > prev_video ? last_video - prev_video : 40;
  clip.period_ms = last - first + frame;
  return true;
}

// ---- server process sampling ----

struct ProcSample {
  double cpu_s = 0;
  uint64_t rss_kb = 0;
  uint64_t hwm_kb = 0;
};

double proc_cpu_seconds(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15; i++) {
    in >> field;
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

void proc_mem(int pid, uint64_t& rss_kb, uint64_t& hwm_kb) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::stoull(line.substr(6));
    else if (line.rfind("VmHWM:", 0) == 0) hwm_kb = std::stoull(line.substr(6));
  }
}

double self_cpu_seconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

// ---- connections ----

enum class State { TcpConnecting, Handshaking, WaitConnect, WaitCreateStream, WaitStart, Streaming, Dead };

struct Conn {
  int index = 0;
  bool publisher = false;
  int fd = -1;
  State state = State::TcpConnecting;
  std::string key;
  Handshake hs{Handshake::Role::Client, [] {
                 Handshake::Options o;
                 o.digest = false;  // simple handshake: both servers take it
                 return o;
               }()};
  ChunkReader reader;
  ChunkWriter writer;
  WireQueue out;
  control::AckTracker ack;
  uint64_t bytes_in = 0;
  uint32_t stream_id = 0;
  bool want_out = false;
  int64_t t_start = 0;
  int64_t t_joined = -1;
  std::vector<Message> inbox;
  // Player counters.
  uint64_t media_bytes = 0, media_msgs = 0;
  uint64_t win_bytes = 0, win_msgs = 0;          // timestamp in [ts0, ts1)
  uint64_t arrival_mark = 0;                    // media_bytes at window start
  uint64_t arrival_bytes = 0;                   // media bytes arrived during the window
  // Publisher state.
  size_t next_tag = 0;
  uint32_t loop = 0;
  int64_t t_stream0 = 0;   // wall clock of timestamp 0
  uint64_t sent_media_bytes = 0, sent_media_msgs = 0;
  uint64_t win_sent_bytes = 0, win_sent_msgs = 0;
  bool win_open = false;
  uint32_t win_ts0 = 0, win_ts1 = 0;
  uint64_t max_backlog = 0;
};

struct Errors {
  std::map<std::string, uint64_t> counts;
  void add(const std::string& kind) { counts[kind]++; }
};

class LoadGen {
 public:
  explicit LoadGen(const Options& o, const Clip& clip) : opt_(o), clip_(clip) {}
  int run();

 private:
  Options opt_;
  const Clip& clip_;
  int ep_ = -1;
  std::vector<std::unique_ptr<Conn>> pubs_, players_;
  Errors errors_;
  sockaddr_in addr_{};
  // Window in publisher 0's timestamps; players consult these.
  bool window_started_ = false, window_ended_ = false;
  uint32_t ts0_ = 0, ts1_ = 0;
  // Server sampling.
  uint64_t rss_peak_kb_ = 0, rss_base_kb_ = 0;
  int64_t next_sample_us_ = 0;

  bool open(Conn& c);
  void kill(Conn& c, const char* why);
  void on_event(Conn& c, uint32_t ev);
  void on_readable(Conn& c);
  void on_messages(Conn& c);
  void handle(Conn& c, Message& m);
  void send(Conn& c, const Message& m) { c.writer.write(m, c.out); }
  void flush(Conn& c);
  void set_events(Conn& c);
  void pace(Conn& c, int64_t now);
  void poll_once(int timeout_ms);
  void sample_server();
};

bool LoadGen::open(Conn& c) {
  c.t_start = now_us();
  c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    errors_.add(std::string("socket: ") + strerror(errno));
    c.state = State::Dead;
    return false;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = connect(c.fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
  if (r < 0 && errno != EINPROGRESS) {
    errors_.add(std::string("connect: ") + strerror(errno));
    close(c.fd);
    c.fd = -1;
    c.state = State::Dead;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  c.want_out = true;
  c.state = State::TcpConnecting;
  return true;
}

void LoadGen::kill(Conn& c, const char* why) {
  if (c.state == State::Dead) return;
  errors_.add(std::string(c.publisher ? "publisher: " : "player: ") + why);
  c.state = State::Dead;
  if (c.fd >= 0) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
  }
}

void LoadGen::set_events(Conn& c) {
  bool want = !c.out.empty() || c.state == State::TcpConnecting;
  if (want == c.want_out || c.fd < 0) return;
  c.want_out = want;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (want ? uint32_t(EPOLLOUT) : 0u);
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void LoadGen::flush(Conn& c) {
  while (c.fd >= 0 && !c.out.empty()) {
    const void* bases[64];
    size_t lens[64];
    size_t n = c.out.gather(bases, lens, 64);
    iovec iov[64];
    for (size_t i = 0; i < n; i++) iov[i] = {const_cast<void*>(bases[i]), lens[i]};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    ssize_t w = sendmsg(c.fd, &mh, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      kill(c, "write error");
      return;
    }
    c.out.consume(static_cast<size_t>(w));
  }
  if (c.publisher) c.max_backlog = std::max<uint64_t>(c.max_backlog, c.out.bytes());
  set_events(c);
}

void LoadGen::on_event(Conn& c, uint32_t ev) {
  if (c.state == State::Dead) return;
  if (c.state == State::TcpConnecting) {
    if (ev & (EPOLLERR | EPOLLHUP)) {
      int e = 0;
      socklen_t l = sizeof e;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &e, &l);
      kill(c, e ? strerror(e) : "connect failed");
      return;
    }
    if (!(ev & EPOLLOUT)) return;
    int e = 0;
    socklen_t l = sizeof e;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &e, &l);
    if (e) {
      kill(c, strerror(e));
      return;
    }
    c.state = State::Handshaking;
    std::vector<uint8_t> c0c1 = c.hs.start();
    WirePiece p;
    p.length = static_cast<uint32_t>(c0c1.size());
    p.payload = Bytes::copy(c0c1);
    c.out.push(std::move(p));
    flush(c);
    return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
  if (c.state != State::Dead && (ev & EPOLLOUT)) flush(c);
}

void LoadGen::on_readable(Conn& c) {
  static uint8_t buf[256 * 1024];
  for (int round = 0; round < 4 && c.state != State::Dead; round++) {
    ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      kill(c, "read error");
      return;
    }
    if (n == 0) {
      kill(c, "closed by server");
      return;
    }
    c.bytes_in += static_cast<uint64_t>(n);
    const uint8_t* p = buf;
    size_t len = static_cast<size_t>(n);
    GError* err = nullptr;
    if (c.state == State::Handshaking) {
      size_t consumed = 0;
      std::vector<uint8_t> reply;
      auto st = c.hs.feed(p, len, consumed, reply, &err);
      if (!reply.empty()) {
        WirePiece wp;
        wp.length = static_cast<uint32_t>(reply.size());
        wp.payload = Bytes::copy(reply);
        c.out.push(std::move(wp));
      }
      if (st == Handshake::Status::Error) {
        g_clear_error(&err);
        kill(c, "handshake failed");
        return;
      }
      p += consumed;
      len -= consumed;
      if (st == Handshake::Status::Done) {
        c.state = State::WaitConnect;
        if (c.publisher) {
          send(c, control::set_chunk_size(4096));
          c.writer.set_chunk_size(4096);
        }
        ConnectRequest req;
        req.app = opt_.app;
        req.tc_url = "rtmp://" + opt_.host + ":" + std::to_string(opt_.port) + "/" + opt_.app;
        req.publisher = c.publisher;
        send(c, build_connect(1, req));
      }
    }
    if (len > 0 && c.state != State::Handshaking) {
      c.inbox.clear();
      if (!c.reader.feed(p, len, c.inbox, &err)) {
        g_clear_error(&err);
        kill(c, "chunk stream error");
        return;
      }
      on_messages(c);
      if (c.state == State::Dead) return;
    }
    uint32_t seq;
    if (opt_.ack && c.ack.on_bytes(c.bytes_in, seq)) send(c, control::acknowledgement(seq));
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  flush(c);
}

void LoadGen::on_messages(Conn& c) {
  for (auto& m : c.inbox) {
    handle(c, m);
    if (c.state == State::Dead) return;
  }
  c.inbox.clear();
}

void LoadGen::handle(Conn& c, Message& m) {
  switch (m.type) {
    case kMsgVideo:
    case kMsgAudio: {
      if (c.publisher) return;
      size_t n = m.payload.size();
      c.media_bytes += n;
      c.media_msgs++;
      if (c.t_joined < 0 && m.type == kMsgVideo && n >= 2) {
        const uint8_t* p = m.payload.data();
        if ((p[0] >> 4) == 1 && p[1] == 1) c.t_joined = now_us();
      }
      if (window_started_ && m.timestamp - ts0_ < 0x80000000u &&
          (!window_ended_ || ts1_ - m.timestamp - 1 < 0x80000000u)) {
        c.win_bytes += n;
        c.win_msgs++;
      }
      return;
    }
    case kMsgWindowAckSize: {
      uint32_t w = 0;
      if (control::parse_window_ack_size(m, w, nullptr)) c.ack.set_window(w);
      return;
    }
    case kMsgUserControl: {
      control::UserControl uc;
      if (control::parse_user_control(m, uc, nullptr) && uc.event == control::UserControlEvent::PingRequest)
        send(c, control::ping_response(uc.value));
      return;
    }
    case kMsgCommandAmf0:
    case kMsgCommandAmf3: {
      Command cmd;
      GError* err = nullptr;
      if (!parse_command(m, cmd, amf0::Limits{}, &err)) {
        g_clear_error(&err);
        kill(c, "malformed command");
        return;
      }
      if (cmd.name == "_error") {
        kill(c, "_error from server");
        return;
      }
      if (cmd.name == "_result") {
        if (c.state == State::WaitConnect && cmd.transaction_id == 1) {
          c.state = State::WaitCreateStream;
          send(c, build_create_stream(2));
        } else if (c.state == State::WaitCreateStream && cmd.transaction_id == 2) {
          double id = 1;
          command_number_arg(cmd, 0, id);
          c.stream_id = static_cast<uint32_t>(id);
          c.state = State::WaitStart;
          if (c.publisher) {
            send(c, build_publish(3, c.stream_id, c.key));
          } else {
            send(c, build_play(3, c.stream_id, c.key, -2));
            send(c, control::user_control({control::UserControlEvent::SetBufferLength, c.stream_id, 3000}));
          }
        }
        return;
      }
      if (cmd.name == "onStatus") {
        const amf0::Value* info = cmd.args.empty() ? nullptr : &cmd.args[0];
        std::string code;
        std::string level;
        if (info) {
          if (auto s = info->get_string("code")) code = std::string(*s);
          if (auto s = info->get_string("level")) level = std::string(*s);
        }
        if (level == "error") {
          kill(c, ("onStatus " + code).c_str());
          return;
        }
        if (c.state == State::WaitStart &&
            ((c.publisher && code == status::kPublishStart) || (!c.publisher && code == status::kPlayStart))) {
          c.state = State::Streaming;
          if (c.publisher) {
            c.t_stream0 = now_us();
            c.next_tag = 0;
            c.loop = 0;
          }
        }
        return;
      }
      return;
    }
    default:
      return;
  }
}

// Sends every tag of the clip whose (rebased) timestamp is due.
void LoadGen::pace(Conn& c, int64_t now) {
  if (c.state != State::Streaming) return;
  bool sent = false;
  for (;;) {
    if (c.next_tag == clip_.tags.size()) {
      c.next_tag = 0;
      c.loop++;
    }
    const Tag& t = clip_.tags[c.next_tag];
    if (c.loop > 0 && t.header) {
      c.next_tag++;
      continue;
    }
    uint32_t ts = t.msg.timestamp + c.loop * clip_.period_ms;
    if (c.t_stream0 + int64_t(ts) * 1000 > now) break;
    Message m = t.msg;
    m.timestamp = ts;
    m.stream_id = c.stream_id;
    if (m.type == flv::kTagScript) {
      // @setDataFrame + the file's onMetaData payload.
      ByteWriter w;
      amf0::encode(amf0::Value::make_string("@setDataFrame"), w);
      w.raw(t.msg.payload.data(), t.msg.payload.size());
      m.payload = w.to_bytes();
      m.type = kMsgDataAmf0;
      m.csid = kCsidData;
    } else {
      m.csid = m.type == kMsgAudio ? kCsidAudio : kCsidVideo;
      c.sent_media_bytes += m.payload.size();
      c.sent_media_msgs++;
      if (c.win_open) {
        c.win_sent_bytes += m.payload.size();
        c.win_sent_msgs++;
      }
    }
    send(c, m);
    sent = true;
    c.next_tag++;
  }
  if (sent) flush(c);
}

// The timestamp of the next media tag the publisher will send.
static uint32_t next_ts(const Conn& c, const Clip& clip) {
  size_t i = c.next_tag;
  uint32_t loop = c.loop;
  for (size_t k = 0; k < clip.tags.size() * 2; k++) {
    if (i == clip.tags.size()) {
      i = 0;
      loop++;
    }
    if (!clip.tags[i].header) return clip.tags[i].msg.timestamp + loop * clip.period_ms;
    i++;
  }
  return 0;
}

void LoadGen::sample_server() {
  if (!opt_.server_pid) return;
  int64_t now = now_us();
  if (now < next_sample_us_) return;
  next_sample_us_ = now + 100000;
  uint64_t rss = 0, hwm = 0;
  proc_mem(opt_.server_pid, rss, hwm);
  rss_peak_kb_ = std::max(rss_peak_kb_, rss);
}

void LoadGen::poll_once(int timeout_ms) {
  epoll_event evs[512];
  int n = epoll_wait(ep_, evs, 512, timeout_ms);
  for (int i = 0; i < n; i++) on_event(*static_cast<Conn*>(evs[i].data.ptr), evs[i].events);
  int64_t now = now_us();
  for (auto& p : pubs_) pace(*p, now);
  sample_server();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  double pos = q * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = static_cast<size_t>(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o + "\"";
}

int LoadGen::run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  addr_.sin_family = AF_INET;
  addr_.sin_port = htons(static_cast<uint16_t>(opt_.port));
  inet_pton(AF_INET, opt_.host.c_str(), &addr_.sin_addr);

  // 1. Publishers.
  for (int i = 0; i < opt_.publishers; i++) {
    auto c = std::make_unique<Conn>();
    c->index = i;
    c->publisher = true;
    c->key = opt_.publishers == 1 ? opt_.stream : opt_.stream + std::to_string(i);
    open(*c);
    pubs_.push_back(std::move(c));
    // Spread publisher starts (and so their keyframes) over 10 ms steps.
    int64_t until = now_us() + 10000;
    while (now_us() < until) poll_once(1);
  }
  int64_t deadline = now_us() + 10000000;
  auto all_pubs_live = [&] {
    for (auto& p : pubs_)
      if (p->state != State::Streaming && p->state != State::Dead) return false;
    return true;
  };
  while (!all_pubs_live() && now_us() < deadline) poll_once(5);
  int live = 0;
  for (auto& p : pubs_) live += p->state == State::Streaming;
  if (live == 0) {
    fprintf(stderr, "loadgen: no publisher could start\n");
    printf("{\"error\": \"no publisher could start\"}\n");
    return 1;
  }
  fprintf(stderr, "loadgen: %d/%d publishers live, warming up %.1f s\n", live, opt_.publishers, opt_.warmup);
  int64_t until = now_us() + int64_t(opt_.warmup * 1e6);
  while (now_us() < until) poll_once(5);
  if (opt_.server_pid) {
    uint64_t hwm = 0;
    proc_mem(opt_.server_pid, rss_base_kb_, hwm);
    rss_peak_kb_ = rss_base_kb_;
  }

  // 2. Players, at a controlled rate.
  int64_t t_players0 = now_us();
  int started = 0;
  const int64_t step_us = opt_.rate > 0 ? int64_t(1e6 / opt_.rate) : 0;
  while (started < opt_.players) {
    int64_t now = now_us();
    while (started < opt_.players && now >= t_players0 + started * step_us) {
      auto c = std::make_unique<Conn>();
      c->index = started;
      c->key = opt_.stream;
      open(*c);
      players_.push_back(std::move(c));
      started++;
    }
    poll_once(1);
  }
  int64_t last_start = now_us();
  auto pending_joins = [&] {
    int k = 0;
    for (auto& p : players_) k += p->state != State::Dead && p->t_joined < 0;
    return k;
  };
  while (pending_joins() > 0 && now_us() < last_start + int64_t(opt_.join_timeout * 1e6)) poll_once(5);
  double connect_phase_s = (now_us() - t_players0) / 1e6;
  fprintf(stderr, "loadgen: %zu players started, %d not joined after %.1f s\n", players_.size(), pending_joins(),
          connect_phase_s);

  // 3. Measured window.
  Conn& pub0 = *pubs_[0];
  for (auto& p : pubs_) {
    p->win_open = true;
    p->win_sent_bytes = p->win_sent_msgs = 0;
  }
  ts0_ = next_ts(pub0, clip_);
  window_started_ = true;
  for (auto& p : players_) p->arrival_mark = p->media_bytes;
  double cpu0 = opt_.server_pid ? proc_cpu_seconds(opt_.server_pid) : 0;
  double self0 = self_cpu_seconds();
  int64_t t0 = now_us();
  int64_t t_end = t0 + int64_t(opt_.duration * 1e6);
  while (now_us() < t_end) poll_once(5);
  int64_t t1 = now_us();
  double cpu1 = opt_.server_pid ? proc_cpu_seconds(opt_.server_pid) : 0;
  double self1 = self_cpu_seconds();
  for (auto& p : pubs_) p->win_open = false;
  ts1_ = next_ts(pub0, clip_);
  window_ended_ = true;
  for (auto& p : players_) p->arrival_bytes = p->media_bytes - p->arrival_mark;
  uint64_t pub_backlog_end = pub0.out.bytes();
  fprintf(stderr, "loadgen: window done (%.1f s), draining %.1f s\n", (t1 - t0) / 1e6, opt_.drain);
  until = now_us() + int64_t(opt_.drain * 1e6);
  while (now_us() < until) poll_once(5);
  uint64_t hwm_kb = 0, rss_end_kb = 0;
  if (opt_.server_pid) proc_mem(opt_.server_pid, rss_end_kb, hwm_kb);

  // 4. Report.
  const double window_s = (t1 - t0) / 1e6;
  const uint64_t expected = pub0.win_sent_bytes;
  std::vector<double> recv, arrival, join_ms;
  int starved = 0, dead = 0, not_joined = 0;
  uint64_t delivered = 0, delivered_msgs = 0;
  for (auto& p : players_) {
    recv.push_back(double(p->win_bytes));
    arrival.push_back(double(p->arrival_bytes));
    delivered += p->win_bytes;
    delivered_msgs += p->win_msgs;
    if (p->win_bytes < 0.9 * double(expected)) starved++;
    if (p->state == State::Dead) dead++;
    if (p->t_joined >= 0) join_ms.push_back((p->t_joined - p->t_start) / 1000.0);
    else not_joined++;
  }
  uint64_t pubs_live_end = 0, pub_win_bytes = 0;
  for (auto& p : pubs_) {
    pubs_live_end += p->state == State::Streaming;
    pub_win_bytes += p->win_sent_bytes;
  }
  const double exp_d = double(expected);
  std::string errs = "{";
  bool first = true;
  for (auto& [k, v] : errors_.counts) {
    errs += (first ? "" : ", ") + json_str(k) + ": " + std::to_string(v);
    first = false;
  }
  errs += "}";
  printf("{\n");
  printf("  \"players\": %d, \"publishers\": %d, \"publishers_live_at_end\": %" PRIu64 ",\n", opt_.players,
         opt_.publishers, pubs_live_end);
  printf("  \"duration_s\": %.3f, \"connect_phase_s\": %.3f, \"rate\": %.1f,\n", window_s, connect_phase_s, opt_.rate);
  printf("  \"window_ts\": [%u, %u],\n", ts0_, ts1_);
  printf("  \"expected_bytes\": %" PRIu64 ", \"expected_msgs\": %" PRIu64 ", \"publisher_kbps\": %.1f,\n", expected,
         pub0.win_sent_msgs, exp_d * 8 / window_s / 1000);
  printf("  \"publishers_sent_bytes\": %" PRIu64 ", \"publisher_backlog_max\": %" PRIu64
         ", \"publisher_backlog_end\": %" PRIu64 ",\n",
         pub_win_bytes, pub0.max_backlog, pub_backlog_end);
  printf("  \"received_min\": %.0f, \"received_median\": %.0f, \"received_max\": %.0f,\n", percentile(recv, 0),
         percentile(recv, 0.5), percentile(recv, 1));
  printf("  \"received_min_ratio\": %.4f, \"received_median_ratio\": %.4f,\n",
         exp_d > 0 ? percentile(recv, 0) / exp_d : 0, exp_d > 0 ? percentile(recv, 0.5) / exp_d : 0);
  printf("  \"arrival_min_ratio\": %.4f, \"arrival_median_ratio\": %.4f,\n",
         exp_d > 0 ? percentile(arrival, 0) / exp_d : 0, exp_d > 0 ? percentile(arrival, 0.5) / exp_d : 0);
  printf("  \"delivered_bytes\": %" PRIu64 ", \"delivered_msgs\": %" PRIu64 ",\n", delivered, delivered_msgs);
  printf("  \"starved\": %d, \"dead\": %d, \"not_joined\": %d,\n", starved, dead, not_joined);
  printf("  \"join_ms_min\": %.2f, \"join_ms_median\": %.2f, \"join_ms_p99\": %.2f, \"join_ms_max\": %.2f,\n",
         percentile(join_ms, 0), percentile(join_ms, 0.5), percentile(join_ms, 0.99), percentile(join_ms, 1));
  printf("  \"loadgen_cpu_s\": %.3f,\n", self1 - self0);
  if (opt_.server_pid) {
    printf("  \"server_cpu_s\": %.3f, \"server_rss_base_kb\": %" PRIu64 ", \"server_rss_peak_kb\": %" PRIu64
           ", \"server_rss_end_kb\": %" PRIu64 ", \"server_hwm_kb\": %" PRIu64 ",\n",
           cpu1 - cpu0, rss_base_kb_, rss_peak_kb_, rss_end_kb, hwm_kb);
  }
  printf("  \"errors\": %s\n", errs.c_str());
  printf("}\n");
  fflush(stdout);
  for (auto& p : players_) if (p->fd >= 0) close(p->fd);
  for (auto& p : pubs_) if (p->fd >= 0) close(p->fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "missing value for %s\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") o.host = next();
    else if (a == "--port") o.port = std::stoi(next());
    else if (a == "--app") o.app = next();
    else if (a == "--stream") o.stream = next();
    else if (a == "--flv") o.flv = next();
    else if (a == "--players") o.players = std::stoi(next());
    else if (a == "--publishers") o.publishers = std::stoi(next());
    else if (a == "--rate") o.rate = std::stod(next());
    else if (a == "--duration") o.duration = std::stod(next());
    else if (a == "--warmup") o.warmup = std::stod(next());
    else if (a == "--drain") o.drain = std::stod(next());
    else if (a == "--join-timeout") o.join_timeout = std::stod(next());
    else if (a == "--server-pid") o.server_pid = std::stoi(next());
    else if (a == "--no-ack") o.ack = false;
    else {
      fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.flv.empty() || o.publishers < 1) {
    fprintf(stderr, "usage: grtmp-loadgen --port P --flv FILE [--players N] [--publishers K] ...\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Clip clip;
  if (!load_clip(o.flv, clip)) {
    fprintf(stderr, "loadgen: cannot load %s\n", o.flv.c_str());
    return 2;
  }
  LoadGen g(o, clip);
  return g.run();
}
