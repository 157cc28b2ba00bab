"""Per-component progress of a LocalDagRunner run, from the orchestrator's own log lines."""

import logging
import re
import sys
import time
from typing import Dict, List, Optional

_EVENT = re.compile(r"Component (\S+) is (running|finished)")
_CACHED = "A cached execution"


class ComponentProgress(logging.Handler):
  """Prints `[i/n] Component ... running` and `... done in Xs` as the run goes.

  Attach with `with ComponentProgress(component_ids): runner.run(...)`; after a
  failure, `current` names the component that was running.
  """

  def __init__(self, component_ids: List[str], stream=None):
    super().__init__(level=logging.INFO)
    self.component_ids = list(component_ids)
    self.stream = stream or sys.stderr
    self.started: Dict[str, float] = {}
    self.seconds: Dict[str, float] = {}
    self.current: Optional[str] = None
    self.cached = set()

  def emit(self, record):
    message = record.getMessage()
    if message.startswith(_CACHED) and self.current:
      self.cached.add(self.current)
      return
    match = _EVENT.search(message)
    if not match:
      return
    component, state = match.groups()
    position = (self.component_ids.index(component) + 1
                if component in self.component_ids else "?")
    prefix = f"[{position}/{len(self.component_ids)}] {component}"
    if state == "running":
      self.started[component] = time.time()
      self.current = component
      print(f"{prefix} running ...", file=self.stream, flush=True)
    else:
      elapsed = time.time() - self.started.get(component, time.time())
      self.seconds[component] = elapsed
      self.current = None
      how = "reused from cache" if component in self.cached else f"done in {elapsed:.1f}s"
      print(f"{prefix} {how}", file=self.stream, flush=True)

  def __enter__(self):
    # absl resets its logger to WARNING whenever absl flags are parsed with the
    # default --verbosity (which happens inside some executors); parse
    # --verbosity=0 (INFO) up front so the component events keep coming.
    from absl import flags
    flags.FLAGS(["eta", "--verbosity=0"], known_only=True)
    logging.getLogger("absl").addHandler(self)
    return self

  def __exit__(self, *exc):
    logging.getLogger("absl").removeHandler(self)
    return False
