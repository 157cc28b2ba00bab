"""What one request may ask for; every limit is a flag of `eta serve`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
  max_candidates: int = 2048       # candidates per score request, examples per batch
  max_history: int = 4096          # behaviours in one history
  max_message_bytes: int = 64 << 20
  allow_empty_history: bool = False

  @property
  def max_elements(self) -> int:
    """Elements all input tensors of one request may declare together.

    A TensorProto can declare a huge shape with a single value that decoding
    broadcasts, so the declared shapes are bounded before decoding; no honest
    request has more elements than a quarter of the message size in bytes.
    """
    return max(1, self.max_message_bytes // 4)
