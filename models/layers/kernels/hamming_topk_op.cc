// EtaHammingTopK: fused SimHash retrieval for ETA (arXiv 2108.04468).
//
// For every (row b, candidate c) it computes the Hamming distance of the
// candidate's code to each of the L behaviour codes (one 64-bit XOR + popcount
// per word) and selects the k nearest in (distance ascending, index ascending)
// order. Semantics are exactly those of the stock-op HammingTopK layer
// (models/layers/hamming_topk.py), which tests check bit for bit.
//
//   candidate_codes  int64 [B, C, W]
//   behaviour_codes  int64 [B, L, W]
//   behaviour_mask   bool  [B, L]      false = padding, never selected
//   indices          int32 [B, C, k]   positions in [0, L); 0 in invalid slots
//   distances        int32 [B, C, k]   0 in invalid slots
//   valid            bool  [B, C, k]   false where fewer than k behaviours are valid
//
// Per (b, c) row, for codes of up to 3 words (192 bits, the usual case):
//   1. distances into a byte buffer (padding -> 255): the XOR + popcount loop
//      itself, nothing else (benchmarks/hamming_reference.c's loop);
//   2. the threshold t (the smallest distance with count(d <= t) >= k) by
//      counting passes over that buffer, 16 bytes per SSE2 instruction, each pass
//      counting two levels; the search starts at the previous row's threshold
//      (rows of one history have similar distance profiles), so one or two passes
//      usually suffice;
//   3. one scan for the bytes <= t (SSE2 compare + movemask): the ones at t fill
//      their slots in index order, the fewer than k below t are placed by a
//      counting sort over their distances.
// Rows are sharded over TensorFlow's intra-op thread pool. Wider codes use the
// histogram + counting-sort path (SelectRowsWide).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace eta {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("EtaHammingTopK")
    .Input("candidate_codes: int64")
    .Input("behaviour_codes: int64")
    .Input("behaviour_mask: bool")
    .Attr("k: int >= 1")
    .Output("indices: int32")
    .Output("distances: int32")
    .Output("valid: bool")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle candidates, behaviours, mask;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &candidates));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &behaviours));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &mask));
      int64_t k;
      TF_RETURN_IF_ERROR(c->GetAttr("k", &k));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(candidates, 2), c->Dim(behaviours, 2), &unused));
      ShapeHandle out = c->MakeShape({c->Dim(candidates, 0), c->Dim(candidates, 1), c->MakeDim(k)});
      c->set_output(0, out);
      c->set_output(1, out);
      c->set_output(2, out);
      return Status();
    })
    .Doc("The k behaviours nearest each candidate in Hamming distance (ETA retrieval).");

constexpr int kMaxByteWords = 3;    // 192 bits: distances and padding fit in a byte
constexpr uint8_t kPadding = 255;   // a byte distance no threshold reaches (t <= 192)
constexpr int64_t kBlock = 64;      // the distance buffer is padded to a multiple of this

inline int Popcount(uint64_t x) { return __builtin_popcountll(x); }

// dist[j] = Hamming distance of query to behaviour j, or kPadding where masked.
template <int kWords>
void ByteDistances(const uint64_t* query, const uint64_t* codes, const bool* mask,
                   bool all_valid, int64_t length, uint8_t* dist) {
  uint64_t q[kWords];
  for (int w = 0; w < kWords; ++w) q[w] = query[w];
  if (all_valid) {
    for (int64_t j = 0; j < length; ++j) {
      int d = 0;
      for (int w = 0; w < kWords; ++w) d += Popcount(q[w] ^ codes[j * kWords + w]);
      dist[j] = static_cast<uint8_t>(d);
    }
  } else {
    for (int64_t j = 0; j < length; ++j) {
      int d = 0;
      for (int w = 0; w < kWords; ++w) d += Popcount(q[w] ^ codes[j * kWords + w]);
      // mask true -> | 0, false -> | 255 (= kPadding); no branch per pair.
      dist[j] = static_cast<uint8_t>(d) | static_cast<uint8_t>(mask[j] ? 0 : kPadding);
    }
  }
}

