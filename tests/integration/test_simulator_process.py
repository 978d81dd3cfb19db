"""The provider simulator serving from a process of its own (``SimulatorProcess``, for a traced benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from rostersync_tools.local.simulator import SimulatorProcess


def test_a_simulator_process_serves_its_dataset_until_stopped(tmp_path: Path) -> None:
    ids = ["5e0000000000000000000001", "5e0000000000000000000002"]
    (tmp_path / "users.json").write_text(
        json.dumps({"data": [{"data": {"id": i, "roles": {"student": {}}}} for i in ids]}), encoding="utf-8"
    )
    simulator = SimulatorProcess(tmp_path, token="process-token").start()  # noqa: S106
    try:
        url = f"{simulator.base_url}/v3.0/users"
        answer = requests.get(url, headers={"Authorization": "Bearer process-token"}, timeout=30)
        assert answer.status_code == 200
        assert [item["data"]["id"] for item in answer.json()["data"]] == ids
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
    finally:
        simulator.stop()
    with pytest.raises(requests.ConnectionError):  # its process ended
        requests.get(url, timeout=5)
