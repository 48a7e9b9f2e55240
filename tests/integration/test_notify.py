"""The deploy report's notifications against a local webhook receiver: the summary posted in
Slack's and the generic JSON format, a failing answer retried, a webhook that is down only a
warning (the run's result unchanged), and a webhook's secret path never in the output."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from helpers import run_playbook


class Receiver:
    """Records every POST (path, JSON body); answers 503 to the first `fail_first` of a path."""

    def __init__(self, fail_first=None):
        self.posts, self.fail_first = [], dict(fail_first or {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"))
                receiver.posts.append((self.path, body))
                failing = receiver.fail_first.get(self.path, 0) > 0
                if failing:
                    receiver.fail_first[self.path] -= 1
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def receiver():
    hooks = Receiver(fail_first={"/services/T1/B1/SECRETPATH": 1})
    yield hooks
    hooks.stop()


def test_the_summary_reaches_the_webhooks_and_a_dead_one_is_only_a_warning(tmp_path, receiver):
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.debug: {msg: hello}\n")
    dead = "http://127.0.0.1:%d/dead/SECRETDEAD" % closed_port()
    env = {"PRODREADY_NOTIFY_WEBHOOKS": "slack=http://127.0.0.1:%d/services/T1/B1/SECRETPATH" % receiver.port,
           "PRODREADY_NOTIFY_RETRIES": "2", "PRODREADY_NOTIFY_TIMEOUT": "2",
           "PRODREADY_REPORT_DIR": str(tmp_path / "reports")}
    extra = {"deploy_notify_webhooks": [{"url": "http://127.0.0.1:%d/generic" % receiver.port, "format": "json"},
                                        {"url": dead}]}
    proc = run_playbook(play, extra_vars=extra, env=env, timeout=120)
    assert proc.returncode == 0, proc.output[-3000:]
    slack = [body for path, body in receiver.posts if path.startswith("/services/")]
    assert len(slack) == 2  # the 503 was retried
    assert slack[-1]["text"].startswith("DEPLOY REPORT: OK (play.yml)")
    generic = [body for path, body in receiver.posts if path == "/generic"]
    assert len(generic) == 1 and generic[0]["outcome"] == "ok" and generic[0]["kind"] == "deploy_report"
    assert generic[0]["hosts"]["localhost"]["outcome"] in ("ok", "unchanged")
    assert generic[0]["summary"] == slack[-1]["text"]
    assert "deploy_report: notified http://127.0.0.1:%d/... (slack)" % receiver.port in proc.output
    assert "did not take the report after 2 tries" in proc.flat and "the run's result is unchanged" in proc.flat
    assert "SECRETPATH" not in proc.output and "SECRETDEAD" not in proc.output


def test_check_mode_notifies_nobody(tmp_path, receiver):
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hello}\n")
    env = {"PRODREADY_NOTIFY_WEBHOOKS": "http://127.0.0.1:%d/generic" % receiver.port,
           "PRODREADY_REPORT_DIR": str(tmp_path / "reports")}
    proc = run_playbook(play, env=env, check=True, timeout=120)
    assert proc.returncode == 0 and receiver.posts == []
