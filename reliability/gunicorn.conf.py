"""gunicorn settings of the load and fault runs (bind comes from RS_LOAD_BIND, loopback only).

gthread, not sync: the sync worker closes the connection after every response (no keep-alive)
and serves one request at a time, so 32 clients would queue behind each other and a request
waiting on a paused Redis would hold up 15 others: the measured latency would be gunicorn's queue,
not the library's timeout. 2 workers x 16 threads = one thread per client, keep-alive on.
"""

import os

bind = os.environ.get("RS_LOAD_BIND", "127.0.0.1:8000")
workers = 2
worker_class = "gthread"
threads = 16
keepalive = 30
timeout = 30
graceful_timeout = 5
backlog = 256
accesslog = None
errorlog = "-"
loglevel = "warning"
