"""A throwaway Redis Cluster for tests: 3 masters and 3 replicas on free ports
(the fault suite's, `ysync.loadtest.chaos_services.RedisCluster`).

with RedisCluster() as cluster:
    ... connect to cluster.url (redis+cluster://127.0.0.1:<port>,...) ...
    cluster.kill_master_of("ysync:{room}")   # SIGKILL; its replica takes over
"""

from __future__ import annotations

from ysync.loadtest.chaos_services import RedisCluster

__all__ = ["RedisCluster"]
