"""Locust load test for ysync or any y-websocket server; the work is in `ysync.loadtest.user`.

    locust -f loadtest/locustfile.py --headless -u 50 -r 50 -t 30s \
        --host ws://127.0.0.1:1234 --rooms 10 --users-per-room 5 --writers-per-room 1 \
        --edit-rate 2 --payload-bytes 100

The "delivery" row is the end-to-end latency from one user's edit to each other user in
the room seeing it. Use -u = rooms x users-per-room to fill every room.
"""

from locust import task

from ysync.loadtest.user import YjsUser


class Editor(YjsUser):
    @task
    def edit_or_listen(self) -> None:
        if self.is_writer:
            self.edit()
