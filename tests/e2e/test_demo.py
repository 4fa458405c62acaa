"""`acme demo` end to end (short run): the API answers and the freshness line reports
sub-second lag while traffic runs."""

import os
import re
import subprocess
import sys
import threading

import httpx

from acme.ports import free_port
from tests.e2e.cli import acme


def test_demo_serves_fresh_answers_under_traffic(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    api_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "acme", "demo", "--orders", "3000", "--rate", "40",
         "--duration", "25", "--port", str(free_port()), "--api-port", str(api_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    answered = threading.Event()
    answers: list[dict] = []

    def ask_api() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
            answers.append(client.get("/analytics/orders/top", params={"limit": 3}).json())
            answers.append(client.get("/status").json())
        answered.set()

    try:
        for line in process.stdout:
            lines.append(line)
            if "freshness: lag" in line and "ms" in line and not answered.is_set() \
                    and sum("freshness: lag" in x and "ms" in x for x in lines) == 3:
                threading.Thread(target=ask_api, daemon=True).start()
        assert process.wait(timeout=120) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
        acme("source", "down", "--purge", env=env)
    output = "".join(lines)
    assert "API at http://127.0.0.1:" in output and "demo stopped" in output
    assert answered.wait(10), output
    assert len(answers[0]["rows"]) == 3 and answers[0]["freshness"]["commit_lsn"]
    assert answers[1]["rows"]["current.orders"] >= 3000
    lags = [int(m) for m in re.findall(r"freshness: lag (\d+) ms", output)]
    assert len(lags) >= 5, output
    steady = sorted(lags[2:])
    assert steady[len(steady) // 2] < 1000, lags
    assert max(lags[-3:]) < 1000, lags
