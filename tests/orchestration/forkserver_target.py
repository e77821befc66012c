"""What the fork-server tests fork into instead of ``prefect.engine``: report the request's
environment and folder, then sleep or exit as told (``TARGET_SLEEP``, ``TARGET_EXIT``)."""

import os
import sys
import time

if __name__ == "__main__":
    print(f"run {os.environ.get('PREFECT__FLOW_RUN_ID')} in {os.getcwd()} pid {os.getpid()}")
    print(f"args {sys.argv[1:]}", flush=True)
    time.sleep(float(os.environ.get("TARGET_SLEEP", "0")))
    sys.exit(int(os.environ.get("TARGET_EXIT", "0")))
