"""What a process tree uses while a benchmark runs: peak memory and CPU seconds (psutil)."""

from __future__ import annotations

import threading

GIB = 1024**3


class TreeUsage:
    """What a process tree uses while the `with` block runs, sampled every `interval` s in a thread (psutil):
    the peak of the summed RSS of `root` and its descendants, split by process at that peak, and the CPU
    seconds of each tree of `cpu_roots` (by name) from start to end.

    For the ETL the tree is the job's own process (bench/etl_job.py, the Spark driver, as Glue runs it), the JVM it
    starts and the JVM's Python workers; the embedded PostgreSQL is not in it (pg_ctl detaches the server). A page
    shared by forked workers counts once per process in the summed RSS, so the peak is an upper bound. CPU is each
    live process's user + system time plus that of its children already waited for (so a worker that exits still
    counts), read at the start and at the end: a tree whose root has ended by then counts as None."""

    def __init__(self, root: int, cpu_roots: dict[str, int | None], interval: float = 0.2):
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(root)
        self.cpu_roots = {name: psutil.Process(pid) if pid else None for name, pid in cpu_roots.items()}
        self.interval = interval
        self.peak_rss = 0
        self.peak_by_process: dict[str, int] = {}
        self.cpu_seconds: dict[str, float | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-usage", daemon=True)

    def _tree(self, root) -> list:
        try:
            return [root, *root.children(recursive=True)]
        except self._psutil.NoSuchProcess:
            return []

    def _kind(self, process) -> str:
        if process.pid == self.root.pid:
            return "driver"
        return "jvm" if process.name() == "java" else "workers"

    def sample_memory(self) -> None:
        total, by_kind = 0, {"driver": 0, "jvm": 0, "workers": 0}
        for process in self._tree(self.root):
            try:
                rss, kind = process.memory_info().rss, self._kind(process)
            except self._psutil.NoSuchProcess:  # ended between the listing and the reading (zombies too)
                continue
            total += rss
            by_kind[kind] += rss
        if total > self.peak_rss:
            self.peak_rss, self.peak_by_process = total, by_kind

    def _cpu(self) -> dict[str, float | None]:
        seconds: dict[str, float | None] = {}
        for name, root in self.cpu_roots.items():
            if root is None:
                seconds[name] = None
                continue
            tree = self._tree(root)
            if not tree:  # the root has ended: its CPU cannot be read any more
                seconds[name] = None
                continue
            total = 0.0
            for process in tree:
                try:
                    t = process.cpu_times()
                except self._psutil.NoSuchProcess:
                    continue
                total += t.user + t.system + t.children_user + t.children_system
            seconds[name] = total
        return seconds

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_memory()

    def __enter__(self) -> TreeUsage:
        self._cpu_start = self._cpu()
        self.sample_memory()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample_memory()
        end = self._cpu()
        self.cpu_seconds = {
            name: None if end[name] is None or self._cpu_start[name] is None else end[name] - self._cpu_start[name]
            for name in self.cpu_roots
        }
