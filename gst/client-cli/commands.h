// The three commands. Each returns the process exit code (exitcode.h) and
// prints its errors as one line on stderr.
#pragma once

#include <gst/gst.h>

#include <string>

#include "options.h"

namespace grtmp::cli {

// filesrc ! parsebin ! {h264parse|aacparse|mpegaudioparse} ! queue ! flvmux ! rtmpclientsink
int run_publish(const Options& opts);
// rtmpclientsrc ! filesink (-o), or rtmpclientsrc ! decodebin ! auto*sink
int run_play(const Options& opts);
// grtmp::Client: connect, play, read until the headers and a keyframe.
int run_probe(const Options& opts);

// Checks the URL before anything connects: rtmp[s]://host[:port]/app/stream.
// Prints the error and returns false when it is not usable.
bool check_url(const std::string& text, const char* command);

// Makes an element or prints which plugin is missing; nullptr then.
GstElement* make_element(const char* factory, const char* name);

}  // namespace grtmp::cli
