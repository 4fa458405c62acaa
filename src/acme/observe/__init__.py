"""What operators watch: Prometheus metrics, structured logs and the lag behind the source.

Each watcher is a `SyncObserver` (`observer.py`); `Observers` hands every hook to several of
them, so the console, the logs and the metrics can watch the same pipeline.
"""

from acme.observe.observer import SyncObserver


class Observers(SyncObserver):
    """Forwards every SyncObserver hook to each observer in turn."""

    def __init__(self, *observers: SyncObserver):
        self.observers = observers


def _forward(hook: str):
    def forward(self: Observers, *args, **kwargs) -> None:
        for observer in self.observers:
            getattr(observer, hook)(*args, **kwargs)
    forward.__name__ = hook
    return forward


# Every hook SyncObserver declares, including ones added later, is forwarded.
for _hook in [name for name, value in vars(SyncObserver).items()
              if callable(value) and not name.startswith("_")]:
    setattr(Observers, _hook, _forward(_hook))
