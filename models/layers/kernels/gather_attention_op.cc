// EtaGatherAttention: the gather + attention core of ETA's target attention at
// inference, fused (models/layers/target_attention.py, TargetAttention.attend_gathered).
//
// ETA scores each candidate against the k behaviours its Hamming top-k retrieved
// (arXiv 2108.04468). Done with stock ops, the k behaviour vectors of every
// candidate are first gathered into a [B, C, k, D] tensor (B * C * k * D floats,
// 12.6 MB for C = 1024, k = 48, D = 64) and then fed to C small batched
// matrix products. This op reads each retrieved behaviour in place instead, once
// per (candidate, slot), straight from the [B, L, D] history, while it is hot in
// cache:
//
//   queries     float [B, C, H, D]  per head h, the candidate mapped into the
//                                   behaviours' space and scaled (q Wq_h Wk_h^T /
//                                   sqrt(head_dim), computed by the layer)
//   behaviours  float [B, L, D]     the history (keys = values)
//   indices     int32 [B, C, k]     the retrieved positions in [0, L)
//   valid       bool  [B, C, k]     false: an empty slot, weight exactly 0
//   pooled      float [B, C, H, D]  per head, sum_j w_hj behaviours[indices_j],
//                                   w_h = softmax over the valid slots of
//                                   queries_h . behaviours[indices_j]; all zeros
//                                   where no slot is valid
//
// Semantics are those of TargetAttention's stock-op multi-head path on the
// gathered behaviours (masked logits floored at float min, softmax over k,
// weights times values), which tests compare within float tolerance: the sums
// run in another order. The layer applies the output projection (and nothing
// else: an empty row is zeros here, and zeros stay zeros through it).
// An index outside [0, L) in a valid slot is an InvalidArgument error, as in
// tf.gather; empty slots' indices are never read.
// Rows (b, c) are sharded over TensorFlow's intra-op thread pool. On x86-64 the
// row kernel is compiled twice (AVX2 and the baseline) and picked at load
// time, so one library runs on every machine.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("EtaGatherAttention")
    .Input("queries: float")
    .Input("behaviours: float")
    .Input("indices: int32")
    .Input("valid: bool")
    .Output("pooled: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle queries, behaviours, indices, valid;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &queries));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &behaviours));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &indices));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &valid));
      TF_RETURN_IF_ERROR(c->Merge(indices, valid, &indices));
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(queries, 0), c->Dim(behaviours, 0), &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(queries, 0), c->Dim(indices, 0), &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(queries, 1), c->Dim(indices, 1), &unused));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(queries, 3), c->Dim(behaviours, 2), &unused));
      c->set_output(0, queries);
      return Status();
    })
    .Doc("Per candidate, softmax attention over the behaviours at its retrieved indices "
         "(ETA's gather + target attention, fused).");

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__clang__)
#define ETA_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ETA_TARGET_CLONES
#endif

constexpr int kLanes = 8;

// x . y over n floats, in kLanes independent partial sums (so that it vectorises).
inline __attribute__((always_inline)) float Dot(const float* x, const float* y, int64_t n) {
  float partial[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) partial[l] += x[i + l] * y[i + l];
  }
  float sum = 0;
  for (; i < n; ++i) sum += x[i] * y[i];
  for (int l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

struct Shapes {
  int64_t n_candidates, length, heads, dim, k;
};

// Rows [begin, end) of B * C. scratch: 2 * k floats and k pointers.
// Returns false on an index outside [0, L) in a valid slot.
ETA_TARGET_CLONES
bool AttendRows(int64_t begin, int64_t end, const Shapes& s, const float* queries,
                const float* behaviours, const int32_t* indices, const bool* valid,
                float* pooled) {
  const int64_t k = s.k, dim = s.dim, heads = s.heads;
  std::vector<const float*> rows(k);
  std::vector<float> weights(k);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / s.n_candidates;
    const float* history = behaviours + b * s.length * dim;
    const int32_t* slot_index = indices + r * k;
    const bool* slot_valid = valid + r * k;
    float* out = pooled + r * heads * dim;
    std::fill(out, out + heads * dim, 0.0f);
    int64_t n = 0;  // the valid slots' rows, in slot order
    for (int64_t j = 0; j < k; ++j) {
      if (!slot_valid[j]) continue;
      const int32_t index = slot_index[j];
      if (index < 0 || index >= s.length) return false;
      rows[n++] = history + static_cast<int64_t>(index) * dim;
    }
    if (n == 0) continue;  // an empty row: zeros
    for (int64_t h = 0; h < heads; ++h) {
      const float* q = queries + (r * heads + h) * dim;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        weights[j] = Dot(q, rows[j], dim);
        top = std::max(top, weights[j]);
      }
      float total = 0;
      for (int64_t j = 0; j < n; ++j) {
        weights[j] = std::exp(weights[j] - top);
        total += weights[j];
      }
      const float inverse = 1.0f / total;
      float* out_h = out + h * dim;
      for (int64_t j = 0; j < n; ++j) {
        const float w = weights[j] * inverse;
        const float* row = rows[j];
        for (int64_t d = 0; d < dim; ++d) out_h[d] += w * row[d];
      }
    }
  }
  return true;
}

