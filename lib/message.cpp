#include "grtmp/message.h"

namespace grtmp {

const char* message_type_name(uint8_t type) {
  switch (type) {
    case kMsgSetChunkSize: return "SetChunkSize";
    case kMsgAbort: return "Abort";
    case kMsgAck: return "Acknowledgement";
    case kMsgUserControl: return "UserControl";
    case kMsgWindowAckSize: return "WindowAckSize";
    case kMsgSetPeerBandwidth: return "SetPeerBandwidth";
    case kMsgAudio: return "Audio";
    case kMsgVideo: return "Video";
    case kMsgDataAmf3: return "DataAMF3";
    case kMsgSharedObjectAmf3: return "SharedObjectAMF3";
    case kMsgCommandAmf3: return "CommandAMF3";
    case kMsgDataAmf0: return "DataAMF0";
    case kMsgSharedObjectAmf0: return "SharedObjectAMF0";
    case kMsgCommandAmf0: return "CommandAMF0";
    case kMsgAggregate: return "Aggregate";
    default: return "Unknown";
  }
}

}  // namespace grtmp
