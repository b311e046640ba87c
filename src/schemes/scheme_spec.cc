#include "schemes/scheme_spec.h"

namespace lowbit {

std::string_view scheme_kind_name(SchemeKind kind) {
  switch (kind) {
    case SchemeKind::Float: return "FLOAT";
    case SchemeKind::W8A8Static: return "W8A8_STATIC";
    case SchemeKind::W8A8Dynamic: return "W8A8_DYNAMIC";
    case SchemeKind::W4A4Dynamic: return "W4A4_DYNAMIC";
    case SchemeKind::W4A8Dynamic: return "W4A8_DYNAMIC";
    case SchemeKind::W4A16: return "W4A16";
    case SchemeKind::Mxfp8: return "MXFP8";
    case SchemeKind::Mxfp4: return "MXFP4";
    case SchemeKind::Fp8Block: return "FP8_BLOCK";
    case SchemeKind::W8A8StaticUnfolded: return "W8A8_STATIC_UNFOLDED";
    case SchemeKind::Fp8: return "FP8";
  }
  return "?";
}

}  // namespace lowbit
