"""Named points in a window's export where a test can pause or kill the runner.

``BQTUI_TEST_FAULT="point:action[,point:action…]"`` — action ``die`` (SIGKILL, as an OOM kill
or a power cut would), ``stop`` (SIGSTOP: a frozen process that keeps its pid) or
``pause=SECONDS``; ``point#N`` fires at the N-th time the point is reached. Unset, a
checkpoint costs one dictionary lookup. Points, in order: ``extracted`` (first batch read),
``uploading`` (before a load job), ``load_submitted``, ``merge_submitted``, ``merge_done``
(MERGE finished, not yet recorded), ``recorded``.
"""

import os
import signal
import time
from collections import Counter

ENV = "BQTUI_TEST_FAULT"
_reached: Counter[str] = Counter()


def _plan() -> dict[str, tuple[int, str]]:
    plan = {}
    for item in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(","))):
        point, _, action = item.partition(":")
        name, _, nth = point.partition("#")
        plan[name] = (int(nth or 1), action or "die")
    return plan


def reached(point: str) -> None:
    if ENV not in os.environ:
        return
    _reached[point] += 1
    planned = _plan().get(point)
    if planned is None or planned[0] != _reached[point]:
        return
    action = planned[1]
    if action == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif action.startswith("pause="):
        time.sleep(float(action.removeprefix("pause=")))
