#include "runtime/fuzz/gguf_mutator.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "runtime/gguf.h"

namespace fk {
namespace mutation {
namespace {

// The test's own walker over a *valid* file, recording where every field is.
class Walker {
 public:
  explicit Walker(Seed* s) : s_(*s), b_(s->bytes) {}

  void Walk() {
    s_.boundaries.push_back(0);
    pos_ = 4;  // after the magic
    Add(4, FieldKind::kVersion);
    const uint64_t n_tensors = Get<uint64_t>();
    Add(8, FieldKind::kCount);
    const uint64_t n_kv = Get<uint64_t>();
    Add(8, FieldKind::kCount);
    s_.boundaries.push_back(pos_);
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = Str();
      const uint32_t type = Get<uint32_t>();
      Add(4, FieldKind::kValueType);
      if (key == "general.alignment") s_.alignment = Get<uint32_t>();
      Value(type);
      s_.boundaries.push_back(pos_);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
      const size_t name_len_pos = pos_;
      const std::string name = Str();
      s_.tensor_names.push_back({name_len_pos + 8, name.size()});
      const uint32_t n_dims = Get<uint32_t>();
      Add(4, FieldKind::kNDims);
      for (uint32_t d = 0; d < n_dims; ++d) {
        Get<uint64_t>();
        Add(8, FieldKind::kDim);
      }
      Get<uint32_t>();
      Add(4, FieldKind::kTensorType);
      s_.tensor_offsets.push_back(pos_);
      offsets_.push_back(Get<uint64_t>());
      Add(8, FieldKind::kTensorOffset);
      s_.boundaries.push_back(pos_);
    }
    const size_t data = (pos_ + s_.alignment - 1) / s_.alignment * s_.alignment;
    s_.boundaries.push_back(data);
    for (size_t i = 0; i < offsets_.size(); ++i) s_.boundaries.push_back(data + offsets_[i]);
    s_.boundaries.push_back(b_.size());
    std::sort(s_.boundaries.begin(), s_.boundaries.end());
    s_.boundaries.erase(std::unique(s_.boundaries.begin(), s_.boundaries.end()),
                        s_.boundaries.end());
  }