// (count of dist <= a, count of dist <= b) over padded bytes; a, b in [-1, 254].
inline void CountAtMost(const uint8_t* dist, int64_t padded, int a, int b, int64_t* count_a,
                        int64_t* count_b) {
  int64_t total_a = 0, total_b = 0;
#if defined(__SSE2__)
  const __m128i va = _mm_set1_epi8(static_cast<char>(a < 0 ? 0 : a));
  const __m128i vb = _mm_set1_epi8(static_cast<char>(b < 0 ? 0 : b));
  const __m128i zero = _mm_setzero_si128();
  for (int64_t start = 0; start < padded;) {
    // Byte lanes count at most 255 vectors before they are summed.
    const int64_t stop = std::min(padded, start + 255 * 16);
    __m128i acc_a = zero, acc_b = zero;
    for (int64_t i = start; i < stop; i += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(dist + i));
      acc_a = _mm_sub_epi8(acc_a, _mm_cmpeq_epi8(_mm_max_epu8(x, va), va));  // +1 where x <= a
      acc_b = _mm_sub_epi8(acc_b, _mm_cmpeq_epi8(_mm_max_epu8(x, vb), vb));
    }
    const __m128i sum_a = _mm_sad_epu8(acc_a, zero), sum_b = _mm_sad_epu8(acc_b, zero);
    total_a += _mm_cvtsi128_si32(sum_a) + _mm_extract_epi16(sum_a, 4);
    total_b += _mm_cvtsi128_si32(sum_b) + _mm_extract_epi16(sum_b, 4);
    start = stop;
  }
#else
  for (int64_t i = 0; i < padded; ++i) {
    total_a += dist[i] <= a;
    total_b += dist[i] <= b;
  }
#endif
  *count_a = a < 0 ? 0 : total_a;
  *count_b = b < 0 ? 0 : total_b;
}

// Bit i set where block[i] <= level, for the 64 bytes of a block.
inline uint64_t AtMostMask(const uint8_t* block, int level) {
#if defined(__SSE2__)
  const __m128i v = _mm_set1_epi8(static_cast<char>(level));
  uint64_t bits = 0;
  for (int part = 0; part < 4; ++part) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * part));
    const unsigned at_most = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(x, v), v));
    bits |= static_cast<uint64_t>(at_most) << (16 * part);
  }
  return bits;
#else
  uint64_t bits = 0;
  for (int i = 0; i < 64; ++i) bits |= static_cast<uint64_t>(block[i] <= level) << i;
  return bits;
#endif
}

// The smallest t with count(dist <= t) >= need (need >= 1, and count(dist <=
// max_distance) >= need), and count(dist < t). Starts at guess.
inline int Threshold(const uint8_t* dist, int64_t padded, int64_t need, int max_distance,
                     int guess, int64_t* below) {
  int lo = 0, hi = max_distance;  // invariant: t in [lo, hi]
  int g = std::min(std::max(guess, lo), hi);
  int step = 2;
  bool low_known = false, high_known = false;
  while (true) {
    int64_t at_g, at_g_minus_1;
    CountAtMost(dist, padded, g, g - 1, &at_g, &at_g_minus_1);
    if (at_g >= need) {
      if (g == 0 || at_g_minus_1 < need) {
        *below = at_g_minus_1;
        return g;
      }
      hi = g - 1;  // count(<= g - 1) >= need
      high_known = true;
      g = low_known ? lo + (hi - lo) / 2 : std::max(lo, g - step);
    } else {
      lo = g + 1;
      low_known = true;
      g = high_known ? lo + (hi - lo) / 2 : std::min(hi, g + step);
    }
    step *= 2;
  }
}

