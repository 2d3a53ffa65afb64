#include "options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace grtmp::cli {

namespace {

const char* command_name(Command c) {
  switch (c) {
    case Command::Publish: return "publish";
    case Command::Play: return "play";
    case Command::Probe: return "probe";
    case Command::Help: return "help";
    case Command::Version: return "version";
    default: return "";
  }
}

Command command_from(const std::string& s) {
  if (s == "publish") return Command::Publish;
  if (s == "play") return Command::Play;
  if (s == "probe") return Command::Probe;
  if (s == "help") return Command::Help;
  if (s == "version") return Command::Version;
  return Command::None;
}

int usage_error(const Options& o, const std::string& why) {
  fprintf(stderr, "gst-rtmp-client: %s\n", why.c_str());
  const char* cmd = command_name(o.command);
  fprintf(stderr, "Try 'gst-rtmp-client %s%s--help'.\n", cmd, *cmd ? " " : "");
  return 2;
}

enum class Arg { None, Value };

struct Flag {
  const char* name;
  const char* alias;  // short form or nullptr
  Arg arg;
  unsigned commands;  // bit mask of Command values allowed
};

constexpr unsigned bit(Command c) { return 1u << unsigned(c); }
constexpr unsigned kAll = bit(Command::Publish) | bit(Command::Play) | bit(Command::Probe) | bit(Command::None) |
                          bit(Command::Help) | bit(Command::Version);
constexpr unsigned kNet = bit(Command::Publish) | bit(Command::Play) | bit(Command::Probe);

const Flag kFlags[] = {
    {"help", "h", Arg::None, kAll},
    {"version", nullptr, Arg::None, kAll},
    {"verbose", "v", Arg::None, kNet},
    {"quiet", "q", Arg::None, kNet},
    {"timeout", nullptr, Arg::Value, kNet},
    {"loop", nullptr, Arg::None, bit(Command::Publish)},
    {"realtime", "re", Arg::None, bit(Command::Publish)},
    {"no-realtime", nullptr, Arg::None, bit(Command::Publish)},
    {"reconnect", nullptr, Arg::None, bit(Command::Publish)},
    {"output", "o", Arg::Value, bit(Command::Play)},
    {"duration", "t", Arg::Value, bit(Command::Play)},
    {"json", nullptr, Arg::None, bit(Command::Probe)},
};

const Flag* find_flag(const std::string& name) {
  for (const Flag& f : kFlags)
    if (name == f.name || (f.alias && name == f.alias)) return &f;
  return nullptr;
}

}  // namespace

bool parse_seconds(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  double v = strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v) || v < 0) return false;
  std::string unit(end);
  if (unit.empty() || unit == "s") out = v;
  else if (unit == "ms") out = v / 1000.0;
  else if (unit == "m" || unit == "min") out = v * 60.0;
  else if (unit == "h") out = v * 3600.0;
  else return false;
  return true;
}

std::string version_string() { return GRTMP_VERSION; }

std::string usage_text(Command topic) {
  const char* publish =
      "gst-rtmp-client publish FILE URL [options]\n"
      "  Publishes FILE (FLV, MP4/MOV, MKV/WebM, MPEG-TS with H.264, AAC, MP3 or any\n"
      "  codec FLV carries) to URL without transcoding.\n"
      "    --loop             start again at the end of the file (timestamps keep increasing)\n"
      "    --realtime, -re    pace at the media rate (default)\n"
      "    --no-realtime      push as fast as the connection takes it\n"
      "    --reconnect        retry (every second) when the connection is refused or lost\n"
      "    --timeout S        network timeout in seconds (default 10)\n"
      "    -q, --quiet        no progress output\n";
  const char* play =
      "gst-rtmp-client play URL [options]\n"
      "  Records the stream to an FLV file, or shows it in a window.\n"
      "    -o, --output FILE  write the stream to FILE (FLV, no transcoding)\n"
      "    -t, --duration S   stop after S seconds of media (default: until the stream ends)\n"
      "    --timeout S        network timeout in seconds (default 10)\n"
      "    -q, --quiet        no progress output\n"
      "  Without -o a window needs a display (DISPLAY or WAYLAND_DISPLAY).\n";
  const char* probe =
      "gst-rtmp-client probe URL [options]\n"
      "  Plays the stream until it has the sequence headers and a first keyframe\n"
      "  (then about one more second to measure), and prints codecs, resolution,\n"
      "  frame rate, sample rate, channels, bitrate and time to the first keyframe.\n"
      "    --json             one JSON object on stdout\n"
      "    --timeout S        give up after S seconds (default 10)\n";
  const char* common =
      "Common: -v, --verbose (library and element logs on stderr), -h, --help, --version.\n"
      "Every flag also works with one dash (-loop), and as --flag=value.\n"
      "Exit codes: 0 ok, 1 other error, 2 usage or bad input file, 3 connection refused or\n"
      "unreachable, 4 stream not found, 5 bad name (stream busy), 6 unauthorized, 7 timeout.\n";
  switch (topic) {
    case Command::Publish: return std::string("Usage: ") + publish + "\n" + common;
    case Command::Play: return std::string("Usage: ") + play + "\n" + common;
    case Command::Probe: return std::string("Usage: ") + probe + "\n" + common;
    default: break;
  }
  return std::string(
             "gst-rtmp-client: publish, play and probe RTMP streams (GStreamer + grtmp).\n\n"
             "Usage:\n  ") +
         publish + "\n  " + play + "\n  " + probe + "\n" +
         "  gst-rtmp-client help [COMMAND]\n  gst-rtmp-client --version\n\n" + common +
         "\nURL: rtmp[s]://host[:port]/app/stream[?query]\n";
}

