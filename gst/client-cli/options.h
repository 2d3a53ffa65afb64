// Command line of gst-rtmp-client:
//
//   gst-rtmp-client publish FILE URL [--loop] [--realtime|--no-realtime] [--timeout S]
//   gst-rtmp-client play URL [-o FILE.flv] [--duration S] [--timeout S]
//   gst-rtmp-client probe URL [--json] [--timeout S]
//   gst-rtmp-client help [COMMAND] | --help | --version
//
// Every flag works as -flag and --flag, "-flag value" and "--flag=value";
// flags and positional arguments may come in any order after the command.
#pragma once

#include <string>

namespace grtmp::cli {

enum class Command { None, Publish, Play, Probe, Help, Version };

struct Options {
  Command command = Command::None;
  Command help_topic = Command::None;  // "help publish", "publish --help"

  std::string file;    // publish: the input file
  std::string url;     // rtmp[s]://host[:port]/app/stream[?query]
  std::string output;  // play: -o FILE.flv (empty: show in a window)

  bool loop = false;       // publish: restart at the end of the file
  bool realtime = true;    // publish: pace at the media rate
  bool reconnect = false;  // publish: retry when the connection drops
  bool json = false;       // probe: one JSON object on stdout
  double duration_s = 0;   // play: stop after this much media (0: until the stream ends)
  double timeout_s = 10;   // network timeout (probe: the whole probe)
  int verbose = 0;         // -v: library / element logs on stderr
  bool quiet = false;      // -q: no progress output
};

// Parses argv. Returns -1 when the command should run; otherwise the exit
// code (0 after printing help or the version, 2 after printing a usage
// error on stderr).
int parse_args(int argc, char** argv, Options& out);

// Usage text: the general one (Command::None) or one command's.
std::string usage_text(Command topic);

std::string version_string();

// "3", "2.5", "3s", "500ms", "1m" -> seconds. False on anything else.
bool parse_seconds(const std::string& text, double& out);

}  // namespace grtmp::cli