 private:
  template <typename T>
  T Get() {
    T x;
    std::memcpy(&x, b_.data() + pos_, sizeof(T));
    return x;
  }
  void Add(int width, FieldKind kind) {
    s_.fields.push_back({pos_, width, kind});
    pos_ += static_cast<size_t>(width);
  }
  std::string Str() {
    const uint64_t n = Get<uint64_t>();
    Add(8, FieldKind::kStrLen);
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void Value(uint32_t type) {
    switch (static_cast<GgufValueType>(type)) {
      case GgufValueType::kString:
        Str();
        return;
      case GgufValueType::kBool:
        Add(1, FieldKind::kBool);
        return;
      case GgufValueType::kArray: {
        const uint32_t elem = Get<uint32_t>();
        Add(4, FieldKind::kElemType);
        const uint64_t n = Get<uint64_t>();
        Add(8, FieldKind::kArrayLen);
        for (uint64_t j = 0; j < n; ++j) Value(elem);
        return;
      }
      default: {
        static const int kWidth[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        pos_ += static_cast<size_t>(kWidth[type]);
        return;
      }
    }
  }

  Seed& s_;
  const std::string& b_;
  size_t pos_ = 0;
  std::vector<uint64_t> offsets_;
};

}  // namespace

Seed MakeSeed(std::string bytes) {
  Seed s;
  s.bytes = std::move(bytes);
  Walker(&s).Walk();
  return s;
}

const uint64_t kInteresting[] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256,
    0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull,
    1ull << 40, 1ull << 48, 1ull << 56, 1ull << 62, 0x7fffffffffffffffull,
    0x8000000000000000ull, 0xfffffffffffffff0ull, 0xfffffffffffffffeull, 0xffffffffffffffffull};
const size_t kNumInteresting = sizeof(kInteresting) / sizeof(kInteresting[0]);

void PutField(std::string* b, const Field& f, uint64_t v) {
  if (f.pos + static_cast<size_t>(f.width) <= b->size()) {
    std::memcpy(&(*b)[f.pos], &v, static_cast<size_t>(f.width));
  }
}

uint64_t GetField(const std::string& b, const Field& f) {
  uint64_t v = 0;
  if (f.pos + static_cast<size_t>(f.width) <= b.size()) {
    std::memcpy(&v, &b[f.pos], static_cast<size_t>(f.width));
  }
  return v;
}

// One random mutation of `b` (which started as `seed`).
void MutateOnce(const Seed& seed, const std::vector<Seed>& all, Rng& rng, std::string* b) {
  const size_t n = b->size();
  switch (rng.Below(11)) {
    case 0:
    case 1: {  // bit flips, mostly in the header/metadata/tensor-info part
      const size_t limit = rng.OneIn(4) || seed.boundaries.size() < 3
                               ? n
                               : std::min(n, seed.boundaries[seed.boundaries.size() / 2] + 64);
      const int flips = 1 + static_cast<int>(rng.Below(8));
      for (int i = 0; i < flips && limit > 0; ++i) {
        (*b)[rng.Below(limit)] ^= static_cast<char>(1u << rng.Below(8));
      }
      return;
    }
    case 2: {  // insert bytes
      const size_t at = rng.OneIn(2) ? seed.boundaries[rng.Below(seed.boundaries.size())]
                                     : rng.Below(n + 1);
      std::string ins(1 + rng.Below(rng.OneIn(8) ? 300 : 16), '\0');
      for (char& c : ins) c = static_cast<char>(rng.OneIn(3) ? 0xff : rng.Next());
      b->insert(std::min(at, b->size()), ins);
      return;
    }
    case 3: {  // delete bytes
      if (n == 0) return;
      const size_t at = rng.OneIn(2) ? seed.boundaries[rng.Below(seed.boundaries.size())]
                                     : rng.Below(n);
      if (at >= b->size()) return;
      b->erase(at, 1 + rng.Below(rng.OneIn(8) ? 300 : 16));
      return;
    }
    case 4: {  // truncate at (or near) a section boundary
      const size_t at = seed.boundaries[rng.Below(seed.boundaries.size())] +
                        (rng.OneIn(2) ? 0 : rng.Below(9)) - (rng.OneIn(2) ? 0 : rng.Below(5));
      if (at < b->size()) b->resize(at);
      return;
    }
    case 5:
    case 6: {  // a huge / extreme value in a count, length, dim or offset
      const Field& f = seed.fields[rng.Below(seed.fields.size())];
      uint64_t v;
      static const uint64_t kMinItemBytes[] = {1, 2, 4, 8, 12, 13, 32};
      switch (rng.Below(5)) {
        case 0: v = kInteresting[rng.Below(kNumInteresting)]; break;
        case 1: v = GetField(*b, f) + rng.Below(5) - 2; break;
        case 2: v = n - rng.Below(64); break;
        case 3:  // a count just small enough to pass the "fits in the file" check
          v = (n > f.pos ? n - f.pos : 0) / kMinItemBytes[rng.Below(7)] - rng.Below(3);
          break;
        default: v = rng.Next(); break;
      }
      PutField(b, f, v);
      return;
    }
    case 7: {  // wrong type ids
      std::vector<const Field*> types;
      for (const Field& f : seed.fields) {
        if (f.kind == FieldKind::kValueType || f.kind == FieldKind::kElemType ||
            f.kind == FieldKind::kTensorType) {
          types.push_back(&f);
        }
      }
      if (types.empty()) return;
      const Field& f = *types[rng.Below(types.size())];
      PutField(b, f, rng.OneIn(4) ? rng.Next() & 0xffffffffu : rng.Below(40));
      return;
    }
    case 8: {  // overlapping / shifted tensor offsets
      const auto& offs = seed.tensor_offsets;
      if (offs.empty()) return;
      const Field fi{offs[rng.Below(offs.size())], 8, FieldKind::kTensorOffset};
      const Field fj{offs[rng.Below(offs.size())], 8, FieldKind::kTensorOffset};
      const uint64_t other = GetField(*b, fj);
      const uint64_t a = seed.alignment;
      switch (rng.Below(4)) {
        case 0: PutField(b, fi, other); break;
        case 1: PutField(b, fi, other + a); break;
        case 2: PutField(b, fi, other - a); break;
        default: PutField(b, fi, other + a * rng.Below(8)); break;
      }
      return;
    }
    case 9: {  // duplicate a tensor name over another of the same length
      const auto& names = seed.tensor_names;
      if (names.size() < 2) return;
      const auto& x = names[rng.Below(names.size())];
      const auto& y = names[rng.Below(names.size())];
      if (x.second == y.second && y.first + y.second <= b->size()) {
        std::memcpy(&(*b)[y.first], seed.bytes.data() + x.first, x.second);
      }
      return;
    }
    default: {  // splice a chunk of another seed in
      const Seed& o = all[rng.Below(all.size())];
      const size_t from = rng.Below(o.bytes.size());
      const size_t len = std::min<size_t>(1 + rng.Below(200), o.bytes.size() - from);
      const size_t at = rng.Below(b->size() + 1);
      if (rng.OneIn(2)) {
        b->replace(at, std::min(len, b->size() - at), o.bytes, from, len);
      } else {
        b->insert(at, o.bytes, from, len);
      }
      return;
    }
  }
}

int64_t EnvInt(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v ? std::strtoll(v, nullptr, 10) : def;
}

namespace {
volatile int64_t g_current_input = -1;

void OnFatalSignal(int sig) {
  char buf[96];
  const int len = std::snprintf(buf, sizeof buf,
                                "\n*** signal %d while handling mutated input #%lld "
                                "(reproduce with FK_MUTATION_ONLY=%lld)\n",
                                sig, static_cast<long long>(g_current_input),
                                static_cast<long long>(g_current_input));
  if (len > 0) (void)!write(2, buf, static_cast<size_t>(len));
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

void SetCurrentInput(int64_t index) { g_current_input = index; }

void InstallCrashReporter() {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE}) signal(sig, OnFatalSignal);
}

}  // namespace mutation
}  // namespace fk
