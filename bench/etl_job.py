"""The Glue job as `python -m bench --only etl` runs it: in a process of its own, as Glue runs its driver, so the
memory and CPU measured are the job's and not the benchmark's (which holds the simulated world and the pandas
baseline's frames).

    python -m bench.etl_job ARGUMENTS_JSON SUMMARY_FILE

ARGUMENTS_JSON is the job's arguments (glue/process_transactions.py `run`); the settings come from the environment
(FRAUD_HOME). SUMMARY_FILE receives the job's summary as JSON, with `cpu_seconds`: this process's tree (driver, JVM,
Python workers) from the job's start to its end."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from bench.usage import TreeUsage
    from fraud.core.settings import Settings
    from glue.process_transactions import run

    args, out = json.loads(argv[1]), Path(argv[2])
    # CPU only (the benchmark samples the memory from outside): read at the start and at the end, the JVM still up
    with TreeUsage(os.getpid(), {"job": os.getpid()}, interval=86_400) as usage:
        summary = run(args, Settings(), report=lambda _: None)
    out.write_text(json.dumps({**summary, "cpu_seconds": usage.cpu_seconds["job"]}))


if __name__ == "__main__":
    main(sys.argv)
