// The format table (kernels/formats.inc) as JSON: what the sweeps write into their results
// (the plots read format order and bits per weight from there, never from a list of their
// own) and what //tools/gguf_interop checks against gguf-py's constants.
#ifndef KERNELS_FORMATS_JSON_H_
#define KERNELS_FORMATS_JSON_H_

#include "nlohmann/json.hpp"

namespace fk {

// One object per format, in table order: name, ggml_name, gguf_type, block_elems, block_bytes,
// bits_per_weight, act_format, llama_ftype, fallback, ggml_peer.
nlohmann::ordered_json FormatTableJson();

}  // namespace fk

#endif  // KERNELS_FORMATS_JSON_H_
