"""The framework's floor: a Flask handler that decides nothing, under our gunicorn config.

    gunicorn --config gunicorn.conf.py tests.bench.noop_app:app

It does only what any webhook must: read the body, decode it to echo ``request.uid``, and
answer ``allowed`` with a fixed JSONPatch (the one ours returns for the benchmark pod, read
from ``$BENCH_NOOP_PATCH_FILE``) — no policy, no cluster view, no metrics, no logging of its
own (gunicorn's access log follows PSI_ACCESS_LOG, off by default, as for ours).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from flask import Flask, Response, request

_patch_file = os.environ.get("BENCH_NOOP_PATCH_FILE", "")
_PATCH = base64.b64encode(Path(_patch_file).read_bytes()).decode() if _patch_file else ""

app = Flask("bench-noop")


@app.post("/mutate")
def mutate() -> Response:
    review = json.loads(request.get_data(cache=False))
    response = {"uid": review["request"]["uid"], "allowed": True}
    if _PATCH:
        response.update(patchType="JSONPatch", patch=_PATCH)
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }
    return Response(json.dumps(document), mimetype="application/json")
