"""The export's tf.function arguments carry the API's input names (their order matters to
positional callers and to the signature's structured inputs)."""

import inspect

from models import export
from models import signatures


def test_names_match_the_export():
  score_args = list(inspect.signature(export.ServingModule.score.python_function).parameters)[1:]
  assert score_args == list(signatures.HISTORY_INPUTS + signatures.CANDIDATE_INPUTS +
                            (signatures.REQUEST_TIME,))
  assert list(inspect.signature(
      export.ServingModule.serve_examples.python_function).parameters)[1:] == [signatures.EXAMPLES]