class EtaGatherAttentionOp : public OpKernel {
 public:
  explicit EtaGatherAttentionOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& queries = context->input(0);
    const Tensor& behaviours = context->input(1);
    const Tensor& indices = context->input(2);
    const Tensor& valid = context->input(3);
    OP_REQUIRES(context, queries.dims() == 4,
                InvalidArgument("queries must be [B, C, H, D], got ",
                                queries.shape().DebugString()));
    OP_REQUIRES(context, behaviours.dims() == 3,
                InvalidArgument("behaviours must be [B, L, D], got ",
                                behaviours.shape().DebugString()));
    OP_REQUIRES(context, indices.dims() == 3 && indices.shape() == valid.shape(),
                InvalidArgument("indices and valid must be one [B, C, k] shape, got ",
                                indices.shape().DebugString(), " and ",
                                valid.shape().DebugString()));
    Shapes s;
    const int64_t batch = queries.dim_size(0);
    s.n_candidates = queries.dim_size(1);
    s.heads = queries.dim_size(2);
    s.dim = queries.dim_size(3);
    s.length = behaviours.dim_size(1);
    s.k = indices.dim_size(2);
    OP_REQUIRES(context, behaviours.dim_size(0) == batch && behaviours.dim_size(2) == s.dim,
                InvalidArgument("behaviours ", behaviours.shape().DebugString(),
                                " does not match queries ", queries.shape().DebugString()));
    OP_REQUIRES(context, indices.dim_size(0) == batch && indices.dim_size(1) == s.n_candidates,
                InvalidArgument("indices ", indices.shape().DebugString(),
                                " does not match queries ", queries.shape().DebugString()));

    Tensor* pooled_t;
    OP_REQUIRES_OK(context, context->allocate_output(0, queries.shape(), &pooled_t));
    const int64_t rows = batch * s.n_candidates;
    if (rows == 0 || s.heads == 0 || s.dim == 0) return;
    const float* q = queries.flat<float>().data();
    const float* history = behaviours.flat<float>().data();
    const int32_t* index = indices.flat<int32_t>().data();
    const bool* slot_valid = valid.flat<bool>().data();
    float* pooled = pooled_t->flat<float>().data();
    std::atomic<bool> in_range(true);
    auto attend = [&](int64_t begin, int64_t end) {
      if (!AttendRows(begin, end, s, q, history, index, slot_valid, pooled)) {
        in_range.store(false);
      }
    };
    // Cycles per row, roughly: two passes of H * k * D multiply-adds.
    const int64_t cost = 2 * s.heads * s.k * s.dim + 32 * s.k;
    context->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(rows, cost, attend);
    OP_REQUIRES(context, in_range.load(),
                InvalidArgument("an index of a valid slot is outside [0, ", s.length, ")"));
  }
};

REGISTER_KERNEL_BUILDER(Name("EtaGatherAttention").Device(DEVICE_CPU), EtaGatherAttentionOp);

}  // namespace
}  // namespace eta