int parse_args(int argc, char** argv, Options& out) {
  std::vector<std::string> positional;
  bool help = false, version = false;
  bool realtime_set = false, no_realtime_set = false;
  int i = 1;
  // The command comes first (flags like --help / --version may stand alone).
  if (i < argc && argv[i][0] != '-') {
    Command c = command_from(argv[i]);
    if (c == Command::None) return usage_error(out, std::string("unknown command '") + argv[i] + "'");
    out.command = c;
    i++;
  }
  bool only_positional = false;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-') {
      positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* f = find_flag(name);
    if (!f) return usage_error(out, "unknown option '" + a + "'");
    if (!(f->commands & bit(out.command))) {
      return usage_error(out, "option '" + a + "' does not apply to " +
                                  (out.command == Command::None ? std::string("no command")
                                                                : std::string("'") + command_name(out.command) + "'"));
    }
    if (f->arg == Arg::Value && !has_value) {
      if (i + 1 >= argc) return usage_error(out, "option '" + a + "' needs a value");
      value = argv[++i];
    } else if (f->arg == Arg::None && has_value) {
      return usage_error(out, "option '--" + std::string(f->name) + "' takes no value");
    }
    std::string n = f->name;
    if (n == "help") help = true;
    else if (n == "version") version = true;
    else if (n == "verbose") out.verbose++;
    else if (n == "quiet") out.quiet = true;
    else if (n == "loop") out.loop = true;
    else if (n == "realtime") realtime_set = true;
    else if (n == "no-realtime") no_realtime_set = true;
    else if (n == "reconnect") out.reconnect = true;
    else if (n == "json") out.json = true;
    else if (n == "output") out.output = value;
    else if (n == "timeout" || n == "duration") {
      double s = 0;
      if (!parse_seconds(value, s)) return usage_error(out, "invalid duration '" + value + "' for --" + n);
      if (n == "timeout") {
        if (s <= 0) return usage_error(out, "--timeout must be more than 0");
        out.timeout_s = s;
      } else {
        out.duration_s = s;
      }
    }
  }
  if (realtime_set && no_realtime_set) return usage_error(out, "--realtime and --no-realtime exclude each other");
  out.realtime = !no_realtime_set;

  if (version || out.command == Command::Version) {
    printf("gst-rtmp-client %s\n", version_string().c_str());
    return 0;
  }
  if (out.command == Command::Help) {
    Command topic = Command::None;
    if (!positional.empty()) {
      topic = command_from(positional[0]);
      if (topic == Command::None || topic == Command::Help || topic == Command::Version)
        return usage_error(out, "no help for '" + positional[0] + "'");
    }
    fputs(usage_text(topic).c_str(), stdout);
    return 0;
  }
  if (help) {
    fputs(usage_text(out.command).c_str(), stdout);
    return 0;
  }
  switch (out.command) {
    case Command::None:
      fputs(usage_text(Command::None).c_str(), stderr);
      return 2;
    case Command::Publish:
      if (positional.size() != 2) return usage_error(out, "publish needs FILE and URL");
      out.file = positional[0];
      out.url = positional[1];
      break;
    case Command::Play:
    case Command::Probe:
      if (positional.size() != 1) return usage_error(out, std::string(command_name(out.command)) + " needs one URL");
      out.url = positional[0];
      break;
    default:
      break;
  }
  if (out.command == Command::Play && out.output == "-") return usage_error(out, "-o needs a file name (not stdout)");
  return -1;
}

}  // namespace grtmp::cli
