#include "kernels/formats_json.h"

#include "kernels/formats.h"

namespace fk {

nlohmann::ordered_json FormatTableJson() {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const FormatTraits& t : all_formats()) {
    rows.push_back({{"name", t.name},
                    {"ggml_name", t.ggml_name},
                    {"gguf_type", t.gguf_type},
                    {"block_elems", t.block_elems},
                    {"block_bytes", t.block_bytes},
                    {"bits_per_weight", t.bits_per_weight},
                    {"act_format", traits(t.act_format).name},
                    {"llama_ftype", t.llama_ftype},
                    {"fallback", traits(t.fallback).name},
                    {"ggml_peer", t.ggml_peer}});
  }
  return rows;
}

}  // namespace fk
