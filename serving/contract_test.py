"""serving/contract.py names what models/export.py exports."""

import inspect

from models import export
from serving import contract


def test_names_match_the_export():
  assert contract.SCORE_SIGNATURE == export.SCORE_SIGNATURE
  assert (contract.PROBABILITIES, contract.RETRIEVED_POSITIONS, contract.RETRIEVED_DISTANCES) == (
      export.PROBABILITIES, export.RETRIEVED_POSITIONS, export.RETRIEVED_DISTANCES)
  score_args = list(inspect.signature(export.ServingModule.score.python_function).parameters)[1:]
  assert score_args == list(contract.HISTORY_INPUTS + contract.CANDIDATE_INPUTS +
                            (contract.REQUEST_TIME,))
  assert list(inspect.signature(
      export.ServingModule.serve_examples.python_function).parameters)[1:] == [contract.EXAMPLES]
