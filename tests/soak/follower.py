"""An app following the results feed through the edge's internal port while the soak runs.

It records when each generation first showed up finished (failed, or every result stored):
that moment minus Rivya's finishing time is the generation's freshness.
"""

from __future__ import annotations

import threading
import time

import httpx

FINAL = ("succeeded", "failed")


class Follower:
    def __init__(self, internal_url: str, token: str) -> None:
        self.url = internal_url + "/results/feed"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.first_final: dict[str, float] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        cursor = ""
        with httpx.Client(headers=self.headers, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    answer = client.get(self.url, params={"after": cursor, "limit": 100, "wait": 2})
                    answer.raise_for_status()
                    page = answer.json()
                except (httpx.HTTPError, ValueError):
                    self.errors += 1
                    self._stop.wait(0.5)
                    continue
                now = time.time()
                for entry in page["data"]:
                    done = entry["status"] == "failed" or (
                        entry["status"] == "succeeded" and entry.get("results_stored_at")
                    )
                    if entry["status"] in FINAL and done:
                        self.first_final.setdefault(entry["task_id"], now)
                cursor = page.get("next_cursor") or cursor