// Rows [begin, end) of the byte path; see the comment at the top.
template <int kWords>
void SelectRowsBytes(int64_t begin, int64_t end, int64_t n_candidates, int64_t length, int k,
                     const uint64_t* candidate_codes, const uint64_t* behaviour_codes,
                     const bool* behaviour_mask, int32_t* indices, int32_t* distances,
                     bool* valid) {
  const int max_distance = 64 * kWords;
  const int64_t padded = (length + kBlock - 1) / kBlock * kBlock;
  std::vector<uint8_t> dist_buffer(padded + kBlock, kPadding);
  uint8_t* dist = dist_buffer.data();
  // Scratch for the behaviours below t and at t (each < k, plus one slot that
  // the branch-free scan writes and does not count).
  std::vector<int32_t> scratch(2 * (k + 1));
  int32_t* below_t = scratch.data();
  int32_t* at_t_index = scratch.data() + k + 1;
  int32_t offsets[kMaxByteWords * 64 + 1];
  int64_t history = -1, valid_count = 0;
  bool all_valid = false;
  int guess = max_distance / 2;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / n_candidates;
    const bool* row_mask = behaviour_mask + b * length;
    if (b != history) {  // rows of one history are contiguous: count its mask once
      history = b;
      valid_count = std::count(row_mask, row_mask + length, true);
      all_valid = valid_count == length;
    }
    int32_t* out_index = indices + row * k;
    int32_t* out_distance = distances + row * k;
    bool* out_valid = valid + row * k;
    const int64_t taken = std::min<int64_t>(k, valid_count);
    if (taken > 0) {
      ByteDistances<kWords>(candidate_codes + row * kWords, behaviour_codes + b * length * kWords,
                            row_mask, all_valid, length, dist);
      int64_t below;  // count(dist < t), < taken
      const int t = Threshold(dist, padded, taken, max_distance, guess, &below);
      guess = t;
      const int64_t at_t = taken - below;  // slots of distance t: [below, taken)
      // One scan over the bytes <= t, 64 at a time, without a branch per hit:
      // those below t are kept (all of them go out), those at t fill at_t slots
      // in index order. Once those slots are full only bytes below t are asked for.
      int64_t n_below = 0, n_at = 0;
      int level = t;
      for (int64_t i = 0; i < padded && (n_below < below || n_at < at_t); i += kBlock) {
        for (uint64_t bits = AtMostMask(dist + i, level); bits != 0; bits &= bits - 1) {
          const int64_t j = i + __builtin_ctzll(bits);
          const int d = dist[j];
          below_t[n_below] = static_cast<int32_t>(j);
          n_below += d < t;
          at_t_index[n_at] = static_cast<int32_t>(j);
          n_at += (d == t) & (n_at < at_t);
        }
        if (n_at == at_t) level = t - 1;  // t >= 1 here unless nothing is below t
      }
      for (int64_t i = 0; i < at_t; ++i) {
        out_index[below + i] = at_t_index[i];
        out_distance[below + i] = t;
      }
      // Counting sort of the behaviours below t by distance; stable, so index
      // order holds within a distance.
      std::fill(offsets, offsets + t, 0);
      for (int64_t i = 0; i < n_below; ++i) ++offsets[dist[below_t[i]]];
      for (int d = 0, sum = 0; d < t; ++d) {
        const int count = offsets[d];
        offsets[d] = sum;
        sum += count;
      }
      for (int64_t i = 0; i < n_below; ++i) {
        const int32_t j = below_t[i];
        const int slot = offsets[dist[j]]++;
        out_index[slot] = j;
        out_distance[slot] = dist[j];
      }
    }
    for (int64_t slot = 0; slot < taken; ++slot) out_valid[slot] = true;
    for (int64_t slot = taken; slot < k; ++slot) {
      out_index[slot] = 0;
      out_distance[slot] = 0;
      out_valid[slot] = false;
    }
  }
}

// Rows [begin, end) for any code width: distances and their histogram in one
// pass, the threshold from the cumulative counts, then a counting sort.
void SelectRowsWide(int64_t begin, int64_t end, int64_t n_candidates, int64_t length,
                    int64_t words, int k, const uint64_t* candidate_codes,
                    const uint64_t* behaviour_codes, const bool* behaviour_mask,
                    int32_t* indices, int32_t* distances, bool* valid) {
  const int max_distance = static_cast<int>(64 * words);
  const int padding = max_distance + 1;
  const int bins = max_distance + 2;
  std::vector<int32_t> distance(length);
  std::vector<int32_t> count(bins);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / n_candidates;
    const uint64_t* query = candidate_codes + row * words;
    const uint64_t* codes = behaviour_codes + b * length * words;
    const bool* row_mask = behaviour_mask + b * length;
    std::fill(count.begin(), count.end(), 0);
    for (int64_t j = 0; j < length; ++j) {
      int d = padding;
      if (row_mask[j]) {
        d = 0;
        for (int64_t w = 0; w < words; ++w) d += Popcount(query[w] ^ codes[j * words + w]);
      }
      distance[j] = d;
      ++count[d];
    }
    int32_t* out_index = indices + row * k;
    int32_t* out_distance = distances + row * k;
    bool* out_valid = valid + row * k;
    int selected = 0, threshold = 0;
    for (; threshold <= max_distance; ++threshold) {
      const int next = selected + count[threshold];
      count[threshold] = selected;  // now: the first output slot of this distance
      selected = next;
      if (selected >= k) break;
    }
    if (threshold > max_distance) threshold = max_distance;  // fewer than k valid
    const int taken = std::min(selected, k);
    if (taken > 0) {
      for (int64_t j = 0; j < length; ++j) {
        const int d = distance[j];
        if (d > threshold) continue;
        const int slot = count[d];
        if (slot >= k) continue;  // the threshold's slots are full
        count[d] = slot + 1;
        out_index[slot] = static_cast<int32_t>(j);
        out_distance[slot] = d;
      }
    }
    for (int slot = 0; slot < taken; ++slot) out_valid[slot] = true;
    for (int slot = taken; slot < k; ++slot) {
      out_index[slot] = 0;
      out_distance[slot] = 0;
      out_valid[slot] = false;
    }
  }
}

