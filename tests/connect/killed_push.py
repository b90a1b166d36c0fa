"""``matchhub-connect`` killed with SIGKILL right after its Nth chunk was received: the fault
the resume tests need (tests/connect/test_push.py), injected by patching the push client in
this process. The shipped CLI has no such hook.

    python -m tests.connect.killed_push N push --definition ... (the CLI's arguments)
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from matchhub.agency.connector import cli
from matchhub.agency.connector.push import Chunk, PushClient


def main() -> None:
    after, argv = int(sys.argv[1]), sys.argv[2:]
    put = PushClient.put
    received = 0

    def put_then_die(client: PushClient, upload_id: str, chunk: Chunk, media: str) -> Any:
        nonlocal received
        receipt = put(client, upload_id, chunk, media)
        received += 1
        if received >= after:
            os.kill(os.getpid(), signal.SIGKILL)
        return receipt

    PushClient.put = put_then_die  # type: ignore[method-assign]
    sys.exit(cli.run(argv))


if __name__ == "__main__":
    main()
