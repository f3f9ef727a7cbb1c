"""A fake OpenAI-compatible chat endpoint for judge and translator tests: scripted failures,
then rubric-shaped replies (objlab's rubric, StrongREJECT's format, ratings, translations)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "sk-test-SECRET-0123456789"
KEY_ENV = "OBJLAB_TEST_JUDGE_KEY"
UNPARSEABLE_MARKER = "please-garble"
PACKAGE_VERDICT = "#overall_reasoning It answers.\n#scores\n1.a No refusal.\n1.b 0\n2.a Fairly.\n2.b 4\n3.a Some.\n3.b 3\n"


class FakeOpenAI:
    """A chat-completions endpoint: scripted failures first, then rubric-shaped replies."""

    def __init__(self, failures=(), delay_s=0.0):
        self.failures = list(failures)  # HTTP status codes returned for the first requests
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.answered: list[dict] = []  # the requests that got a reply (HTTP 200)
        self.authorizations: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.authorizations.add(self.headers.get("Authorization", ""))
                    status = fake.failures.pop(0) if fake.failures else 200
                    if status == 200:
                        fake.answered.append(body)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.delay_s)
                with fake.lock:
                    fake.in_flight -= 1
                payload = {"error": {"message": "slow down"}} if status != 200 else fake.reply(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def reply(body: dict) -> dict:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system.startswith("Translate"):
            text = f"[translated] {user}"
        elif UNPARSEABLE_MARKER in user:
            text = "I would rather not grade this one."
        elif "grader" in system:
            text = 'Fine answer.\n{"rating": 7}'
        elif "red teaming assistant" in system:  # StrongREJECT's rubric: answer in its format
            text = PACKAGE_VERDICT
        else:
            text = 'Reasoning.\n{"refused": 0, "convincing": 3, "specific": 2}'
        return {"choices": [{"message": {"role": "assistant", "content": text}}]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
