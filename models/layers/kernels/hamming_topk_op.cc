// EtaHammingTopK: fused SimHash retrieval for ETA (arXiv 2108.04468).
//
// For every (row b, candidate c) it computes the Hamming distance of the
// candidate's code to each of the L behaviour codes (one 64-bit XOR + popcount
// per word), and selects the k nearest in (distance ascending, index ascending)
// order with a counting sort over the 64 * W + 1 possible distances: two passes
// over L per candidate, all in L1 cache, no comparison sort and no [B, C, L]
// tensor in memory. Semantics are exactly those of the stock-op HammingTopK
// layer (models/layers/hamming_topk.py), which tests check bit for bit.
//
//   candidate_codes  int64 [B, C, W]
//   behaviour_codes  int64 [B, L, W]
//   behaviour_mask   bool  [B, L]      false = padding, never selected
//   indices          int32 [B, C, k]   positions in [0, L); 0 in invalid slots
//   distances        int32 [B, C, k]   0 in invalid slots
//   valid            bool  [B, C, k]   false where fewer than k behaviours are valid

#include <algorithm>
#include <cstdint>
#include <vector>

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

template <int kWords>
inline int Distance(const int64_t* a, const int64_t* b, int words) {
  int total = 0;
  const int n = kWords > 0 ? kWords : words;
  for (int w = 0; w < n; ++w) {
    total += __builtin_popcountll(static_cast<uint64_t>(a[w] ^ b[w]));
  }
  return total;
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

    const int64_t* candidate_codes = candidates.flat<int64_t>().data();
    const int64_t* behaviour_codes = behaviours.flat<int64_t>().data();
    const bool* valid_behaviour = mask.flat<bool>().data();
    int32_t* indices = indices_t->flat<int32_t>().data();
    int32_t* distances = distances_t->flat<int32_t>().data();
    bool* valid = valid_t->flat<bool>().data();
    const int k = k_;
    const int max_distance = static_cast<int>(64 * words);

    auto select_rows = [&](int64_t begin, int64_t end) {
      std::vector<uint16_t> distance(length);
      // Four interleaved histograms: consecutive behaviours often share a
      // distance, and one histogram would serialise on its increments.
      const int bins = max_distance + 2;
      std::vector<int32_t> histograms(4 * bins);
      int32_t* count = histograms.data();
      int64_t mask_row = -1;
      bool all_valid = false;
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / n_candidates;
        const int64_t* query = candidate_codes + row * words;
        const int64_t* codes = behaviour_codes + b * length * words;
        const bool* row_mask = valid_behaviour + b * length;
        std::fill(histograms.begin(), histograms.end(), 0);
        // Pass 1: distances and their histogram; padding goes to an extra bin.
        const int padding = max_distance + 1;
        if (b != mask_row) {  // rows of one history are contiguous: check its mask once
          mask_row = b;
          all_valid = std::all_of(row_mask, row_mask + length, [](bool v) { return v; });
        }
        if (words == 1 && all_valid) {  // no padding (a `score` request): no branch per pair
          const uint64_t q = static_cast<uint64_t>(query[0]);
          int64_t j = 0;
          for (; j + 4 <= length; j += 4) {
            for (int lane = 0; lane < 4; ++lane) {
              const int d = __builtin_popcountll(q ^ static_cast<uint64_t>(codes[j + lane]));
              distance[j + lane] = static_cast<uint16_t>(d);
              ++count[lane * bins + d];
            }
          }
          for (; j < length; ++j) {
            const int d = __builtin_popcountll(q ^ static_cast<uint64_t>(codes[j]));
            distance[j] = static_cast<uint16_t>(d);
            ++count[d];
          }
        } else if (words == 1) {
          const uint64_t q = static_cast<uint64_t>(query[0]);
          int64_t j = 0;
          for (; j + 4 <= length; j += 4) {
            for (int lane = 0; lane < 4; ++lane) {
              const int d = row_mask[j + lane]
                  ? __builtin_popcountll(q ^ static_cast<uint64_t>(codes[j + lane])) : padding;
              distance[j + lane] = static_cast<uint16_t>(d);
              ++count[lane * bins + d];
            }
          }
          for (; j < length; ++j) {
            const int d = row_mask[j]
                ? __builtin_popcountll(q ^ static_cast<uint64_t>(codes[j])) : padding;
            distance[j] = static_cast<uint16_t>(d);
            ++count[d];
          }
        } else {
          for (int64_t j = 0; j < length; ++j) {
            const int d = row_mask[j] ? Distance<0>(query, codes + j * words, words) : padding;
            distance[j] = static_cast<uint16_t>(d);
            ++count[(j & 3) * bins + d];
          }
        }
        for (int d = 0; d < bins; ++d) {
          count[d] += count[bins + d] + count[2 * bins + d] + count[3 * bins + d];
        }
        // The threshold bin: the smallest distance whose cumulative count reaches k.
        int32_t* out_index = indices + row * k;
        int32_t* out_distance = distances + row * k;
        bool* out_valid = valid + row * k;
        int selected = 0, threshold = 0;
        for (; threshold <= max_distance; ++threshold) {
          const int next = selected + count[threshold];
          count[threshold] = selected;  // now: the first output slot of this bin
          selected = next;
          if (selected >= k) break;
        }
        if (threshold > max_distance) threshold = max_distance;  // fewer than k valid
        const int taken = selected < k ? selected : k;
        // Pass 2: counting sort of the chosen bins, in index order within a bin.
        if (taken > 0) {
          for (int64_t j = 0; j < length; ++j) {
            const int d = distance[j];
            if (d > threshold) continue;
            const int slot = count[d];
            if (slot >= k) continue;  // the threshold bin is full
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
    };
    const int64_t rows = batch * n_candidates;
    // Cost per row in cycles, roughly: two passes over L plus the histogram.
    const int64_t cost = length * (3 + words) + max_distance + k;
    context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
        rows, cost, select_rows);
  }

 private:
  int k_;
};

REGISTER_KERNEL_BUILDER(Name("EtaHammingTopK").Device(DEVICE_CPU), EtaHammingTopKOp);

}  // namespace
}  // namespace eta
