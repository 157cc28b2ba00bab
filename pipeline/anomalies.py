"""ExampleValidator's anomalies, sorted into what stops the run and what is only reported.

Blocking (the run stops before Transform): everything that would make Transform
or the Trainer fail or train on garbage: a missing feature, a wrong type, a
scalar with no or several values, a label outside {0, 1}, an empty split, and
any anomaly type not known to be harmless (fail closed).

Drift (reported in the run summary): new string values, new columns (Transform
ignores them), histories longer than the schema's max_history, distribution
comparators and example-count changes.
"""

import dataclasses
from typing import Iterable, List

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from pipeline.schema import is_history_feature

_Type = anomalies_pb2.AnomalyInfo.Type
# Anomaly types that never break training: reported, never blocking.
DRIFT_TYPES = frozenset({
    _Type.ENUM_TYPE_UNEXPECTED_STRING_VALUES, _Type.SCHEMA_NEW_COLUMN,
    _Type.COMPARATOR_L_INFTY_HIGH, _Type.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    _Type.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH,
    _Type.COMPARATOR_LOW_NUM_EXAMPLES, _Type.COMPARATOR_HIGH_NUM_EXAMPLES,
    _Type.COMPARATOR_CONTROL_DATA_MISSING, _Type.COMPARATOR_TREATMENT_DATA_MISSING,
    _Type.DATASET_HIGH_NUM_EXAMPLES, _Type.FEATURE_TYPE_HIGH_UNIQUE,
    _Type.FEATURE_TYPE_LOW_UNIQUE, _Type.SEMANTIC_DOMAIN_UPDATE})
# The pseudo-type of a split without examples (TFDV sets Anomalies.data_missing).
NO_DATA = "NO_DATA"
DATASET = "(dataset)"


@dataclasses.dataclass(frozen=True)
class Finding:
  """One anomaly of one split.

  Attributes:
    split: `train` or `eval`.
    feature: the feature name, or DATASET for the split as a whole.
    anomaly: the TFDV AnomalyInfo.Type name (e.g. SCHEMA_MISSING_COLUMN) or NO_DATA.
    description: TFDV's short and long description.
    blocking: whether it stops the run.
  """
  split: str
  feature: str
  anomaly: str
  description: str
  blocking: bool

  def __str__(self):
    return f"{self.split}: {self.feature}: {self.description} ({self.anomaly})"


def is_blocking(anomaly_type: int, feature: str, schema: schema_pb2.Schema) -> bool:
  """Whether an anomaly of this type on this feature would break training."""
  if anomaly_type in DRIFT_TYPES:
    return False
  # A history above max_history is longer than expected, not unusable: the
  # model reads only the first long_seq_len entries.
  if (anomaly_type == _Type.FEATURE_TYPE_HIGH_NUMBER_VALUES
      and is_history_feature(schema, feature)):
    return False
  return True


def _reasons(info: anomalies_pb2.AnomalyInfo):
  if info.reason:
    return list(info.reason)
  return [anomalies_pb2.AnomalyInfo.Reason(type=_Type.UNKNOWN_TYPE,
                                           short_description=info.short_description,
                                           description=info.description)]


def _describe(reason) -> str:
  short, long = reason.short_description.strip(), reason.description.strip()
  return f"{short}: {long}" if short and long and short != long else (short or long)


def classify(anomalies: anomalies_pb2.Anomalies, schema: schema_pb2.Schema,
             split: str) -> List[Finding]:
  """Every anomaly reason of one split's Anomalies proto, as Findings, features sorted."""
  findings = []
  if anomalies.data_missing:
    findings.append(Finding(split, DATASET, NO_DATA, "the split has no examples", True))
  infos = sorted(anomalies.anomaly_info.items())
  if anomalies.HasField("dataset_anomaly_info"):
    infos.append((DATASET, anomalies.dataset_anomaly_info))
  for feature, info in infos:
    for reason in _reasons(info):
      findings.append(Finding(split, feature, _Type.Name(reason.type), _describe(reason),
                              is_blocking(reason.type, feature, schema)))
  return findings


class DataValidationError(RuntimeError):
  """Blocking anomalies: the examples do not fit the schema; names every one."""

  def __init__(self, findings: Iterable[Finding], anomalies_uri: str = ""):
    self.findings = [f for f in findings if f.blocking]
    lines = [f"{len(self.findings)} blocking anomal{'y' if len(self.findings) == 1 else 'ies'}"
             " in the examples (they do not fit the pipeline's schema, and Transform "
             "or the Trainer would fail on them):"]
    lines += [f"  {finding}" for finding in self.findings]
    if anomalies_uri:
      lines.append(f"ExampleValidator's anomalies: {anomalies_uri}")
    super().__init__("\n".join(lines))
