// Recording metadata: every recording starts with an onMetaData tag, and
// its "duration" and "filesize" are written when the file is closed.
//
// RecordingMeta sits on the recording branch (a probe in front of the
// guard). It passes the FLV file header, then looks at the next tag: the
// publisher's onMetaData is kept (re-encoded only when it lacks a numeric
// duration or filesize, which are appended as 0); any other tag gets a
// synthesized onMetaData in front of it (codec ids, size, sample rate from
// the sequence headers of the caps' streamheader). It remembers the file
// offsets of the two numbers, so finalize() can overwrite them in place
// (8-byte doubles: the file keeps its size) once filesink has closed.
//
// Threads: process() on the branch's streaming thread; finalize() after the
// branch's elements reached NULL (no more process() calls).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

#include <vector>

namespace grtmp::launcher {

// The bytes of each buffer in the caps' "streamheader" array (FLV header,
// onMetaData and sequence-header tags), in order; empty without one.
std::vector<std::vector<uint8_t>> streamheader_bytes(GstCaps* caps);

class RecordingMeta {
 public:
  // The stream's caps (streamheader): codec info for a synthesized onMetaData.
  void set_caps(GstCaps* caps);
  // One buffer on its way to the file; returns the buffer to write (the
  // same one, or a new one with an onMetaData tag in front). Takes `buf`.
  GstBuffer* process(GstBuffer* buf);
  // Overwrites duration (seconds) and filesize (bytes) in the file. False
  // when there is nothing to patch or the file could not be written.
  bool finalize(const std::string& path, double duration_s, uint64_t size) const;

  bool synthesized() const { return synthesized_; }
  // Media time seen in the file: last minus first audio/video tag timestamp (s).
  double media_seconds() const;

 private:
  enum class State { Start, AfterHeader, Passing };
  State state_ = State::Start;
  uint64_t offset_ = 0;           // bytes handed on so far (= file offset)
  int64_t duration_at_ = -1;      // file offset of the duration double
  int64_t filesize_at_ = -1;      // file offset of the filesize double
  bool synthesized_ = false;
  int64_t first_ms_ = -1, last_ms_ = -1;
  // From the caps.
  bool has_video_ = false, has_audio_ = false;
  double videocodecid_ = -1, audiocodecid_ = -1;
  uint32_t width_ = 0, height_ = 0;
  uint32_t samplerate_ = 0;
  int channels_ = 0;
  int samplesize_ = 0;
};

}  // namespace grtmp::launcher
