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
// Rows (b, c) are sharded over TensorFlow's intra-op thread pool. On x86-64 with
// AVX2 + FMA (checked at run time, so one library runs on every machine) and D a
// multiple of 8, the rows run through an intrinsics kernel (four slots' logits at
// a time, a vectorised exp, the weighted sums in registers); elsewhere through
// plain C++.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
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

struct Shapes {
  int64_t n_candidates, length, heads, dim, k;
};

// Collects the rows of row r's valid slots (slot order) into rows; returns their
// number, or -1 for an index outside [0, L).
inline int64_t ValidRows(int64_t r, const Shapes& s, const float* behaviours,
                         const int32_t* indices, const bool* valid, const float** rows) {
  const float* history = behaviours + (r / s.n_candidates) * s.length * s.dim;
  const int32_t* slot_index = indices + r * s.k;
  const bool* slot_valid = valid + r * s.k;
  int64_t n = 0;
  for (int64_t j = 0; j < s.k; ++j) {
    if (!slot_valid[j]) continue;
    const int32_t index = slot_index[j];
    if (index < 0 || index >= s.length) return -1;
    rows[n++] = history + static_cast<int64_t>(index) * s.dim;
  }
  return n;
}

// Plain C++, any D: rows [begin, end) of B * C. Returns false on a bad index.
bool AttendRowsPortable(int64_t begin, int64_t end, const Shapes& s, const float* queries,
                        const float* behaviours, const int32_t* indices, const bool* valid,
                        float* pooled) {
  const int64_t dim = s.dim, heads = s.heads;
  std::vector<const float*> rows(s.k);
  std::vector<float> weights(s.k);
  for (int64_t r = begin; r < end; ++r) {
    float* out = pooled + r * heads * dim;
    std::fill(out, out + heads * dim, 0.0f);
    const int64_t n = ValidRows(r, s, behaviours, indices, valid, rows.data());
    if (n < 0) return false;
    for (int64_t h = 0; h < heads && n > 0; ++h) {
      const float* q = queries + (r * heads + h) * dim;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        float dot = 0;
        for (int64_t d = 0; d < dim; ++d) dot += q[d] * rows[j][d];
        weights[j] = dot;
        top = std::max(top, dot);
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
        for (int64_t d = 0; d < dim; ++d) out_h[d] += w * rows[j][d];
      }
    }
  }
  return true;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define ETA_HAVE_AVX2_PATH 1

#define ETA_AVX2 __attribute__((target("avx2,fma")))

// exp(x) for x <= 0, 8 lanes: Cephes' expf (relative error about 1e-7, as Eigen's
// vectorised exp that TensorFlow's softmax uses); x below -87 gives about 1e-38
// (weights that small are 0 to float precision next to the row's largest, 1).
ETA_AVX2 inline __m256 ExpNonPositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  __m256 fx = _mm256_floor_ps(
      _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i exponent = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(exponent));
}

ETA_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// The sums of a0, a1, a2, a3's eight lanes each, as one 4-lane vector.
ETA_AVX2 inline __m128 HorizontalSums4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 sums = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(sums), _mm256_extractf128_ps(sums, 1));
}

// out[0, 8 * kChunks) = sum_j weights[j] * rows[j][offset + ...], in registers.
template <int kChunks>
ETA_AVX2 inline void WeightedSum(const float* const* rows, const float* weights, int64_t n,
                                 int64_t offset, float* out) {
  __m256 acc[kChunks];
  for (int c = 0; c < kChunks; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 w = _mm256_set1_ps(weights[j]);
    const float* row = rows[j] + offset;
    for (int c = 0; c < kChunks; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(row + 8 * c), acc[c]);
  }
  for (int c = 0; c < kChunks; ++c) _mm256_storeu_ps(out + 8 * c, acc[c]);
}

// AVX2 + FMA, D a multiple of 8: as AttendRowsPortable (within float rounding).
ETA_AVX2 bool AttendRowsAvx2(int64_t begin, int64_t end, const Shapes& s, const float* queries,
                             const float* behaviours, const int32_t* indices, const bool* valid,
                             float* pooled) {
  const int64_t dim = s.dim, heads = s.heads;
  std::vector<const float*> rows(s.k + 3);
  std::vector<float> weights(s.k + 8);
  for (int64_t r = begin; r < end; ++r) {
    float* out = pooled + r * heads * dim;
    const int64_t n = ValidRows(r, s, behaviours, indices, valid, rows.data());
    if (n < 0) return false;
    if (n == 0) {
      std::fill(out, out + heads * dim, 0.0f);
      continue;
    }
    for (int64_t j = n; j < n + 3; ++j) rows[j] = rows[0];  // pads a group of 4
    for (int64_t h = 0; h < heads; ++h) {
      const float* q = queries + (r * heads + h) * dim;
      // Logits, four slots at a time (independent chains).
      for (int64_t j = 0; j < n; j += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t d = 0; d < dim; d += 8) {
          const __m256 x = _mm256_loadu_ps(q + d);
          a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(rows[j] + d), a0);
          a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(rows[j + 1] + d), a1);
          a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(rows[j + 2] + d), a2);
          a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(rows[j + 3] + d), a3);
        }
        _mm_storeu_ps(&weights[j], HorizontalSums4(a0, a1, a2, a3));
      }
      float top = weights[0];
      for (int64_t j = 1; j < n; ++j) top = std::max(top, weights[j]);
      // Softmax over the n valid slots; lanes past n are computed and not summed.
      const __m256 shift = _mm256_set1_ps(top);
      __m256 sums = _mm256_setzero_ps();
      int64_t j = 0;
      for (; j + 8 <= n; j += 8) {
        const __m256 e = ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(&weights[j]), shift));
        _mm256_storeu_ps(&weights[j], e);
        sums = _mm256_add_ps(sums, e);
      }
      float total = HorizontalSum(sums);
      if (j < n) {
        alignas(32) float tail[8];
        _mm256_store_ps(tail, ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(&weights[j]), shift)));
        for (int64_t t = 0; j + t < n; ++t) {
          weights[j + t] = tail[t];
          total += tail[t];
        }
      }
      const __m256 inverse = _mm256_set1_ps(1.0f / total);
      for (j = 0; j < n; j += 8) {
        _mm256_storeu_ps(&weights[j], _mm256_mul_ps(_mm256_loadu_ps(&weights[j]), inverse));
      }
      // Weighted sums, 64 floats of D at a time in registers.
      float* out_h = out + h * dim;
      int64_t d = 0;
      for (; d + 64 <= dim; d += 64) WeightedSum<8>(rows.data(), weights.data(), n, d, out_h + d);
      switch ((dim - d) / 8) {
        case 7: WeightedSum<7>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 6: WeightedSum<6>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 5: WeightedSum<5>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 4: WeightedSum<4>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 3: WeightedSum<3>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 2: WeightedSum<2>(rows.data(), weights.data(), n, d, out_h + d); break;
        case 1: WeightedSum<1>(rows.data(), weights.data(), n, d, out_h + d); break;
        default: break;
      }
    }
  }
  return true;
}
#endif

// The AVX2 path where the CPU has it and D suits it, else the portable one.
bool AttendRows(int64_t begin, int64_t end, const Shapes& s, const float* queries,
                const float* behaviours, const int32_t* indices, const bool* valid,
                float* pooled) {
#if defined(ETA_HAVE_AVX2_PATH)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && s.dim % 8 == 0) {
    return AttendRowsAvx2(begin, end, s, queries, behaviours, indices, valid, pooled);
  }
#endif
  return AttendRowsPortable(begin, end, s, queries, behaviours, indices, valid, pooled);
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
