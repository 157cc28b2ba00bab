/* The hardware reference for ETA's retrieval: one 64-bit XOR + popcount per
 * (candidate, behaviour) pair and nothing else, single-threaded. The serving
 * benchmark compiles it with the local C compiler and compares TensorFlow's
 * kernels against it. */
#include <stdint.h>

int64_t hamming_reference(const uint64_t* candidates, int64_t n_candidates,
                          const uint64_t* behaviours, int64_t n_behaviours,
                          uint8_t* distances) {
  int64_t checksum = 0;
  for (int64_t c = 0; c < n_candidates; ++c) {
    const uint64_t query = candidates[c];
    uint8_t* row = distances + c * n_behaviours;
    for (int64_t j = 0; j < n_behaviours; ++j) {
      row[j] = (uint8_t)__builtin_popcountll(query ^ behaviours[j]);
    }
    checksum += row[c % n_behaviours];
  }
  return checksum;
}
