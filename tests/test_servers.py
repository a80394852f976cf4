"""The real servers of tests/support: Redis that can crash and come back, and gunicorn as the Procfile runs it."""

import urllib.request

import pytest

from support import Gunicorn


@pytest.mark.redis
def test_redis_comes_back_empty_on_the_same_port_after_a_crash(redis_server):
    client = redis_server.client()
    client.set("reply", "partial")
    redis_server.restart()
    assert redis_server.client().get("reply") is None  # nothing persisted
    redis_server.client().set("reply", "again")
    assert redis_server.client().get("reply") == b"again"
    client.close()


@pytest.mark.gunicorn
def test_two_gunicorns_serve_at_once_and_stop(tmp_path):
    settings = {"SECRET_KEY": "test-secret-of-at-least-32-characters", "GUNICORN_CMD_ARGS": "--workers=1"}
    first = Gunicorn({**settings, "STORAGE_URL": f"file://{tmp_path}/one"}).start()
    second = Gunicorn({**settings, "STORAGE_URL": f"file://{tmp_path}/two"}).start()
    try:
        for server in (first, second):
            assert urllib.request.urlopen(server.url + "/auth/login", timeout=10).status == 200
            assert len(server.worker_pids()) == 1
        first.kill()
        assert not first.running() and first.worker_pids() == []
        assert urllib.request.urlopen(second.url + "/auth/login", timeout=10).status == 200
    finally:
        first.stop()
        second.stop()
    assert not second.running()
