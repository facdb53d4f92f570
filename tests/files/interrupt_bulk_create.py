"""Ctrl-C (SIGINT) at random moments of bulk_create, then another writer: never blocked.

Run by tests/integration/test_faults.py in a subprocess (a stray SIGINT must not reach pytest). Prints one
line: ``interrupted N blocked M other K`` (K: exceptions other than KeyboardInterrupt).
"""

import os
import random
import signal
import sqlite3
import sys
import threading
import time


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from models import Project, Sample

    import lineage_nb as ln

    url, attempts = sys.argv[1], int(sys.argv[2])
    random.seed(int(sys.argv[3]))
    ln.connect(url)
    project = Project(name="p").save()
    interrupted = blocked = other = 0
    for attempt in range(attempts):
        rows = [{"name": f"s{i}", "value": 1.0, "project_id": project.id} for i in range(20_000)]
        timer = threading.Timer(random.uniform(0.0, 0.4), lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        kept = []  # the traceback stays alive, as IPython keeps it
        try:
            Sample.bulk_create(rows)
        except KeyboardInterrupt as error:
            kept.append(error)
        except Exception as error:  # Ctrl-C must stay Ctrl-C
            other += 1
            print("other:", type(error).__name__, str(error)[:200], file=sys.stderr)
        timer.cancel()
        try:
            timer.join()
            time.sleep(0.05)
        except KeyboardInterrupt as error:
            kept.append(error)
        interrupted += bool(kept)
        try:
            if url.startswith("sqlite"):
                writer = sqlite3.connect(url.split("///", 1)[1], timeout=0.5, isolation_level=None)
                try:
                    writer.execute("CREATE TABLE IF NOT EXISTS other_writer (x)")
                    writer.execute("INSERT INTO other_writer VALUES (1)")
                finally:
                    writer.close()
            Project(name=f"after {attempt}").save()
        except Exception as error:
            blocked += 1
            print("blocked:", type(error).__name__, str(error)[:200], file=sys.stderr)
    print(f"interrupted {interrupted} blocked {blocked} other {other}")


if __name__ == "__main__":
    main()