class EtaHammingTopKOp : public OpKernel {
 public:
  explicit EtaHammingTopKOp(OpKernelConstruction* context) : OpKernel(context) {
    int64_t k;
    OP_REQUIRES_OK(context, context->GetAttr("k", &k));
    k_ = static_cast<int>(k);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& candidates = context->input(0);
    const Tensor& behaviours = context->input(1);
    const Tensor& mask = context->input(2);
    OP_REQUIRES(context, candidates.dims() == 3,
                InvalidArgument("candidate_codes must be [B, C, W], got ",
                                candidates.shape().DebugString()));
    OP_REQUIRES(context, behaviours.dims() == 3,
                InvalidArgument("behaviour_codes must be [B, L, W], got ",
                                behaviours.shape().DebugString()));
    const int64_t batch = candidates.dim_size(0);
    const int64_t n_candidates = candidates.dim_size(1);
    const int64_t words = candidates.dim_size(2);
    const int64_t length = behaviours.dim_size(1);
    OP_REQUIRES(context, behaviours.dim_size(0) == batch && behaviours.dim_size(2) == words,
                InvalidArgument("behaviour_codes ", behaviours.shape().DebugString(),
                                " does not match candidate_codes ",
                                candidates.shape().DebugString()));
    OP_REQUIRES(context, mask.dims() == 2 && mask.dim_size(0) == batch &&
                             mask.dim_size(1) == length,
                InvalidArgument("behaviour_mask must be [B, L] = [", batch, ", ", length,
                                "], got ", mask.shape().DebugString()));
    OP_REQUIRES(context, words >= 1 && words < 1000 && length < (int64_t{1} << 31),
                InvalidArgument("need 1 <= W < 1000 and L < 2^31"));

    const TensorShape out_shape({batch, n_candidates, k_});
    Tensor *indices_t, *distances_t, *valid_t;
    OP_REQUIRES_OK(context, context->allocate_output(0, out_shape, &indices_t));
    OP_REQUIRES_OK(context, context->allocate_output(1, out_shape, &distances_t));
    OP_REQUIRES_OK(context, context->allocate_output(2, out_shape, &valid_t));

    const uint64_t* candidate_codes =
        reinterpret_cast<const uint64_t*>(candidates.flat<int64_t>().data());
    const uint64_t* behaviour_codes =
        reinterpret_cast<const uint64_t*>(behaviours.flat<int64_t>().data());
    const bool* valid_behaviour = mask.flat<bool>().data();
    int32_t* indices = indices_t->flat<int32_t>().data();
    int32_t* distances = distances_t->flat<int32_t>().data();
    bool* valid = valid_t->flat<bool>().data();
    const int k = k_;

    auto select_rows = [&](int64_t begin, int64_t end) {
      switch (words) {
        case 1:
          return SelectRowsBytes<1>(begin, end, n_candidates, length, k, candidate_codes,
                                    behaviour_codes, valid_behaviour, indices, distances, valid);
        case 2:
          return SelectRowsBytes<2>(begin, end, n_candidates, length, k, candidate_codes,
                                    behaviour_codes, valid_behaviour, indices, distances, valid);
        case 3:
          return SelectRowsBytes<3>(begin, end, n_candidates, length, k, candidate_codes,
                                    behaviour_codes, valid_behaviour, indices, distances, valid);
        default:
          return SelectRowsWide(begin, end, n_candidates, length, words, k, candidate_codes,
                                behaviour_codes, valid_behaviour, indices, distances, valid);
      }
    };
    const int64_t rows = batch * n_candidates;
    // Cost per row in cycles, roughly: the distance pass plus a few byte passes.
    const int64_t cost = length * (1 + words) + 8 * k + 64;
    // Shards rows over the intra-op threads (rows of a shard share the
    // threshold guess, so shards are contiguous ranges).
    context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        rows, cost, select_rows);
  }

 private:
  int k_;
};

REGISTER_KERNEL_BUILDER(Name("EtaHammingTopK").Device(DEVICE_CPU), EtaHammingTopKOp);

}  // namespace
}  // namespace eta
