"""What the export lock's heartbeat tells a run, from the heartbeat's thread."""

import queue

from bqtui.core.errors import Cancelled, LockLost
from bqtui.pipeline.events import CancelToken
from bqtui.state.locks import ExportLock


class LockWatch:
    """What the lock's heartbeat tells the run: stop (the lock was lost, or `bqtui remove
    --force` asked) and warnings, kept until the run's thread logs them."""

    def __init__(self, lock: ExportLock):
        self.stop = CancelToken()
        self.warnings: queue.SimpleQueue[str] = queue.SimpleQueue()
        lock.start_heartbeat(
            on_lost=lambda: self.stop.cancel(
                LockLost(
                    "Another runner took this export's lock over (was this process frozen?); "
                    "this runner stopped and recorded nothing more."
                )
            ),
            on_cancel_requested=lambda: self.stop.cancel(
                Cancelled("Stopped at a safe point: another bqtui asked (bqtui remove --force).")
            ),
            on_trouble=self.warnings.put,
        )

    def pending_warnings(self) -> list[str]:
        found = []
        while not self.warnings.empty():
            found.append(self.warnings.get_nowait())
        return found
